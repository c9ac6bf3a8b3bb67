"""Run directories: experiment_log/<run id>/ with history.jsonl, head.json, attempts.db, blobs/."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path

from ksearch.errors import LogError
from ksearch.paths import write_atomic

BLOBS = "blobs"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def new_run_id(label: str) -> str:
    """A sortable, unique run id: UTC time, a label (the task), a random suffix."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    label = re.sub(r"[^A-Za-z0-9_-]+", "-", label).strip("-") or "run"
    return f"{stamp}-{label}-{secrets.token_hex(3)}"


def make_run_dir(log_root: Path, run_id: str) -> Path:
    if not _RUN_ID.match(run_id):
        raise LogError(
            f"run id {run_id!r} is not usable as a directory name; use letters, digits, '.', '_', '-'"
        )
    run_dir = Path(log_root) / run_id
    (run_dir / BLOBS).mkdir(parents=True, exist_ok=True)
    return run_dir


def put_blob(run_dir: Path, data: bytes, suffix: str = "") -> str:
    """Store bytes content-addressed; return the path relative to the run directory."""
    digest = hashlib.sha256(data).hexdigest()
    rel = f"{BLOBS}/{digest[:2]}/{digest}{suffix}"
    path = Path(run_dir) / rel
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)  # a reader never sees half a blob
    return rel


def read_blob(run_dir: Path, rel: str) -> bytes:
    path = Path(run_dir) / rel
    try:
        data = path.read_bytes()
    except OSError as e:
        raise LogError(
            f"blob {rel} of {run_dir} cannot be read ({e.strerror}); the run directory is incomplete"
        ) from e
    digest = Path(rel).name.split(".")[0]
    if hashlib.sha256(data).hexdigest() != digest:
        raise LogError(f"blob {rel} of {run_dir} does not match its hash: it was modified")
    return data
