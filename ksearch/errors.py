"""The one exception family of ksearch.

Every error a user can cause (bad task file, unknown target, a directory that is not a log) is a
`KsearchError` subclass whose message says what was wrong and what to do. The CLI prints the message
on one line and exits non-zero; anything else escaping is a bug.
"""


class KsearchError(Exception):
    """Base class: a user-facing error with an actionable message."""

    exit_code = 2


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
