"""The skill library: layered SKILL.md files that tell an agent how to work on one kind of problem.

A skill is `skills/<name>/SKILL.md` (YAML front matter, then a short body of at most
SKILL_BODY_BUDGET tokens) plus optional reference files in the same folder for depth. Layers:
entry (how to drive ksearch), harness (the rules candidates are judged by), hardware, language and
op. `select_skills(task, target, budget)` ranks them for one task on one target: the target's
hardware skill, then the op skill, then the task's first language, then the harness rules and the
entry skill, then the rest that still apply, as many as fit the budget.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ksearch.context.errors import BudgetError, ContextFileError, UnknownSkillError
from ksearch.context.files import read_context_text
from ksearch.context.locate import ANY, check_target, skills_dir, suggest
from ksearch.context.markdown import split_front_matter
from ksearch.context.tokens import JoinedTokens, count_tokens, tokenizer_name
from ksearch.errors import describe_validation_error
from ksearch.evidence import BUILTIN_LANGUAGES

SKILL_FILE = "SKILL.md"
SKILL_BODY_BUDGET = 500  # tokens of a SKILL.md body; depth goes into reference files
REFERENCE_BUDGET = 3000  # tokens of one reference file
Layer = Literal["entry", "harness", "hardware", "language", "op"]
LANGUAGES = BUILTIN_LANGUAGES  # the languages skills are written for

# Words of a free-text task that name an op family or a dtype.
_OP_WORDS = {
    "gemm": ("gemm", "matmul", "mm", "linear", "gemv", "bmm", "dense"),
    "attention": ("attention", "attn", "decode", "prefill", "mha", "gqa", "mqa", "mla", "flash"),
    "moe": ("moe", "expert", "experts", "routing", "topk", "router"),
    "norm": ("norm", "rmsnorm", "layernorm", "layer_norm", "rms_norm"),
    "reduction": ("reduction", "reduce", "softmax", "sum", "argmax", "logsumexp"),
    "elementwise": ("elementwise", "silu", "gelu", "activation", "swiglu", "add", "mul"),
}
_DTYPE_WORDS = ("mxfp4", "nvfp4", "mxfp8", "mxfp6", "fp8", "fp4", "bf16", "fp16", "int8")


class SkillMeta(BaseModel):
    """The front matter of a SKILL.md."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9\-]*[a-z0-9]$")
    description: str = Field(min_length=1)
    when_to_use: str = Field(min_length=1)
    layer: Layer
    targets: list[str] = Field(min_length=1)
    op_families: list[str] = Field(min_length=1)
    languages: list[str] = Field(min_length=1)
    dtypes: list[str] = Field(default_factory=list)
    chapters: list[str] = Field(default_factory=list)
    see_also: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class Skill:
    meta: SkillMeta
    body: str
    path: Path

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def tokens(self) -> int:
        return count_tokens(self.body)

    def references(self) -> list[Path]:
        """The reference files next to SKILL.md."""
        return sorted(
            p for p in self.folder.iterdir() if p.is_file() and p.suffix == ".md" and p.name != SKILL_FILE
        )

    def render(self) -> str:
        """What `ksearch skills show` prints and a selection concatenates."""
        return f"# skill: {self.name} ({self.meta.layer})\n{self.meta.description}\n\n{self.body.rstrip()}\n"

    def matches(self, field_name: str, value: str | None) -> bool:
        values = getattr(self.meta, field_name)
        return value is None or ANY in values or value in values


def load_skill(folder: Path) -> Skill:
    path = folder / SKILL_FILE
    meta, body = split_front_matter(read_context_text(path), path)
    try:
        parsed = SkillMeta.model_validate(meta)
    except ValidationError as exc:
        raise ContextFileError(f"{path}: front matter {describe_validation_error(exc)}") from None
    if parsed.name != folder.name:
        raise ContextFileError(f"{path}: name {parsed.name!r} must equal its folder name {folder.name!r}")
    return Skill(parsed, body, path)


def load_skills(root: Path | None = None) -> dict[str, Skill]:
    """Every skill under the skills directory, by name."""
    root = Path(root) if root is not None else skills_dir()
    if not root.is_dir():
        raise ContextFileError(
            f"skills directory {root} does not exist; set $KSEARCH_SKILLS or run from a checkout"
        )
    return {s.name: s for s in (load_skill(d) for d in sorted(root.iterdir()) if (d / SKILL_FILE).is_file())}


def list_skills() -> list[Skill]:
    """Every skill, by layer (entry, harness, hardware, language, op: the order of `Layer`) then name."""
    order = get_args(Layer)
    return sorted(load_skills().values(), key=lambda s: (order.index(s.meta.layer), s.name))


def get_skill(name: str, skills: dict[str, Skill] | None = None) -> Skill:
    skills = skills if skills is not None else load_skills()
    key = name.strip().lower()
    if key not in skills:
        raise UnknownSkillError(
            f"unknown skill {name!r}{suggest(key, list(skills))}; list them with `ksearch skills list`"
        )
    return skills[key]


def show_skill(ref: str, skills: dict[str, Skill] | None = None) -> str:
    """`NAME` prints the SKILL.md body; `NAME/FILE.md` prints one of its reference files."""
    name, _, rest = ref.strip().partition("/")
    skill = get_skill(name, skills)
    if not rest:
        return skill.render()
    files = {p.name: p for p in skill.references()}
    if rest not in files:
        raise UnknownSkillError(
            f"skill {skill.name!r} has no reference file {rest!r}; it has: {', '.join(files) or 'none'}"
        )
    return read_context_text(files[rest])


