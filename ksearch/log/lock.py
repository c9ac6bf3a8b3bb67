"""One writer per run directory: `writer.lock`, flocked for the writer's whole lifetime.

A `ksearch run` (new or `--resume`) holds an exclusive, non-blocking flock on RUN_DIR/writer.lock
from before its first row to its last. A second writer is refused at once with the holder's pid,
host and start time, which the holder wrote into the file. The kernel drops a flock when its
process dies, however it dies, so a killed run never leaves a stale lock behind: the file's
contents only name the holder, they never decide who holds it.

A flock belongs to the open file, which a forked child (the compile pool's workers) shares: such a
child would keep the lock after its writer is killed. Every forked child therefore closes the lock
files it inherited, which leaves the parent's lock in place.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ksearch.errors import LogError
from ksearch.log.history import utc_now

WRITER_LOCK = "writer.lock"


class RunInUseError(LogError):
    """Another process is writing this run directory."""


_held_fds: set[int] = set()  # the lock files this process holds open


def _close_inherited_locks() -> None:
    for fd in _held_fds:
        try:
            os.close(fd)
        except OSError:
            pass
    _held_fds.clear()


os.register_at_fork(after_in_child=_close_inherited_locks)


@contextmanager
def writer_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's writer lock for the block; RunInUseError, naming the holder, when
    another process holds it."""
    path = Path(run_dir) / WRITER_LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    _held_fds.add(fd)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunInUseError(
                f"{run_dir} is being written by {_holder(path)}; one run directory has one writer: wait for "
                "that run to stop (or stop it) before resuming"
            ) from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": utc_now(), "argv": sys.argv[:6]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # still under the lock: a reader never sees a finished writer named
    finally:
        _held_fds.discard(fd)
        os.close(fd)  # closing releases the flock


def _holder(path: Path) -> str:
    """Who holds the lock, from what it wrote into the file."""
    try:
        h = json.loads(path.read_text())
        return f"pid {h['pid']} on host {h['host']} since {h['since']} ({' '.join(h.get('argv') or [])})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (it has not written its name yet)"
