"""Runtime guard for the worker: a Python audit hook (PEP 578) that blocks what a kernel has no
business doing, when the candidate's own code does it.

Blocked: network (socket), processes (subprocess, os.system/exec/spawn/fork/kill), native code
loading (ctypes), frame and heap introspection (sys._getframe, gc referrers/objects), and writing
files outside the worker's temporary directory. Triton and torch may still do these things on the
candidate's behalf (Triton builds its launcher with a C compiler): an event is blocked only when the
innermost frame outside the standard library is in the candidate's file. Audit hooks cannot be
removed once installed, so the candidate cannot switch the guard off. Each blocked event raises
PermissionError in the candidate and is recorded, so catching the error does not hide it.

This is defence in depth behind the static checks, not an OS sandbox: code that already runs in
the process can do damage the hook never sees (a C extension, say), which is why the static checks
refuse such imports before the candidate is ever run.
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path
from types import FrameType

_BLOCKED_PREFIXES = ("socket.", "subprocess.", "os.exec", "os.spawn", "os.posix_spawn", "ctypes.")
# Introspection events count only when the candidate's own line makes them: the standard library
# takes frames for its own bookkeeping (namedtuple, warnings) when the candidate merely imports it.
_DIRECT = {"sys._getframe", "sys._current_frames", "gc.get_objects", "gc.get_referrers", "gc.get_referents"}
_BLOCKED = {
    "os.system",
    "os.fork",
    "os.forkpty",
    "os.kill",
    "os.killpg",
    "os.putenv",
    "os.unsetenv",
    "sys.setprofile",
    "sys.settrace",
    "os.chdir",
}
# File changes are allowed inside the worker's own directory only.
_FILE_CHANGES = {
    "os.remove",
    "os.rename",
    "os.rmdir",
    "shutil.rmtree",
    "os.symlink",
    "os.link",
    "os.truncate",
    "os.mkdir",
}
_WRITE_MODES = set("wax+")


def install_guard(candidate_path: str, writable_dir: str, violations: list[str]) -> None:
    candidate = str(Path(candidate_path))
    writable = str(Path(writable_dir).resolve())
    stdlib = tuple(
        str(Path(p).resolve()) for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}
    )
    this_file = __file__
    getframe = sys._getframe
    busy = [False]  # the hook's own frame walk raises sys._getframe events: don't recurse into them

    def candidate_is_caller(direct: bool) -> bool:
        frame: FrameType | None = getframe(2)
        if direct:
            return frame is not None and frame.f_code.co_filename == candidate
        while frame is not None:
            name = frame.f_code.co_filename
            if name == candidate:
                return True
            if name.startswith("<frozen importlib"):
                return False  # a module being imported does this at import time, not the candidate's line
            # Some layouts put site-packages under the stdlib directory: a package is never stdlib.
            in_stdlib = name.startswith(stdlib) and "-packages" not in name
            if name != this_file and not in_stdlib and not name.startswith("<frozen"):
                return False  # torch, triton, ksearch or another library acts on its own behalf
            frame = frame.f_back
        return False

    def hook(event: str, args: tuple) -> None:
        if busy[0]:
            return
        direct = event in _DIRECT
        blocked = direct or event in _BLOCKED or event.startswith(_BLOCKED_PREFIXES)
        if event == "open" and len(args) >= 2 and isinstance(args[1], str) and _WRITE_MODES & set(args[1]):
            blocked = not _inside(args[0], writable)
        elif event in _FILE_CHANGES and args:
            blocked = not _inside(args[0], writable)
        if not blocked:
            return
        busy[0] = True
        try:
            by_candidate = candidate_is_caller(direct)
        finally:
            busy[0] = False
        if not by_candidate:
            return
        violations.append(f"{event} {_brief(args)}")
        raise PermissionError(f"ksearch sandbox: a candidate may not do {event}")

    sys.addaudithook(hook)


def _inside(path: object, directory: str) -> bool:
    try:
        return str(Path(str(path)).resolve()).startswith(directory)
    except (OSError, ValueError):
        return False


def _brief(args: tuple) -> str:
    text = ", ".join(repr(a) for a in args[:2])
    return text[:160]
