"""Every `KSEARCH_*` environment variable, read in one place.

| variable              | default                      | what it sets                                          |
|-----------------------|------------------------------|-------------------------------------------------------|
| `KSEARCH_CONFIGS`     | `<repo>/configs`             | the configuration tree (tasks, targets, prices, runs) |
| `KSEARCH_SKILLS`      | `<repo>/skills`              | the skill library                                     |
| `KSEARCH_ISA_CORPUS`  | `<repo>/isa_corpus`          | the ISA corpus                                        |
| `KSEARCH_CACHE_DIR`   | `~/.cache/ksearch`           | the cache root (compile cache, measured peaks, judges) |
| `KSEARCH_LOG_DIR`     | `experiment_log`             | where new runs' log directories go                    |
| `KSEARCH_JAIL`        | on                           | `off` runs workers without the OS boundary (debugging) |
| `KSEARCH_HIP_COMPILER`| hipcc if found, else clang   | `hipcc` or `clang` forces one way to build HIP        |

`KSEARCH_CACHE` is the old name of `KSEARCH_CACHE_DIR`; it is still read, with a warning on stderr
(once per process). Other modules ask this one; none reads `os.environ` for a `KSEARCH_*` name.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path


@dataclass(frozen=True)
class EnvVar:
    name: str
    default: str  # in words, for the table above and `ksearch` help texts
    doc: str


CONFIGS = EnvVar("KSEARCH_CONFIGS", "<repo>/configs", "the configuration tree (tasks, targets, prices, runs)")
SKILLS = EnvVar("KSEARCH_SKILLS", "<repo>/skills", "the skill library")
ISA_CORPUS = EnvVar("KSEARCH_ISA_CORPUS", "<repo>/isa_corpus", "the ISA corpus")
CACHE_DIR = EnvVar("KSEARCH_CACHE_DIR", "~/.cache/ksearch", "the cache root (compile cache, peaks, judges)")
LOG_DIR = EnvVar("KSEARCH_LOG_DIR", "experiment_log", "where new runs' log directories go")
JAIL = EnvVar("KSEARCH_JAIL", "on", "`off` runs workers without the OS boundary (for debugging a machine)")
HIP_COMPILER = EnvVar("KSEARCH_HIP_COMPILER", "hipcc if found, else clang", "`hipcc` or `clang` forces one")
VARIABLES = (CONFIGS, SKILLS, ISA_CORPUS, CACHE_DIR, LOG_DIR, JAIL, HIP_COMPILER)

_OLD_CACHE_NAME = "KSEARCH_CACHE"

# Targets a run or a compile covers unless told otherwise; the first is a run's primary (scored) target.
DEFAULT_TARGETS: tuple[str, ...] = ("h100", "b200", "mi355x")
# One evaluation (verify, then time) is killed after this long, in `ksearch run` and `ksearch eval` alike.
DEFAULT_EVAL_TIMEOUT_S = 300.0


def env_value(var: EnvVar) -> str | None:
    """The variable's value with surrounding blanks removed; None when unset or blank."""
    value = os.environ.get(var.name, "").strip()
    return value or None


def env_path(var: EnvVar) -> Path | None:
    """The variable as a path (`~` expanded); None when unset or blank."""
    value = env_value(var)
    return Path(value).expanduser() if value else None


def cache_root() -> Path:
    """`$KSEARCH_CACHE_DIR`, else the deprecated `$KSEARCH_CACHE`, else `~/.cache/ksearch`."""
    root = env_path(CACHE_DIR)
    if root is not None:
        return root
    old = os.environ.get(_OLD_CACHE_NAME, "").strip()
    if old:
        _warn_old_cache_name()
        return Path(old).expanduser()
    return Path.home() / ".cache" / "ksearch"


@cache  # once per process: the warning is for a person, not a log line per compile
def _warn_old_cache_name() -> None:
    print(
        f"ksearch: {_OLD_CACHE_NAME} is deprecated; set {CACHE_DIR.name} instead (read as the cache root)",
        file=sys.stderr,
    )


def log_root() -> Path:
    """`$KSEARCH_LOG_DIR`, else `experiment_log` (relative to the working directory)."""
    return env_path(LOG_DIR) or Path("experiment_log")


def jail_turned_off() -> bool:
    """Whether `KSEARCH_JAIL=off` asks for workers without the OS boundary."""
    return (env_value(JAIL) or "").lower() == "off"


def forced_hip_compiler() -> str | None:
    """`hipcc` or `clang` when `KSEARCH_HIP_COMPILER` forces one, else None (lower-cased as given)."""
    value = env_value(HIP_COMPILER)
    return value.lower() if value else None
