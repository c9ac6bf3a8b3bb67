"""Import every problem under a directory, each in its own process with a memory and a time limit.

    problems_in(root, fmt) -> (fmt, problems, skipped)     what a folder holds, in which format
    import_all(root, ...) -> BulkReport                      import them all; one bad problem stops none
    render_report(report) -> rich renderable                 the closing table (80 columns)

The folders it reads: a KernelBench level folder (every `*.py` problem file under it), a GPU MODE
`problems/` tree (every directory holding a reference.py and a task.yml) and a FlashInfer-Bench
dataset (every definition .json under `definitions/`, its workloads under `workloads/`).

How a problem runs: a worker process (`python -m ksearch.task.importers.bulk`) imports torch and the
format modules once, then forks one child per problem, a fresh copy-on-write process, so whatever a
problem's code does to torch or to the interpreter dies with it. The child imports the problem with
`import_task` into a staging folder and writes what came of it as JSON. This process polls the
child's resident memory (`proctree.tree_rss_mb`, the child and everything it started) and its time, and
kills it (`proctree.kill_tree`) over either limit; the clock starts when the child does, so the worker's
own start-up is not charged to the first problem. Only this process moves staged tasks into the
output folder, so a killed or refused import leaves nothing there.

Each problem ends as one of:
  imported      written, with CPU-sized workloads
  target_only   written; its task.yaml says verification needs the target machine (`target_only`)
  refused       not written: the importer's reason, a crash, or a kill (memory or time)
  degenerate    the honesty checks flag it (`common.honesty_flags`): not written unless `force`
"""

from __future__ import annotations

import ctypes
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, computed_field

from ksearch.errors import KsearchError, TaskError
from ksearch.paths import write_atomic
from ksearch.proctree import kill_tree, tree_rss_mb
from ksearch.task.importers import BUILTIN_FORMATS, formats, import_task, importer
from ksearch.task.importers.common import task_name

__all__ = ["BulkReport", "ProblemResult", "import_all", "is_collection", "problems_in", "render_report"]

MEMORY_MB = 2048  # default resident-memory limit of one problem's import
TIMEOUT_S = 60.0  # default time limit of one problem's import
STATUSES = ("imported", "target_only", "refused", "degenerate")
ImportStatus = Literal["imported", "target_only", "refused", "degenerate"]
_POLL_S = 0.05  # how often a running child's memory and time are looked at
_START_S = 300.0  # how long a worker may take to import torch and the importers
_RESULT = "result.json"
_LOG = "log.txt"


# ---------------------------------------------------------------------------------------------
# What a folder holds


def is_collection(path: Path, fmt: str | None = None) -> bool:
    """A directory that is not itself one problem (a GPU MODE problem folder, or a folder holding one
    FlashInfer-Bench definition, is one problem): `tasks import` imports what it holds one by one."""
    path = Path(path)
    if not path.is_dir():
        return False
    return not any(importer(f).detect(path) for f in ([fmt] if fmt else formats()))


def _gpumode_dirs(root: Path) -> list[Path]:
    return sorted(
        {
            p.parent
            for p in root.rglob("reference.py")
            if (p.parent / "task.yml").is_file() or (p.parent / "task.yaml").is_file()
        }
    )


def _definition_files(root: Path) -> list[Path]:
    from ksearch.task.importers.flashinfer import _looks_like_definition

    folder = root / "definitions"
    if folder.is_dir():  # a dataset: every .json there is meant to be a definition
        return sorted(folder.rglob("*.json"))
    return sorted(p for p in root.rglob("*.json") if _looks_like_definition(p))


def _kernelbench_files(root: Path) -> tuple[list[Path], list[Path]]:
    from ksearch.task.importers.kernelbench import detect

    files = sorted(p for p in root.rglob("*.py") if p.name != "__init__.py")
    found = [p for p in files if detect(p)]
    return found, [p for p in files if p not in found]


