"""The sandboxed worker: the only process that imports a candidate, and it judges nothing.

Started as `python -m ksearch.harness.worker FD DEVICE` by `ksearch.harness.sandbox` (inside the OS
boundary of `ksearch.harness.jail`), it imports torch and triton, says it is ready, then serves one
candidate: it imports the module and calls the entry once per call of the job, on tensors the
parent lends it (`arena`), with every Triton launch recorded and none compiled or executed
(`recorder`). Each call's reply is its launch trace; the parent validates it and hands it to the
judge (`ksearch.harness.judge`), a process that never imports the candidate and whose outputs are
the ones judged. The parent also reads what the outputs hold after a call here, where no kernel
ran: outputs that are right anyway were computed by the host.

A candidate can monkeypatch anything in this process (the recorder included): the worst it can do
is describe launches of its own kernels on the call's tensors and fresh scratch, which is what the
judge replays and checks anyway. Messages are read by `ksearch.harness.wire`, so a forged reply
cannot run code in the parent.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ksearch.harness import wire


def describe_error(exc: BaseException, path: str) -> dict:
    from ksearch.compile.diagnostics import diagnostics_from_exception

    diags = [d.model_dump(mode="json") for d in diagnostics_from_exception(exc, path)]
    text = f"{type(exc).__name__}: {exc}"
    return {
        "type": type(exc).__name__,
        "message": text[:2000],
        "diagnostics": diags,
        "gpu_fault": any(
            k in text
            for k in (
                "illegal memory access",
                "CUDA error",
                "misaligned address",
                "unspecified launch failure",
                "HIP error",
            )
        ),
    }


def candidate_entry(module: Any, source: str, entry: str, task_root: str | None) -> Any:
    """The callable the harness calls: the module's entry function, or for a KernelBench-form
    candidate (`class ModelNew`) of a task imported from KernelBench, the importer's adapter. What
    the module names `entry` may be no callable at all (the caller checks)."""
    from ksearch.task.importers.kernelbench import modelnew_entry, uses_modelnew

    root = Path(task_root) if task_root is not None else None
    if root is not None and uses_modelnew(source, root):
        return modelnew_entry(module, root)
    return getattr(module, entry, None)


class _Session:
    """One candidate in one worker: imported once, then each call of the job recorded."""

    def __init__(self, first_job: dict):
        from ksearch.harness.guard import install_guard
        from ksearch.harness.recorder import CallRecorder, recording

        self.path = first_job["candidate"]
        self.device = first_job["device"]
        self.violations: list[str] = []
        install_guard(self.path, first_job["tmpdir"], self.violations)  # defence in depth behind the jail
        self.recorder = CallRecorder()
        self.recording = recording(
            self.recorder
        )  # held (a dropped one would undo its patch) for the worker's life
        self.watch = self.recording.__enter__()
        self.entry: Callable[..., Any] | None = None
        self.load_error: dict = {}
        self.module: Any = None

    def load(self, job: dict) -> None:
        from ksearch.compile.capture import candidate_module

        source = Path(self.path).read_text()
        try:
            # kept open for the worker's life: the module stays importable by its kernels
            self.module = candidate_module(source, Path(self.path), interpret=False)
            module = self.module.__enter__()
        except BaseException as exc:  # raised by the candidate's own top-level code
            self.load_error = {"import_error": describe_error(exc, self.path)}
            return
        entry = candidate_entry(module, source, job["entry"], job.get("task"))
        if not callable(entry):
            self.load_error = {"entry_error": f"the module defines no callable `{job['entry']}`"}
            return
        self.entry = entry

    def run(self, job: dict) -> dict:
        from ksearch.harness.arena import open_buffers

        if self.entry is None and not self.load_error:
            self.load(job)
        entry = self.entry
        if self.load_error or entry is None:
            return {**self.load_error, "violations": self.violations}
        buffers = open_buffers(job["buffers"])
        if "arena" in job["buffers"]:
            self.recorder.foreign = {buffers[0].untyped_storage().data_ptr()} if buffers else set()
        reply: dict[str, Any] = {
            "calls": [self._call(entry, call, buffers, job["n_inputs"]) for call in job["calls"]]
        }
        if "tensors" in job["buffers"]:
            reply["buffers"] = buffers  # by value on the CPU; on a GPU the parent reads its arena
        reply["violations"] = self.violations
        return reply

    def _call(self, entry: Callable[..., Any], call: dict, buffers: list, n_inputs: int) -> dict:
        """One call on the buffers `call["args"]` names (inputs, then outputs), outputs poisoned first."""
        from ksearch.harness.poison import poison

        args = [buffers[i] for i in call["args"]]
        for o in args[n_inputs:]:
            poison(o)
        result: dict[str, Any] = {"id": call["id"]}
        self.recorder.begin(args)
        t0 = time.perf_counter()
        try:
            with self.watch:
                entry(*args)
            result["trace"] = self.recorder.end().model_dump(mode="json")
        except BaseException as exc:  # the candidate's fault, reported, never fatal to the worker
            result["error"] = describe_error(exc, self.path)
        finally:
            self.recorder.active = False
            result["seconds"] = time.perf_counter() - t0  # the candidate's host time: no kernel runs here
        return result


def warm(device: str) -> None:
    """What every job needs, done before the worker says it is ready: the parent's next candidate
    should not wait for imports or for the device context."""
    import torch
    import triton  # noqa: F401

    from ksearch.compile import capture, diagnostics  # noqa: F401
    from ksearch.harness import arena, guard, poison, recorder, timing, trace  # noqa: F401
    from ksearch.task.importers import kernelbench  # noqa: F401  (candidate_entry's adapter: 0.3 s of imports)

    if device == "cuda":
        torch.cuda.init()
        torch.empty(1, device="cuda")


def serve(handle: Callable[[dict], dict]) -> None:
    """A sandbox process's life (worker or judge): warm up, say ready, then one reply per job until
    the parent closes the socket. `handle` raising is a harness bug, reported as `fatal`."""
    fd, device = int(sys.argv[1]), sys.argv[2]
    conn = Connection(fd)
    warm(device)
    conn.send_bytes(wire.encode({"ready": os.getpid()}))
    while True:
        try:
            job = wire.decode(conn.recv_bytes())
        except EOFError:
            break  # the parent is done with this process
        try:
            os.chdir(job["tmpdir"])
            reply = handle(job)
        except BaseException as exc:  # harness bug: report, don't die silently
            reply = {
                "fatal": describe_error(exc, job.get("candidate", "")),
                "traceback": traceback.format_exc()[-4000:],
            }
        conn.send_bytes(wire.encode(reply))
    conn.close()
    os._exit(0)  # skip interpreter teardown: threads or atexit hooks a candidate left must not hang us


def main() -> None:
    session: list[_Session] = []  # the one candidate this worker serves

    def handle(job: dict) -> dict:
        if not session:
            session.append(_Session(job))
        return session[0].run(job)

    serve(handle)


if __name__ == "__main__":
    main()
