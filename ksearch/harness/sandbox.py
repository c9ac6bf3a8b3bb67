"""Parent side of the sandbox: start workers, hand each one candidate's jobs, watch the clock and memory.

A worker is a fresh `python -m ksearch.harness.worker FD DEVICE` process (the judge, which replays
what a worker recorded, is the same kind of process running `ksearch.harness.judge`) with its own
temporary directory, talking over a socketpair (never stdout: a candidate can print what it likes). It
imports torch and triton, opens the device, reports ready, then serves one candidate's jobs until
the parent kills it. `WorkerPool` keeps spare workers warming while a candidate runs, so the
next candidate does not wait for the imports.
The parent kills a worker that outlives its wall-clock limit (timeout) or grows past its memory
limit (out_of_memory); a worker that dies without replying (os._exit, a signal, a device fault)
is a crash. Replies are read by `ksearch.harness.wire`: plain data and tensors only, no code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Literal

from ksearch import proctree, settings
from ksearch.harness import jail, wire

DEFAULT_MEMORY_MB = 8192
WORKER, JUDGE = "ksearch.harness.worker", "ksearch.harness.judge"  # the two programs a sandbox process runs


def boundary_for(device: str) -> jail.Boundary:
    """The OS boundary workers get here. On a GPU without a PID namespace: the arena is shared by
    legacy CUDA IPC handles, which do not open across PID namespaces (a double-forked child is then
    still killed through the sandbox's network namespace, see `proctree.kill_tree`). KSEARCH_JAIL=off
    turns it off (for finding out whether it is what breaks a machine); packets then say so."""
    if settings.jail_turned_off():
        return jail.Boundary("none", reason="turned off by KSEARCH_JAIL=off")
    return _cuda_boundary() if device == "cuda" else jail.detect_boundary()


@functools.cache
def _cuda_boundary() -> jail.Boundary:
    """The strongest GPU boundary CUDA is seen to start inside. On an H100 host the driver did not
    start under bwrap's seccomp filter (cudaGetDeviceCount error 304; a read-only /proc did the same,
    which `jail` now avoids with a GPU): there the boundary keeps its namespaces and read-only
    filesystem without the filter, and the reason travels into every packet. None when CUDA starts
    in neither."""
    # CUDA IPC (the arena) maps only between processes of one IPC namespace: "mapping of buffer
    # object failed" inside a private one, as under docker without --ipc=host
    full = jail.detect_boundary(pid_namespace=False, ipc_namespace=False)
    if full.tool == "none":
        return full
    last = ""
    for b in (
        (full, jail.detect_boundary(pid_namespace=False, ipc_namespace=False, seccomp=False))
        if full.seccomp
        else (full,)
    ):
        last = _cuda_starts_in(b)
        if not last:
            return (
                b
                if b is full
                else dataclasses.replace(
                    b,
                    reason=f"{b.reason}; CUDA does not start under the seccomp filter on this machine"
                    if b.reason
                    else "CUDA does not start under the seccomp filter on this machine",
                )
            )
    return jail.Boundary(
        "none",
        reason=f"CUDA does not start inside {full.tool} on this machine ({last}); "
        "GPU workers run without an OS boundary",
    )


def _cuda_starts_in(b: jail.Boundary) -> str:
    """'' when `torch.cuda.init()` succeeds inside boundary `b`, else its last line of error."""
    with tempfile.TemporaryDirectory(prefix="ksearch-cuda-probe-") as d:
        proc = jail.spawn(
            [sys.executable, "-c", "import torch; torch.cuda.init()"],
            writable=[d],
            device="cuda",
            boundary=b,
            env={**os.environ, **jail.env_for(d)},
            cwd=d,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _, err = proc.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            proctree.kill_tree(proc.pid)
            _, err = proc.communicate()
    if proc.returncode == 0:
        return ""
    return (err.decode(errors="replace").strip().splitlines() or ["no output"])[-1][:300]


def judge_cache_dir() -> Path:
    """Triton's cache for judges: only trusted processes write it (workers' caches are their own)."""
    path = settings.cache_root() / "judge-triton"
    path.mkdir(parents=True, exist_ok=True)
    return path


_POLL_S = 0.05


@dataclass
class WorkerOutcome:
    kind: Literal["reply", "timeout", "crash", "out_of_memory"]
    reply: dict | None
    seconds: float
    detail: str = ""


class Worker:
    """One sandboxed worker process, started warming at construction."""

    def __init__(self, *, device: str, module: str = WORKER):
        self.tmpdir = tempfile.mkdtemp(prefix="ksearch-worker-" if module == WORKER else "ksearch-judge-")
        # removed when reaped, or at the latest when this object is collected or the interpreter exits
        # (an Evaluator never closed must not leave its workers' directories behind)
        self._remove_tmpdir = weakref.finalize(self, shutil.rmtree, self.tmpdir, ignore_errors=True)
        parent_sock, child_sock = socket.socketpair()
        # Only the CPU judge runs kernels in Triton's interpreter, which needs triton imported that way.
        interpret = module == JUDGE and device == "cpu"
        env = {
            **os.environ,
            **jail.env_for(self.tmpdir),
            "TRITON_INTERPRET": "1" if interpret else "0",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        }
        writable = [self.tmpdir]
        if module == JUDGE:  # judges compile the same kernels again and again: one cache they alone write
            cache = judge_cache_dir()
            env["TRITON_CACHE_DIR"] = str(cache)
            writable.append(str(cache))
        if device != "cuda":
            env["CUDA_VISIBLE_DEVICES"] = ""
        self.boundary = boundary_for(device)
        self.stderr = tempfile.TemporaryFile()  # a file, not a pipe: a chatty candidate cannot block on it
        self.proc = jail.spawn(
            [sys.executable, "-m", module, str(child_sock.fileno()), device],
            writable=writable,
            pass_fds=(child_sock.fileno(),),
            device=device,
            boundary=self.boundary,
            env=env,
            cwd=self.tmpdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
            start_new_session=True,
        )
        child_sock.close()
        self.conn = Connection(parent_sock.detach())
        self.device, self.module = device, module
        self.ready = False
        self.namespace: str | None = None  # the sandbox's network namespace, where there is no PID namespace
        self.waited_s = 0.0  # how long a job waited for this worker to finish starting

    def wait_ready(self, timeout_s: float = 120) -> None:
        if self.ready:
            return
        t0 = time.perf_counter()
        ready = self.conn.poll(timeout_s)
        self.waited_s += time.perf_counter() - t0
        if not ready:
            self.kill()
            raise RuntimeError(f"the worker did not start within {timeout_s:g} s")
        try:
            wire.decode(self.conn.recv_bytes())
        except (
            EOFError,
            OSError,
        ):  # died while starting: say why, it is the harness's or the machine's fault
            self.proc.wait()
            self.stderr.seek(0)
            raise RuntimeError(
                f"a {self.module} process died while starting inside its boundary "
                f"({self.boundary.describe()}): {self.stderr.read().decode(errors='replace')[-3000:]}"
            ) from None
        self.ready = True
        if self.boundary.tool != "none" and "pid_namespace" not in self.boundary.properties:
            self.namespace = proctree.namespace_of(self.proc.pid)  # what a double-forked child cannot leave

    def run(self, job: dict, timeout_s: float, memory_mb: int = DEFAULT_MEMORY_MB) -> WorkerOutcome:
        """One job, then the worker is gone."""
        try:
            return self.ask(job, timeout_s, memory_mb)
        finally:
            self.kill()

    def ask(self, job: dict, timeout_s: float, memory_mb: int = DEFAULT_MEMORY_MB) -> WorkerOutcome:
        """One job; the worker stays up for the candidate's next job if it replied, and is killed
        if it did not (timeout, memory, crash)."""
        self.submit(job)
        return self.collect(timeout_s, memory_mb)

    def submit(self, job: dict) -> None:
        """Hand the worker a job and return at once; `collect` waits for its reply."""
        self._t0 = time.perf_counter()
        self.wait_ready()
        try:
            self.conn.send_bytes(wire.encode({**job, "tmpdir": self.tmpdir, "device": self.device}))
        except OSError:
            pass  # the worker died: `collect` reports how

    def collect(self, timeout_s: float, memory_mb: int = DEFAULT_MEMORY_MB) -> WorkerOutcome:
        """The reply to the last `submit`, watching the clock (from the submit) and the memory."""
        t0 = self._t0
        replied = False
        try:
            deadline = t0 + timeout_s
            while True:
                if self.conn.poll(_POLL_S):
                    try:
                        reply = wire.decode(self.conn.recv_bytes())
                        replied = True
                        return WorkerOutcome("reply", reply, time.perf_counter() - t0)
                    except (EOFError, OSError):
                        return self._died(t0)
                    except Exception as e:  # not a plain dict: forged or torn
                        return WorkerOutcome(
                            "crash", None, time.perf_counter() - t0, f"unreadable reply: {e}"
                        )
                if self.proc.poll() is not None:
                    return self._died(t0)
                rss = proctree.tree_rss_mb(
                    self.proc.pid
                )  # the whole sandbox, not the boundary tool's process
                if rss is not None and rss > memory_mb:
                    return WorkerOutcome(
                        "out_of_memory",
                        None,
                        time.perf_counter() - t0,
                        f"worker memory {rss:.0f} MiB exceeded the {memory_mb} MiB limit",
                    )
                if time.perf_counter() > deadline:
                    return WorkerOutcome(
                        "timeout", None, time.perf_counter() - t0, f"no result within {timeout_s:g} s"
                    )
        finally:
            if not replied:
                self.kill()

    def _died(self, t0: float) -> WorkerOutcome:
        code = self.proc.wait()
        self.stderr.seek(0)
        err = self.stderr.read().decode(errors="replace")[-2000:]
        what = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        return WorkerOutcome(
            "crash", None, time.perf_counter() - t0, f"the worker died ({what}) {err}".strip()
        )

    def kill(self, wait: bool = True) -> None:
        """SIGKILL everything in the worker's sandbox (children it started included). `wait=False`
        returns at once (a process holding a device context takes ~0.1 s to die); then `reap` must
        run before its memory is lent again."""
        if not self.conn.closed:
            proctree.kill_tree(self.proc.pid, namespace=self.namespace, wait=False)
            self.conn.close()
        if wait:
            self.reap()

    def reap(self) -> None:
        """Wait until the killed process is gone, with its device context, then clean up."""
        self.proc.wait()
        if not self.stderr.closed:
            self.stderr.close()
            self._remove_tmpdir()


class WorkerPool:
    """Hands out warm workers, one per candidate, and starts a replacement as soon as one is taken.
    A worker needs seconds to start (torch, triton, the device context) and a GPU candidate can take
    less, so on a GPU three spares warm at once."""

    def __init__(self, *, device: str, module: str = WORKER, spares: int | None = None):
        self.device, self.module = device, module
        self.spares = spares if spares is not None else (1 if device == "cpu" else 3)
        self._spare: list[Worker] = []
        self._dying: list[Worker] = []  # killed without waiting; reaped before the next candidate

    def _start(self) -> Worker:
        return Worker(device=self.device, module=self.module)

    def take(self) -> Worker:
        """A warm worker for one candidate; once no earlier candidate's process is left alive, so
        nothing but this candidate can touch memory lent to it."""
        self.reap()
        worker = self._spare.pop(0) if self._spare else self._start()  # the oldest is the warmest
        while len(self._spare) < self.spares:
            self._spare.append(self._start())
        return worker

    def reap(self) -> None:
        """Wait for every released worker to be gone."""
        for dead in self._dying:
            dead.reap()
        self._dying = []

    def release(self, worker: Worker) -> None:
        """Done with a candidate: kill its worker without waiting for it to die (the caller goes on
        judging meanwhile); the next `take` reaps it."""
        worker.kill(wait=False)
        if worker not in self._dying:
            self._dying.append(worker)

    @contextlib.contextmanager
    def session(self, worker: Worker | None = None) -> Iterator[Worker]:
        """`worker` (default: `take`), and `release` on the way out whatever happens."""
        worker = worker or self.take()
        try:
            yield worker
        finally:
            self.release(worker)

    def close(self) -> None:
        for worker in self._spare + self._dying:
            worker.kill()
        self._spare, self._dying = [], []

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
