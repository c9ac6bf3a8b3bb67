"""Hard limits per target (`isa_corpus/rules/<target>.yaml`) and their agreement with the profiles.

The target profiles in configs/targets are the single source of the numbers they hold, and the
emitted-code audit reads them from there. A rules file restates those numbers next to the limits
only the ISA documents give (LDS banks, allocation granules, waitcnt widths, TMEM geometry), so one
file per target says everything the static audit and an agent must not exceed. Each shared limit
names its profile field (`profile: shared_memory.max_per_block_kib`); `check_rules` compares every
one and reports each disagreement, and a test runs it for every target, so they can never drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ksearch.context.errors import ContextFileError
from ksearch.context.files import read_yaml
from ksearch.context.locate import check_target, corpus_dir
from ksearch.errors import describe_validation_error

RULES = "rules"


class Limit(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    value: float | int
    unit: str = Field(min_length=1)
    source: str = Field(min_length=1)
    profile: str | None = None  # dotted field of the target profile holding the same number
    note: str | None = None


class Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    target: str
    arch: str
    limits: dict[str, Limit] = Field(min_length=1)


@dataclass(frozen=True)
class Mismatch:
    limit: str
    field: str  # a dotted profile field
    rules_value: Any
    profile_value: Any  # what the profile field holds

    def __str__(self) -> str:
        return (
            f"{self.limit}: rules say {self.rules_value}, profile field {self.field} says "
            f"{self.profile_value}; the profile is the source, fix the rules file"
        )


def rules_path(target: str, root: Path | None = None) -> Path:
    return (Path(root) if root is not None else corpus_dir()) / RULES / f"{target}.yaml"


def load_rules(target: str, root: Path | None = None) -> Rules:
    key = check_target(target)
    assert key is not None
    path = rules_path(key, root)
    data = read_yaml(path, f"target {key!r} needs a rules file next to the others")
    try:
        rules = Rules.model_validate(data)
    except ValidationError as exc:
        raise ContextFileError(f"{path}: {describe_validation_error(exc)}") from None
    if rules.target != key:
        raise ContextFileError(
            f"{path}: target is {rules.target!r} but the file is {key}.yaml; make them match"
        )
    return rules


def profile_value(profile_data: dict, dotted: str) -> Any:
    """A profile field by dotted path over the YAML keys (`shared_memory.per_sm_kib`)."""
    node: Any = profile_data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(dotted)
        node = node[part]
    return node


def check_rules(target: str, root: Path | None = None) -> list[Mismatch]:
    """Every shared number of the rules file against the target profile; [] when they agree."""
    from ksearch.target.profile import load_target

    rules = load_rules(target, root)
    profile = load_target(rules.target)
    data = profile.model_dump(by_alias=True)
    out: list[Mismatch] = []
    if profile.arch != rules.arch:
        out.append(Mismatch("arch", "arch", rules.arch, profile.arch))
    for name, limit in rules.limits.items():
        if limit.profile is None:
            continue
        try:
            value = profile_value(data, limit.profile)
        except KeyError:
            out.append(Mismatch(name, limit.profile, limit.value, "<no such field>"))
            continue
        if value is None or float(value) != float(limit.value):
            out.append(Mismatch(name, limit.profile, limit.value, value))
    return out
