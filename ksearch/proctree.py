"""The process tree of a sandboxed worker or import child: its descendants, their resident memory,
and killing all of it. Linux /proc only. Below the harness and the importers, which both use it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def _stat(pid: int) -> tuple[int, str] | None:
    """(ppid, state) of a live process, None if it is gone."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
        try:
            text = os.read(fd, 4096)
        finally:
            os.close(fd)
    except OSError:
        return None
    fields = text[text.rfind(b")") + 2 :].split()
    return int(fields[1]), fields[0].decode()


def tree_pids(pid: int, *, include_dead: bool = False) -> list[int]:
    """`pid`'s descendants, parents before children (zombies left out unless `include_dead`).
    With the boundary's PID namespace the worker is a grandchild of the Popen's pid (bwrap, then
    bwrap as the namespace's init), and everything it starts stays under that init."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st and (include_dead or st[1] not in "ZX"):
                children.setdefault(st[0], []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(0), ()):
            out.append(c)
            todo.append(c)
    return out


def tree_rss_mb(pid: int) -> float | None:
    """Resident memory of `pid` and all its descendants, in MiB; None if `pid` is gone."""
    total, seen = 0.0, False
    for p in [pid, *tree_pids(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
                    seen = True
        except (OSError, ValueError, IndexError):
            continue
    return total if seen else None


def namespace_of(pid: int) -> str | None:
    """The network namespace of the sandbox that `pid` (the Popen's process) runs: that of its
    first descendant whose namespace differs from this process's; None if there is none (yet).
    Nothing inside can leave it (no capabilities, no new namespaces), so `kill_tree` finds by it
    the processes that left the tree, as a double fork does when there is no PID namespace."""
    ours = os.readlink("/proc/self/ns/net")
    for p in tree_pids(pid):
        try:
            ns = os.readlink(f"/proc/{p}/ns/net")
        except OSError:
            continue
        if ns != ours:
            return ns
    return None


def _in_namespace(ns: str) -> list[int]:
    out = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if os.readlink(f"/proc/{entry.name}/ns/net") == ns:
                    st = _stat(int(entry.name))
                    if st and st[1] not in "ZX":
                        out.append(int(entry.name))
            except OSError:
                pass
    return out


def kill_tree(pid: int, *, namespace: str | None = None, wait: bool = True, timeout_s: float = 10.0) -> None:
    """SIGKILL everything inside the sandbox that `pid` (the Popen's process, bwrap) runs: its
    descendants and, with `namespace` (from `namespace_of`, read while the worker ran), every
    process in that network namespace. The caller still reaps `pid` with Popen.wait().

    bwrap exits by itself once its child has; with the PID namespace its child is the namespace's
    init, which the kernel lets go only after every process in the namespace has been reaped. So
    with `wait=False` (one pass, returns at once) a later Popen.wait() still means every process
    of the worker has exited and dropped its device context. Killing bwrap first would not: it
    would return while the sandbox dies asynchronously (PDEATHSIG). With `wait=True` the passes
    repeat until nothing is left alive, then `pid` is killed too (in case bwrap was stopped).
    Without the PID namespace, only `namespace` catches double-forked children, which leave the
    tree but not the namespace: pass it, and wait."""
    if namespace == os.readlink("/proc/self/ns/net"):
        raise ValueError("that is this process's own network namespace")
    deadline = time.monotonic() + timeout_s
    while True:
        alive = tree_pids(pid) + (_in_namespace(namespace) if namespace else [])
        for p in alive:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not wait:
            return
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.002)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