def problems_in(root: Path, fmt: str | None = None) -> tuple[str, list[Path], list[Path]]:
    """The format of the folder `root` (`fmt` if given), its problems (files or directories) and the
    files passed over as not being problems (.py files with no `class Model`/`def get_inputs`)."""
    root = Path(root)
    if not root.is_dir():
        raise TaskError(f"{root} is not a directory")
    if fmt is not None and fmt not in BUILTIN_FORMATS:
        raise TaskError(f"unknown format {fmt!r}; use one of: {', '.join(BUILTIN_FORMATS)}")
    if fmt is None:
        if (root / "definitions").is_dir():
            fmt = "flashinfer"
        elif _gpumode_dirs(root):
            fmt = "gpumode"
        elif _kernelbench_files(root)[0]:
            fmt = "kernelbench"
        elif _definition_files(root):
            fmt = "flashinfer"
        else:
            raise TaskError(
                f"{root} holds no problem: no KernelBench .py (class Model, get_inputs), no GPU MODE "
                "folder (reference.py + task.yml) and no FlashInfer-Bench definitions/ folder; pass a "
                "problem's own path, or --format if the folder is in one of these formats"
            )
    skipped: list[Path] = []
    if fmt == "kernelbench":
        problems, skipped = _kernelbench_files(root)
    elif fmt == "gpumode":
        problems = _gpumode_dirs(root)
    else:
        problems = _definition_files(root)
    if not problems:
        raise TaskError(f"{root} holds no {fmt} problem; check the folder, or pass --format")
    return fmt, problems, skipped


# ---------------------------------------------------------------------------------------------
# Results


class ProblemResult(BaseModel):
    """What came of one problem."""

    problem: str  # its path under the folder
    status: ImportStatus
    task: str | None = None  # the task's name (also when not written)
    directory: str | None = None  # where it was written; None when it was not
    reason: str | None = None  # refused: why; degenerate: the flags; target_only: what needs the target
    flags: list[str] = Field(default_factory=list)  # honesty flags
    inferred: list[str] = Field(default_factory=list)  # what the importer inferred rather than read
    killed: Literal["memory", "timeout"] | None = None
    seconds: float = 0.0  # the child's wall time
    peak_rss_mb: float | None = None  # the child's largest resident memory seen


class BulkReport(BaseModel):
    """Every problem of a folder and what came of it."""

    root: str
    format: str
    out: str
    memory_mb: int
    timeout_s: float
    force: bool = False
    problems: list[ProblemResult] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)  # files passed over as not problems
    seconds: float = 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def counts(self) -> dict[str, int]:
        return {s: sum(p.status == s for p in self.problems) for s in STATUSES}


# ---------------------------------------------------------------------------------------------
# The worker and its children (this module run as `python -m ksearch.task.importers.bulk`)


class _Request(BaseModel):
    path: str
    fmt: str
    name: str | None = None
    staging: str  # an empty folder the child writes the task (and its result and log) into
    force: bool = False


class _Staged(BaseModel):
    name: str
    directory: str
    inferred: list[str] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list)
    target_only: str | None = None


class _ChildResult(BaseModel):
    staged: _Staged | None = None
    error: str | None = None  # why nothing was staged


class _Message(BaseModel):
    kind: Literal["ready", "started", "finished"]
    pid: int | None = None  # started: the child's
    rss_mb: float | None = None  # ready: the worker's resident memory (what every child starts with)
    result: _ChildResult | None = None  # finished


def _one_line(text: object) -> str:
    """`text` (a message, or an exception's) on one line."""
    return " ".join(str(text).split())


def _target_only(task_yaml: Path) -> str | None:
    """The written task's `target_only` field (`reason`, `targets`) as one line; None when it has none."""
    value = (yaml.safe_load(task_yaml.read_text()) or {}).get("target_only")
    if not value:
        return None
    if isinstance(value, dict):
        targets = ", ".join(str(t) for t in value.get("targets") or [])
        reason = _one_line(value.get("reason") or "verification needs the target machine")
        return f"{reason} (verified on {targets})" if targets else reason
    return _one_line(value) if isinstance(value, str) else "verification needs the target machine"


