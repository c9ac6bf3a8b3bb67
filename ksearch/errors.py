"""The one exception family of ksearch.

Every error a user can cause (bad task file, unknown target, a directory that is not a log) is a
`KsearchError` subclass whose message says what was wrong and what to do. The CLI prints the message
on one line and exits non-zero; anything else escaping is a bug. `describe_validation_error` is the
one place a pydantic ValidationError becomes such a message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError
    from pydantic_core import ErrorDetails


class KsearchError(Exception):
    """Base class: a user-facing error with an actionable message."""

    exit_code = 2


class NotUtf8Error(KsearchError):
    """A text file ksearch reads (candidate, config, task.yaml, history) is not UTF-8."""


class ConfigError(KsearchError):
    """A config, task or target file is missing, malformed or inconsistent."""


class TaskError(ConfigError):
    """A task definition or its reference is invalid."""


class TargetError(ConfigError):
    """A target profile is unknown or invalid."""


class LogError(KsearchError):
    """An experiment log cannot be read or written."""


class NotALogError(LogError):
    """A directory given as a run log holds no history.jsonl."""


class LogIntegrityError(LogError):
    """A history row is corrupt, edited, deleted, reordered or inserted."""

    exit_code = 3

    def __init__(self, message: str, lineno: int | None = None, seq: int | None = None):
        super().__init__(message)
        self.lineno = lineno  # the first bad line, where known
        self.seq = seq  # the first bad row's seq, where known


# Union branches add their type to an error's path (inputs.x.shape.1.int); to a user they say nothing.
_UNION_BRANCHES = frozenset({"int", "str", "float", "bool"})


def field_path(loc: Sequence[int | str]) -> str:
    """`a.b.1` for a pydantic error location, union branch names left out."""
    return ".".join(str(part) for part in loc if part not in _UNION_BRANCHES)


def describe_problem(error: ErrorDetails, hints: Mapping[str, str] | None = None) -> str:
    """One pydantic error as a sentence that says what to do; `hints` add advice per top-level field."""
    where = field_path(error["loc"])
    hint = (hints or {}).get(where)
    if error["type"] == "missing":
        return f"field '{where}' is missing; {hint or 'add it'}"
    if error["type"] == "extra_forbidden":
        known = f" (known fields: {', '.join(hints)})" if hints and "." not in where else ""
        return f"unknown field '{where}'; remove it or fix its spelling{known}"
    msg = str(error["msg"]).removeprefix("Value error, ")
    text = f"field '{where}': {msg}" if where else msg
    return f"{text} ({hint})" if hint else text


def describe_validation_error(
    exc: ValidationError, hints: Mapping[str, str] | None = None, limit: int = 5
) -> str:
    """The first `limit` problems of `exc`, `; `-joined, then how many more there are."""
    errors = exc.errors(include_url=False)
    text = "; ".join(describe_problem(e, hints) for e in errors[:limit])
    more = len(errors) - limit
    if more > 0:
        text += f" (+{more} more problem{'s' if more > 1 else ''})"
    return " ".join(text.split())


def error_line(exc: KsearchError | OSError) -> str:
    """The one line a user error is reported with, by the CLI and the MCP server alike: the message
    of a KsearchError, or what could not be read or written and why."""
    if isinstance(exc, OSError):
        return f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")
    return f"error: {exc}"
