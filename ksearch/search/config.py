"""Run configuration: one YAML file, validated; the embedded defaults are configs/quickstart.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ksearch import settings
from ksearch.errors import ConfigError, describe_validation_error
from ksearch.paths import configs_dir, read_text
from ksearch.propose.settings import ProposerConfig, apply_spec


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    evaluations: int = Field(default=36, ge=1, description="candidates evaluated before the run stops")
    wall_s: float = Field(default=270, gt=0, description="wall-clock seconds before the run stops")
    llm_usd: float = Field(
        default=0.0, ge=0, description="LLM spend limit in dollars (prices: configs/prices.yaml); 0: no limit"
    )
    target_score: float | None = Field(default=None, description="stop once the best score reaches this")


class SearchSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    strategy: Literal["worldmodel", "random"] = Field(
        default="worldmodel",
        description="worldmodel: K-Search loop; random: uniform sampling of the same "
        "template space (the baseline for search efficiency)",
    )
    islands: int = Field(default=2, ge=1, description="subtrees searched in turn, exchanging their best")
    migrate_every: int = Field(default=4, ge=1, description="visits between migrations of island bests")
    stagnation: int = Field(default=2, ge=1, description="samples without improvement that end a visit")
    max_per_visit: int = Field(default=4, ge=1, description="samples of one action per visit at most")
    batch: int = Field(default=2, ge=1, description="candidates compiled together while others are verified")
    exploration: float = Field(default=0.3, ge=0, description="weight of the bonus for rarely tried actions")


class EvalSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seeds: list[int] = Field(
        default_factory=lambda: [0], min_length=1, description="input seeds per workload"
    )
    workloads: list[str] | None = Field(
        default=None,
        description="workloads to verify and time (default: the suite, or its CPU subset on CPU)",
    )
    timeout_s: float = Field(
        default=settings.DEFAULT_EVAL_TIMEOUT_S, gt=0, description="seconds before an evaluation is killed"
    )
    compile_timeout_s: float = Field(
        default=60, gt=0, description="seconds before one target's compile is killed"
    )
    targets: Literal["every", "best"] = Field(
        default="best",
        description="every: each candidate compiles and is audited for every target; best: "
        "for the primary target, and the best kernel for the rest at the end",
    )
    bench_budget_s: float = Field(default=1.0, gt=0, description="seconds of timing per workload at most")
    reuse: list[str] = Field(
        default_factory=list,
        description="run directories whose evaluations of identical candidates (same source, settings "
        "and GPU) are reused rather than measured again, e.g. to compare strategies over many seeds",
    )


CLUSTER_SPECS = "local | ray | ray://HOST:PORT"


class ClusterSettings(BaseModel):
    """Where candidates are evaluated: in this process (local), or on Ray actors, one per GPU."""

    model_config = ConfigDict(extra="forbid")
    backend: Literal["local", "ray"] = Field(
        default="local",
        description="local: one evaluator in the run's process; ray: one evaluator actor per GPU "
        "of a Ray cluster (CPU slots on a cluster without GPUs)",
    )
    address: str | None = Field(
        default=None,
        description="the Ray cluster: ray://HOST:PORT (Ray Client), HOST:PORT (from a node of the "
        "cluster); None: the cluster this machine belongs to, else a new local instance",
    )
    evaluators: int | None = Field(
        default=None,
        ge=1,
        description="evaluator actors; None: one per GPU of the cluster, or min(2, CPUs) without GPUs",
    )
    retries: int = Field(
        default=2, ge=0, description="re-evaluations of a candidate whose evaluator died under it"
    )
    start_timeout_s: float = Field(
        default=300, gt=0, description="seconds an evaluator may take to be placed and started"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_spec(cls, data: Any) -> Any:
        return parse_cluster_spec(data) if isinstance(data, str) else data

    @model_validator(mode="after")
    def _address_needs_ray(self) -> ClusterSettings:
        if self.backend == "local" and self.address:
            raise ValueError(f"an address ({self.address}) needs backend ray: use ray://HOST:PORT")
        return self


def parse_cluster_spec(spec: str) -> dict[str, Any]:
    """`local`, `ray` or `ray://HOST:PORT` (the address as Ray's own `ray.init` takes it) as a block."""
    text = spec.strip()
    if text == "local":
        return {"backend": "local"}
    if text == "ray":
        return {"backend": "ray"}
    if text.startswith("ray://") and len(text) > len("ray://"):
        return {"backend": "ray", "address": text}
    raise ValueError(f"cluster {spec!r} is not one of {CLUSTER_SPECS}")


def apply_cluster_spec(block: dict[str, Any], spec: str | None) -> dict[str, Any]:
    """A config's cluster block with `--cluster SPEC` applied: backend and address replaced, the rest
    (evaluators, retries, ...) kept."""
    if spec is None:
        return block
    try:
        parsed = parse_cluster_spec(spec)
    except ValueError as e:
        raise ConfigError(f"--cluster: {e}") from e
    return {**block, "address": None, **parsed}


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str = "rmsnorm"
    dtype: str | None = None
    targets: list[str] = Field(default_factory=lambda: list(settings.DEFAULT_TARGETS), min_length=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    proposer: ProposerConfig = Field(
        default_factory=ProposerConfig, description="a block, or a spec string such as openai:gpt-5-mini"
    )
    seed: int = 0
    budget: Budget = Field(default_factory=Budget)
    search: SearchSettings = Field(default_factory=SearchSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    cluster: ClusterSettings = Field(
        default_factory=ClusterSettings, description=f"a block, or a spec string: {CLUSTER_SPECS}"
    )


def proposer_of(config_path: Path | None, spec: str | None) -> ProposerConfig:
    """The proposer block a new run of `config_path` with `--proposer spec` uses (what `ksearch run`
    checks before it loads torch and the rest of the search)."""
    block = apply_spec(load_run_config(config_path).proposer.model_dump(), spec, None)
    return ProposerConfig.model_validate(block)


def default_config_path() -> Path:
    return configs_dir() / "quickstart.yaml"


def load_run_config(path: Path | None = None) -> RunConfig:
    """The run config at `path`, or the embedded defaults; errors name the file and the field."""
    path = Path(path) if path else default_config_path()
    try:
        data = yaml.safe_load(read_text(path)) or {}
    except OSError as e:
        raise ConfigError(
            f"run config {path} cannot be read ({e.strerror}); pass an existing YAML file"
        ) from e
    except yaml.YAMLError as e:
        raise ConfigError(f"run config {path} is not valid YAML: {str(e).splitlines()[0]}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"run config {path} must be a mapping of fields (task, targets, budget, ...)")
    return validate_run_config(data, f"run config {path}")


def validate_run_config(data: dict, source: str) -> RunConfig:
    """`data` as a RunConfig; a ConfigError naming `source` and the first bad field otherwise."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"{source}: {describe_validation_error(e, limit=1)}") from e