def _import_one(req: _Request) -> _ChildResult:
    try:
        # force: a flagged problem is staged with its flags, and this process's parent decides
        imported = import_task(
            Path(req.path), fmt=req.fmt, name=req.name, out=Path(req.staging) / "out", force=True
        )
    except KsearchError as exc:
        return _ChildResult(error=_one_line(exc))
    except MemoryError:
        return _ChildResult(error="ran out of memory (MemoryError)")
    # the problem's code or an importer bug: either way this problem is refused, said why
    except Exception as exc:
        return _ChildResult(error=f"the import crashed: {type(exc).__name__}: {_one_line(exc)}")
    return _ChildResult(
        staged=_Staged(
            name=imported.name,
            directory=str(imported.directory),
            inferred=imported.inferred,
            flags=imported.flags,
            target_only=_target_only(imported.directory / "task.yaml"),
        )
    )


def _die_with_parent() -> None:
    """SIGKILL this process when its parent dies (Linux PR_SET_PDEATHSIG), so nothing outlives the import."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent's kill_tree still reaches it
        return


def _child(req: _Request, channel: int) -> None:
    """The forked child: import one problem, write the result file, exit. Never returns."""
    staging = Path(req.staging)
    try:
        os.close(channel)
        os.setpgid(0, 0)
        _die_with_parent()
        log = os.open(staging / _LOG, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        result = _import_one(req)
    except BaseException as exc:  # SystemExit or the like from a problem's code: report it, then leave
        result = _ChildResult(error=f"the import stopped: {type(exc).__name__}: {_one_line(exc)}")
    try:
        write_atomic(staging / _RESULT, result.model_dump_json())
    finally:
        os._exit(0)


def _exit_reason(status: int, log: Path) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            what = f"was killed by signal {signal.Signals(sig).name}"
        except ValueError:
            what = f"was killed by signal {sig}"
    else:
        what = f"exited with code {os.waitstatus_to_exitcode(status)}"
    tail = ""
    if log.is_file():
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        tail = f": {_one_line(lines[-1])[:300]}" if lines else ""
    return f"the import process {what} before reporting a result{tail}"


def serve() -> None:
    """The worker: read one _Request per line on stdin, fork a child for it, answer with _Messages on stdout."""
    _die_with_parent()
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything printed (ours or a problem's) goes to stderr, never into the channel

    def send(msg: _Message) -> None:
        channel.write(msg.model_dump_json(exclude_none=True) + "\n")
        channel.flush()

    for fmt in BUILTIN_FORMATS:
        importer(fmt)
    send(_Message(kind="ready", rss_mb=tree_rss_mb(os.getpid())))
    while line := sys.stdin.readline():
        req = _Request.model_validate_json(line)
        staging = Path(req.staging)
        staging.mkdir(parents=True, exist_ok=True)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(req, channel.fileno())
        send(_Message(kind="started", pid=pid))
        _, status = os.waitpid(pid, 0)
        result_file = staging / _RESULT
        if result_file.is_file():
            result = _ChildResult.model_validate_json(result_file.read_text())
        else:
            result = _ChildResult(error=_exit_reason(status, staging / _LOG))
        send(_Message(kind="finished", result=result))


# ---------------------------------------------------------------------------------------------
# The parent: running every problem through the workers


@dataclass
class _Job:
    path: Path
    name: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class _Worker:
    proc: subprocess.Popen
    buf: bytes = b""
    ready: bool = False
    job: _Job | None = None
    staging: Path | None = None
    pid: int | None = None
    started: float = 0.0
    peak: float = 0.0
    killed: Literal["memory", "timeout"] | None = None
    kill_note: str = ""

    def send(self, req: _Request) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((req.model_dump_json() + "\n").encode())
        self.proc.stdin.flush()


def _start_worker(sel: selectors.BaseSelector, log: Path) -> _Worker:
    import ksearch

    env = dict(os.environ)
    src = str(
        Path(ksearch.__file__).resolve().parent.parent
    )  # a checkout that is not installed still imports
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    with log.open("ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ksearch.task.importers.bulk"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            start_new_session=True,
        )
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    worker = _Worker(proc)
    sel.register(proc.stdout, selectors.EVENT_READ, worker)
    return worker


def _stop_worker(sel: selectors.BaseSelector, w: _Worker) -> None:
    assert w.proc.stdout is not None
    try:
        sel.unregister(w.proc.stdout)
    except (KeyError, ValueError):
        pass
    if w.proc.poll() is None:
        kill_tree(w.proc.pid)
    w.proc.wait()
    for stream in (w.proc.stdin, w.proc.stdout):
        if stream is not None:
            try:
                stream.close()
            except OSError:  # a broken pipe to a worker that died
                pass


def _kill_child(w: _Worker) -> None:
    if w.pid is None:
        return
    try:
        os.killpg(
            w.pid, signal.SIGKILL
        )  # the child leads its own process group: strays that left its tree too
    except (ProcessLookupError, PermissionError):
        pass
    kill_tree(w.pid)


def _messages(w: _Worker) -> tuple[list[_Message], bool]:
    """The complete lines the worker has sent, and whether it has closed its end (died)."""
    assert w.proc.stdout is not None
    eof = False
    while True:
        try:
            chunk = os.read(w.proc.stdout.fileno(), 65536)
        except BlockingIOError:
            break
        if not chunk:
            eof = True
            break
        w.buf += chunk
    *lines, w.buf = w.buf.split(b"\n")
    return [_Message.model_validate_json(line) for line in lines if line.strip()], eof


def _worker_log_tail(log: Path) -> str:
    lines = (
        [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        if log.is_file()
        else []
    )
    return _one_line(lines[-1])[:300] if lines else "nothing on its stderr"


def _write(staged: _Staged, final: Path, base: dict, detail: dict) -> ProblemResult:
    """Move a staged task to its place; what it is then (imported, target-only, degenerate under --force)."""
    try:
        shutil.move(staged.directory, final)
    except OSError as exc:
        return ProblemResult(status="refused", reason=f"could not write {final}: {exc}", **base, **detail)
    if staged.flags:
        return ProblemResult(
            status="degenerate",
            directory=str(final),
            **base,
            **detail,
            reason="; ".join(staged.flags) + " (written with --force)",
        )
    status: ImportStatus = "target_only" if staged.target_only else "imported"
    return ProblemResult(status=status, directory=str(final), reason=staged.target_only, **base, **detail)


def import_all(
    root: Path,
    *,
    fmt: str | None = None,
    out: Path | None = None,
    force: bool = False,
    memory_mb: int = MEMORY_MB,
    timeout_s: float = TIMEOUT_S,
    jobs: int = 1,
    on_progress: Callable[[int, int, str | None], None] | None = None,
) -> BulkReport:
    """Import every problem under the folder `root` into `out` (default: the built-in tasks' folder), each in
    its own process killed over `memory_mb` of resident memory or `timeout_s` seconds, `jobs` at a time.
    `on_progress(done, total, problem)` is called as problems start and finish. A problem whose task
    name another problem of this folder already took is imported again as `<its parent folder>_<name>`."""
    from ksearch.paths import configs_dir

    t0 = time.monotonic()
    root = Path(root)
    fmt, problems, skipped = problems_in(root, fmt)
    if memory_mb < 1 or timeout_s <= 0 or jobs < 1:
        raise TaskError("--memory-mb, --timeout and --jobs must be positive")
    out = Path(out or configs_dir() / "tasks")
    out.mkdir(parents=True, exist_ok=True)
    report = BulkReport(
        root=str(root),
        format=fmt,
        out=str(out),
        memory_mb=memory_mb,
        timeout_s=timeout_s,
        force=force,
        skipped=[str(p.relative_to(root)) for p in skipped],
    )
    total = len(problems)
    results: dict[Path, ProblemResult] = {}
    taken: dict[str, Path] = {}  # task names written by this import -> the problem that took each
    queue = deque(_Job(p) for p in problems)
    progress = on_progress or (lambda done, total, current: None)
    staging_root = Path(tempfile.mkdtemp(prefix=".ksearch-import-", dir=out))
    worker_log = staging_root / "workers.log"
    sel = selectors.DefaultSelector()
    workers: list[_Worker] = []
    serial = 0

    def rel(p: Path) -> str:
        return str(p.relative_to(root)) if p != root else p.name

    def finish(w: _Worker, result: _ChildResult | None, dead: str | None = None) -> None:
        job, staging = w.job, w.staging
        assert job is not None and staging is not None
        seconds = round(time.monotonic() - w.started, 2) if w.pid is not None else 0.0
        base: dict[str, Any] = dict(
            problem=rel(job.path), seconds=seconds, peak_rss_mb=round(w.peak, 1) if w.peak else None
        )
        staged = result.staged if result and not w.killed else None
        res: ProblemResult | None
        if w.killed:
            res = ProblemResult(status="refused", reason=w.kill_note, killed=w.killed, **base)
        elif staged is None:
            reason = dead or (result.error if result else None) or "no result"
            res = ProblemResult(status="refused", reason=reason, **base)
        else:
            final = out / staged.name
            detail: dict[str, Any] = dict(
                task=staged.name, flags=staged.flags, inferred=[*job.notes, *staged.inferred]
            )
            other = rel(taken[staged.name]) if staged.name in taken else None
            qualified = (
                task_name(f"{job.path.parent.name}_{staged.name}")
                if other and job.name is None and job.path.parent != root
                else None
            )
            if qualified and qualified not in taken and not (out / qualified).exists():
                # another problem of this folder took the name: this one again, named after its folder
                note = f"task named {qualified}: {staged.name} is the task of {other}, imported before it"
                queue.appendleft(_Job(job.path, qualified, [note]))
                res = None
            elif other:
                res = ProblemResult(
                    status="refused",
                    reason=f"task name {staged.name} is taken by {other}; import "
                    "this problem alone with --name",
                    **base,
                    **detail,
                )
            elif final.exists():
                res = ProblemResult(
                    status="refused",
                    reason=f"{final} already exists; remove it or import into another --out",
                    **base,
                    **detail,
                )
            elif staged.flags and not force:
                res = ProblemResult(
                    status="degenerate",
                    reason="; ".join(staged.flags) + " (not written; --force writes it with the flags)",
                    **base,
                    **detail,
                )
            else:
                res = _write(staged, final, base, detail)
                if res.directory:
                    taken[staged.name] = job.path
        shutil.rmtree(staging, ignore_errors=True)
        w.job, w.staging, w.pid, w.peak, w.killed, w.kill_note = None, None, None, 0.0, None, ""
        if res is not None:
            results[job.path] = res
            progress(len(results), total, None)

    def dispatch(w: _Worker) -> None:
        nonlocal serial
        job = queue.popleft()
        serial += 1
        w.job, w.staging, w.started = job, staging_root / f"p{serial}", time.monotonic()
        w.send(_Request(path=str(job.path), fmt=fmt, name=job.name, staging=str(w.staging), force=force))
        progress(len(results), total, rel(job.path))

    try:
        workers = [_start_worker(sel, worker_log) for _ in range(min(jobs, total))]
        start_by = time.monotonic() + _START_S
        progress(0, total, None)
        while queue or any(w.job for w in workers):
            for w in workers:
                if w.ready and w.job is None and queue:
                    dispatch(w)
            for key, _ in sel.select(_POLL_S):
                w = key.data
                msgs, eof = _messages(w)
                for msg in msgs:
                    if msg.kind == "ready":
                        w.ready = True
                        if msg.rss_mb and msg.rss_mb >= memory_mb:
                            raise TaskError(
                                f"--memory-mb {memory_mb} is below what the import worker holds before "
                                f"any problem runs ({msg.rss_mb:.0f} MiB); raise it"
                            )
                    elif msg.kind == "started":
                        w.pid, w.started = msg.pid, time.monotonic()
                    elif w.job is not None:
                        finish(w, msg.result)
                if eof:  # the worker died (not a child: the worker itself); start another for what is left
                    why = f"the import worker died ({_worker_log_tail(worker_log)})"
                    if not w.ready:
                        raise TaskError(f"the import worker did not start: {_worker_log_tail(worker_log)}")
                    if w.job is not None:
                        finish(w, None, dead=why)
                    _stop_worker(sel, w)
                    workers[workers.index(w)] = _start_worker(sel, worker_log)
            now = time.monotonic()
            for w in workers:
                if not w.ready and now > start_by:
                    raise TaskError(
                        f"the import worker did not start within {_START_S:.0f} s "
                        f"({_worker_log_tail(worker_log)})"
                    )
                if w.pid is None or w.killed:
                    continue
                rss = tree_rss_mb(w.pid) or 0.0
                w.peak = max(w.peak, rss)
                if rss > memory_mb:
                    w.killed = "memory"
                    w.kill_note = (
                        f"killed for memory: over the {memory_mb} MiB limit (--memory-mb), "
                        f"{rss:.0f} MiB resident"
                    )
                elif now - w.started > timeout_s:
                    w.killed = "timeout"
                    w.kill_note = f"killed for time: over the {timeout_s:g} s limit (--timeout)"
                if w.killed:
                    _kill_child(w)  # the worker reaps it and answers `finished`; the kill note stands
    finally:
        for w in workers:
            if w.pid is not None:
                _kill_child(w)
            _stop_worker(sel, w)
        sel.close()
        shutil.rmtree(staging_root, ignore_errors=True)
    report.problems = [results[p] for p in problems]
    report.seconds = round(time.monotonic() - t0, 1)
    return report


# ---------------------------------------------------------------------------------------------
# The closing table


_LABELS = {
    "imported": ("imported", "green"),
    "target_only": ("target-only", "cyan"),
    "refused": ("refused", "red"),
    "degenerate": ("degenerate", "yellow"),
}


_PROBLEM_WIDTH = 30


def _short_reason(p: ProblemResult, root: str) -> str:
    """The reason as the table shows it: without the folder's path, nor a leading "<name>: " (or
    "definition <name>: ", "task <name>: ") that the problem column already says."""
    reason = (p.reason or "").replace(root, "")
    stem = Path(p.problem).stem
    try:
        named = task_name(stem)
    except TaskError:
        named = None
    for name in dict.fromkeys(n for n in (p.task, stem, named) if n):
        for lead in (f"definition {name}: ", f"task {name}: ", f"{name}: "):
            if reason.startswith(lead):
                return reason[len(lead) :]
    return reason


def render_report(report: BulkReport, width: int | None = None):
    """The folder's import as a header, a count line and one table row per problem, grouped by result;
    a reason is cut to the row's one line (the JSON report has it whole), the folder's path left out."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    counts = report.counts
    n = len(report.problems)
    head = Text(
        f"{report.format}: {n} problem{'s' if n != 1 else ''} in {report.seconds:g} s\n", style="bold"
    )
    head = Text.assemble(
        head, f"  from {report.root}\n  into {report.out}"
    )  # whole paths, on their own lines
    line = Text()
    for i, s in enumerate(STATUSES):
        label, style = _LABELS[s]
        line.append(("   " if i else "") + f"{label} {counts[s]}", style=style if counts[s] else "dim")
    parts: list = [head, line]
    if report.skipped:
        parts.append(
            Text(
                f"skipped {len(report.skipped)} file(s), not {report.format} problems: "
                + ", ".join(report.skipped),
                style="dim",
                overflow="ellipsis",
                no_wrap=True,
            )
        )
    root = report.root.rstrip("/") + "/"
    # the folders every problem shares (definitions/ of a dataset) are said once, in the column's header
    shared = os.path.commonpath([str(Path(p.problem).parent) for p in report.problems]) if n else ""
    shared = "" if shared in ("", ".") else shared + "/"
    table = Table(box=None, pad_edge=False, padding=(0, 1), show_edge=False, expand=True, width=width)
    table.add_column("result", no_wrap=True, min_width=11)
    table.add_column(
        f"problem (in {shared})" if shared else "problem", no_wrap=True, max_width=_PROBLEM_WIDTH
    )
    table.add_column("task / reason", no_wrap=True, overflow="ellipsis", ratio=1)
    for s in STATUSES:
        label, style = _LABELS[s]
        for p in report.problems:
            if p.status != s:
                continue
            problem = p.problem[len(shared) :]
            if len(problem) > _PROBLEM_WIDTH:  # the end of a path names the problem: cut its start
                problem = "…" + problem[-(_PROBLEM_WIDTH - 1) :]
            reason = _short_reason(p, root)
            detail = (
                p.task
                if s == "imported"
                else reason
                if s == "refused" or not p.task
                else f"{p.task}: {reason}"
            )
            table.add_row(Text(label, style=style), problem, detail or "")
    if n:
        parts.append(table)
    return Group(*parts)


if __name__ == "__main__":
    serve()
