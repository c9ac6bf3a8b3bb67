"""Reading the corpus's YAML files and reporting pydantic validation errors, one line each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ksearch.context.errors import ContextFileError


def read_yaml(path: Path, missing: str) -> Any:
    """Parsed YAML of `path`; ContextFileError with `missing` (what to do) when it does not exist."""
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContextFileError(f"{path} does not exist; {missing}") from None
    except yaml.YAMLError as exc:
        raise ContextFileError(f"{path} is not valid YAML ({yaml_problem(exc)}); fix the syntax") from None


def yaml_problem(exc: yaml.YAMLError) -> str:
    """What the YAML parser objected to, in a few words."""
    return getattr(exc, "problem", None) or str(exc).splitlines()[0]
