"""Run configuration: one YAML file, validated; the embedded defaults are configs/runs/quickstart.yaml."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ksearch.errors import ConfigError
from ksearch.paths import configs_dir


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    evaluations: int = Field(default=24, ge=1)
    wall_s: float = Field(default=900, gt=0)
    llm_usd: float = Field(default=0.0, ge=0)


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str = "rmsnorm"
    dtype: str | None = None
    targets: list[str] = Field(default_factory=lambda: ["h100", "b200", "mi355x"], min_length=1)
    proposer: str = "offline"
    seed: int = 0
    budget: Budget = Field(default_factory=Budget)


def default_config_path() -> Path:
    return configs_dir() / "runs" / "quickstart.yaml"


def load_run_config(path: Path | None = None) -> RunConfig:
    """The run config at `path`, or the embedded defaults; errors name the file and the field."""
    path = Path(path) if path else default_config_path()
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as e:
        raise ConfigError(f"run config {path} cannot be read ({e.strerror}); pass an existing YAML file") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"run config {path} is not valid YAML: {str(e).splitlines()[0]}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"run config {path} must be a mapping of fields (task, targets, budget, ...)")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(f"run config {path}: field '{where}': {first['msg']}") from e