# ---- selection ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskProfile:
    """What selection needs to know about a task: op family, languages in preference order, dtypes."""

    text: str
    op_family: str | None
    languages: tuple[str, ...]
    dtypes: tuple[str, ...]
    source: str  # "task" (a task contract) or "text" (free text)


def task_profile(task: str, strict: bool = False) -> TaskProfile:
    """A built-in task name or task path gives its contract's fields; other text is read for op
    family, dtype and language words (`matmul` -> gemm, `mxfp4 gemm` -> gemm + mxfp4).

    `strict` (what `ksearch skills select` uses) raises TaskError, as `ksearch run` does, for a task
    path or built-in task that does not load, and for text that names no task, op family, dtype or
    language (`nosuch`); otherwise such text selects as an unknown op family.
    """
    from ksearch.errors import TargetError, TaskError
    from ksearch.task.load import list_tasks, load_task_spec, resolve_task_file

    text = task.strip()
    looks_like_path = "/" in text or "\\" in text or text.endswith((".yaml", ".yml"))
    try:
        path, _ = resolve_task_file(text)
        spec = load_task_spec(path)
    except TaskError:
        if strict and (looks_like_path or text in list_tasks()):
            raise
        spec = None
    if spec is not None:
        from ksearch.target.profile import normalize_dtype

        dtypes = []
        for d in spec.dtypes:
            try:
                dtypes.append(normalize_dtype(d))
            except TargetError:  # a dtype the profiles have no name for (int32, ...): keep it as written
                dtypes.append(str(d))
        return TaskProfile(task, spec.op_family, tuple(spec.languages), tuple(dtypes), "task")
    words = re.findall(r"[a-z0-9_]+", text.lower())
    op = next((fam for fam, names in _OP_WORDS.items() if any(w in names for w in words)), None)
    named_langs = tuple(w for w in words if w in LANGUAGES)
    named_dtypes = tuple(w for w in words if w in _DTYPE_WORDS)
    if strict and op is None and not named_dtypes and not named_langs:
        builtins = list_tasks()
        raise TaskError(
            f"unknown task {task!r}{suggest(text.lower(), builtins)}; built-in tasks: "
            f"{', '.join(builtins) or '(none found)'}; or pass a path to a task directory or "
            "task.yaml, or free text naming an op family or dtype such as 'mxfp4 gemm'"
        )
    return TaskProfile(task, op, named_langs or LANGUAGES, named_dtypes, "text")


@dataclass(frozen=True)
class Pick:
    name: str
    layer: str
    tokens: int
    reason: str


@dataclass(frozen=True)
class Selection:
    """Skills for a task on a target: `picked` fit the budget (best first), `omitted` did not."""

    task: TaskProfile
    target: str
    budget: int
    tokenizer: str
    picked: list[Pick]
    omitted: list[Pick]
    text: str = field(repr=False, default="")


def _rank(skill: Skill, task: TaskProfile, target: str) -> tuple[float, str] | None:
    """(tier, reason) of a skill for this task and target; None when it does not apply."""
    m = skill.meta
    if not skill.matches("targets", target):
        return None
    if m.layer == "hardware":
        return 0.0, f"hardware for {target}"
    if m.layer == "op":
        if task.op_family is None or not skill.matches("op_families", task.op_family):
            return None
        if not m.dtypes:
            return 1.0, f"op family {task.op_family}"
        if set(m.dtypes) & set(task.dtypes):
            return (
                1.5,
                f"op family {task.op_family}, dtype {'/'.join(sorted(set(m.dtypes) & set(task.dtypes)))}",
            )
        return 6.0, f"op family {task.op_family} (other dtypes: {', '.join(m.dtypes)})"
    if m.layer == "language":
        own = [lang for lang in m.languages if lang in task.languages]
        if not own:
            return None
        rank = min(task.languages.index(lang) for lang in own)
        return (
            (2.0, f"language {own[0]} (the task's first)")
            if rank == 0
            else (5.0 + rank / 10, f"language {own[0]}")
        )
    if m.layer == "harness":
        return 3.0, "how candidates are judged"
    return 4.0, "how to drive ksearch"


def select_skills(
    task: str,
    target: str,
    budget: int = 4000,
    skills: dict[str, Skill] | None = None,
    strict: bool = False,
) -> Selection:
    """The skills for `task` on `target`, best first, as many whole skills as fit `budget` tokens.
    `strict` rejects a task that names nothing known (see `task_profile`)."""
    tgt = check_target(target)
    assert tgt is not None
    if budget <= 0:
        raise BudgetError(f"budget must be a positive number of tokens, got {budget}")
    skills = skills if skills is not None else load_skills()
    profile = task_profile(task, strict)
    ranked = sorted(
        ((r, s) for s in skills.values() if (r := _rank(s, profile, tgt)) is not None),
        key=lambda rs: (rs[0][0], rs[1].name),
    )
    picked: list[Pick] = []
    omitted: list[Pick] = []
    texts: list[str] = []
    count = JoinedTokens()  # each block is encoded once, not the whole selection again per skill
    for (_, reason), skill in ranked:
        block = skill.render()
        pick = Pick(skill.name, skill.meta.layer, count_tokens(block), reason)
        if count(texts + [block]) <= budget:
            texts.append(block)
            picked.append(pick)
        else:
            omitted.append(pick)
    return Selection(profile, tgt, budget, tokenizer_name(), picked, omitted, "\n".join(texts))
