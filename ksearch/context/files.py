"""Reading the corpus's text and YAML files (UTF-8 or a one-line error) and reporting pydantic validation errors, one line each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ksearch.context.errors import ContextFileError
from ksearch.errors import NotUtf8Error
from ksearch.paths import read_text


class NotUtf8FileError(ContextFileError, NotUtf8Error):
    """A skill, chapter or manifest file that is not UTF-8: a NotUtf8Error naming the file, and a
    ContextFileError, so that whoever serves context (the prompt builder) degrades instead of stopping."""


def read_context_text(path: Path) -> str:
    """The text of a skill, chapter or manifest file (paths a user can point ksearch at through
    $KSEARCH_SKILLS, $KSEARCH_ISA_CORPUS or `isa ingest`); NotUtf8FileError when it is not UTF-8."""
    try:
        return read_text(path)
    except NotUtf8Error as exc:
        raise NotUtf8FileError(str(exc)) from None


def read_yaml(path: Path, missing: str) -> Any:
    """Parsed YAML of `path`; ContextFileError with `missing` (what to do) when it does not exist."""
    try:
        return yaml.safe_load(read_context_text(path))
    except FileNotFoundError:
        raise ContextFileError(f"{path} does not exist; {missing}") from None
    except yaml.YAMLError as exc:
        raise ContextFileError(f"{path} is not valid YAML ({yaml_problem(exc)}); fix the syntax") from None


def yaml_problem(exc: yaml.YAMLError) -> str:
    """What the YAML parser objected to, in a few words."""
    return getattr(exc, "problem", None) or str(exc).splitlines()[0]
