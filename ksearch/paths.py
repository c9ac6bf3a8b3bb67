"""Where ksearch finds its configuration tree, and how it replaces a file whole.

`$KSEARCH_CONFIGS` (see `ksearch.settings`) overrides the location so that tests and users can point
ksearch at another tree without touching the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

from ksearch import settings
from ksearch.errors import NotUtf8Error


def read_text(path: Path | str) -> str:
    """A text file the user gave ksearch, decoded as UTF-8; NotUtf8Error names the file, the first bad
    byte and its line instead of a bare UnicodeDecodeError."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise NotUtf8Error(
            f"{path} is not UTF-8 text: byte 0x{data[e.start]:02x} at offset {e.start} (line {line}); "
            "save it as UTF-8"
        ) from None


def repo_root() -> Path:
    """The directory holding pyproject.toml, `ksearch/` and `configs/` (a source checkout)."""
    return Path(__file__).resolve().parent.parent


def configs_dir() -> Path:
    """`$KSEARCH_CONFIGS` if set (and non-empty), else `<repo root>/configs`."""
    return settings.env_path(settings.CONFIGS) or repo_root() / "configs"


def tasks_dir() -> Path:
    """Directory of the built-in task definitions: `<configs>/tasks`."""
    return configs_dir() / "tasks"


def write_atomic(path: Path, data: str | bytes, *, fsync: bool = False) -> None:
    """Write `data` to `path` so that a reader sees the old file or the whole new one, never half.

    The temporary sits next to `path` (same file system, so the rename is atomic) and carries the
    pid, so two processes writing the same path do not share one. `fsync` makes the content durable
    before the rename (for files a crash must not leave empty).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    payload = data.encode() if isinstance(data, str) else data
    try:
        with open(tmp, "wb") as f:
            f.write(payload)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
