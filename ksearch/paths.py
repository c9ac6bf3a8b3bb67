"""Where ksearch finds its configuration tree.

`$KSEARCH_CONFIGS` overrides the location so that tests and users can point ksearch at another tree
without touching the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

CONFIGS_ENV = "KSEARCH_CONFIGS"


def repo_root() -> Path:
    """The directory holding pyproject.toml, `ksearch/` and `configs/` (a source checkout)."""
    return Path(__file__).resolve().parent.parent


def configs_dir() -> Path:
    """`$KSEARCH_CONFIGS` if set (and non-empty), else `<repo root>/configs`."""
    override = os.environ.get(CONFIGS_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    return repo_root() / "configs"


def tasks_dir() -> Path:
    """Directory of the built-in task definitions: `<configs>/tasks`."""
    return configs_dir() / "tasks"
