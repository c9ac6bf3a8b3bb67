"""Where the skill library and the ISA corpus live, and which target names are valid.

`$KSEARCH_SKILLS` and `$KSEARCH_ISA_CORPUS` point the loaders at another tree (tests, a user's own
library) without touching the repository. Chapters a user ingests go to `<corpus>/local/`, which
git ignores, so downloaded vendor material is never committed.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from ksearch import settings
from ksearch.errors import TargetError
from ksearch.paths import repo_root

ANY = "*"


def skills_dir() -> Path:
    """`$KSEARCH_SKILLS` if set, else `<repo root>/skills`."""
    return settings.env_path(settings.SKILLS) or repo_root() / "skills"


def corpus_dir() -> Path:
    """`$KSEARCH_ISA_CORPUS` if set, else `<repo root>/isa_corpus`."""
    return settings.env_path(settings.ISA_CORPUS) or repo_root() / "isa_corpus"


def local_corpus_dir(base: Path | None = None) -> Path:
    """Where `ksearch isa ingest` writes by default: `<corpus>/local` (git-ignored)."""
    return (base or corpus_dir()) / "local"


def known_targets() -> list[str]:
    """Target names from configs/targets (b200, h100, h200, mi300x, mi355x)."""
    from ksearch.target.profile import list_targets

    return list_targets()


def check_target(target: str | None) -> str | None:
    """The lower-cased target name, or TargetError naming the known ones; None passes through."""
    if target is None:
        return None
    key = target.strip().lower()
    known = known_targets()
    if key not in known:
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise TargetError(f"unknown target {target!r}{hint}; known targets: {', '.join(known)}")
    return key


def suggest(name: str, known: list[str]) -> str:
    """' (did you mean X?)' for the closest known name, or ''."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    return f" (did you mean {close[0]}?)" if close else ""
