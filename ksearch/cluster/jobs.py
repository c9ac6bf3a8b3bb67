"""What crosses between the driver and the evaluator actors (plain data, no Ray).

A candidate travels as its source bytes, never as a path: an actor on another node cannot read the
driver's run directory. The task travels once per actor as a `TaskBundle` (its directory's files);
an actor that finds the same task at the same reference (a built-in task of the same ksearch, or a
shared filesystem) loads it there, so its packets name the task exactly as the local path's do.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ksearch.errors import ConfigError
from ksearch.search.pipeline import EvalSpec
from ksearch.task import Task

TASK_BYTES_LIMIT = 64 << 20  # a task directory shipped to the actors; larger ones are refused


@dataclass(frozen=True)
class EvalRequest:
    """An evaluation as an actor receives it."""

    candidate_id: str
    attempt: int
    filename: str  # the blob's file name: its suffix says the language
    source: bytes
    display_path: str  # the driver's path of the source: what the packet names instead of the actor's copy
    spec: EvalSpec


def _files(root: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or any(p.startswith(".") or p == "__pycache__" for p in rel.parts):
            continue
        files[rel.as_posix()] = path.read_bytes()
    return files


def files_digest(files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()


@dataclass(frozen=True)
class TaskBundle:
    """A task as the driver loaded it: how `--task` names it, and its directory's files."""

    ref: str
    root: str  # the driver's task directory
    files: dict[str, bytes]
    digest: str

    @classmethod
    def of(cls, task: Task) -> TaskBundle:
        root = task.root.resolve()
        files = _files(root)
        size = sum(len(b) for b in files.values())
        if size > TASK_BYTES_LIMIT:
            raise ConfigError(
                f"task {task.name}: its directory {root} holds {size >> 20} MiB, more than the "
                f"{TASK_BYTES_LIMIT >> 20} MiB shipped to each evaluator; keep data files outside it"
            )
        return cls(task.ref, str(root), files, files_digest(files))

    def same_at(self, root: Path) -> bool:
        """Whether `root` holds this task, byte for byte."""
        return root.is_dir() and files_digest(_files(root)) == self.digest

    def write(self, directory: Path) -> Path:
        """The task's files under `directory`; returns the task's directory."""
        root = directory / Path(self.root).name
        for rel, data in self.files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return root
