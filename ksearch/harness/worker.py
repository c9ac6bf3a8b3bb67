"""The sandboxed worker: the only process that imports a candidate.

Started as `python -m ksearch.harness.worker FD DEVICE` by `ksearch.harness.sandbox`, it imports
torch and triton, opens the device, says it is ready, then serves one candidate: a verification job
and, when that passed on a GPU, a timing job; then the parent kills it. A candidate can monkeypatch
what it likes, and the next candidate still gets a fresh process.

Everything here is trusted harness code. The tensors come from the parent (see `arena`): the
worker fills every output with NaN (integer outputs with a sentinel) before each call, keeps
references the candidate cannot rebind, counts Python threads, records the torch operators the
candidate issues outside its kernel launches, and replays one call with every kernel launch turned
into a no-op ("ghost replay"). It never judges anything: the parent reads the outputs and the
inputs after the reply and compares them with references and pristine copies it kept. Messages are
torch.save'd dicts read with `weights_only=True`, so a forged reply cannot run code in the parent.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

# torch operators that allocate, view or move data; anything else on the task's data is compute.
NON_COMPUTE_OPS = {
    "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "zeros", "zeros_like",
    "new_zeros", "ones", "ones_like", "full", "full_like", "fill", "fill_", "zero", "zero_", "view", "_unsafe_view",
    "reshape", "_reshape_alias", "as_strided", "t", "transpose", "permute", "expand", "slice", "select",
    "split", "split_with_sizes", "unsqueeze", "squeeze", "detach", "alias", "lift_fresh", "clone", "copy",
    "copy_", "_to_copy", "to", "contiguous", "_local_scalar_dense", "unbind", "narrow", "view_as_real",
    "arange", "is_same_size", "_has_compatible_shallow_copy_type", "stride", "sym_size", "sym_stride",
    "sym_numel", "sym_storage_offset", "size", "numel", "dim",
    "set", "resize", "as_strided_",  # rebinding an output: caught by the storage check, named output_rebind
}


def _send(conn: Connection, obj: dict) -> None:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    conn.send_bytes(buf.getvalue())


def _recv(conn: Connection) -> dict:
    import torch

    return torch.load(io.BytesIO(conn.recv_bytes()), weights_only=True)


class _OpRecorder:
    """Records compute operators applied to the task's data (tainted storages) outside kernels."""

    def __init__(self) -> None:
        import torch
        from torch.utils._python_dispatch import TorchDispatchMode

        recorder = self
        self.in_kernel = 0
        self.ops: list[str] = []
        self.tainted: set[int] = set()

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                if recorder.in_kernel:
                    return out
                tensors = [a for a in torch.utils._pytree.tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
                touched = any(_storage(t) in recorder.tainted for t in tensors)
                if touched:
                    base = func.overloadpacket.__name__
                    if base not in NON_COMPUTE_OPS and base.rstrip("_") not in NON_COMPUTE_OPS:
                        recorder.ops.append(base)
                    # what is computed from the task's data carries the taint
                    for o in torch.utils._pytree.tree_leaves(out):
                        if isinstance(o, torch.Tensor):
                            recorder.tainted.add(_storage(o))
                return out

        self.mode = Mode()

    def taint(self, tensors) -> None:
        self.tainted.update(_storage(t) for t in tensors)


def _storage(t) -> int:
    try:
        return t.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):
        return id(t)


def _patch_launches(recorder: _OpRecorder, launches: dict) -> None:
    """Kernel launches pause the op recorder. `launches["mode"]` says what a launch does: None, run
    it; "skip" (ghost replay), nothing at all, counted in `launches["skipped"]`; "compile"
    (precompile), compile it and not run it. One lookup per launch: timed calls launch through here."""
    from triton.runtime.autotuner import Autotuner
    from triton.runtime.jit import JITFunction

    launchers = [JITFunction, Autotuner]
    try:
        from triton.runtime.interpreter import InterpretedFunction
        launchers.append(InterpretedFunction)
    except ImportError:
        pass
    for cls in launchers:
        original = cls.run

        def run(self, *args, __original=original, __cls=cls, **kwargs):
            mode = launches["mode"]
            if mode is not None:
                if mode == "skip":
                    launches["skipped"] += 1
                    return None
                if __cls is Autotuner:  # compiles every config; its own run would time them on the device
                    return self.warmup(*args, **{k: v for k, v in kwargs.items() if k != "warmup"})
                kwargs["warmup"] = True
            recorder.in_kernel += 1
            try:
                return __original(self, *args, **kwargs)
            finally:
                recorder.in_kernel -= 1

        cls.run = run


def _error(exc: BaseException, path: str) -> dict:
    from ksearch.compile.diagnostics import diagnostics_from_exception

    diags = [d.model_dump(mode="json") for d in diagnostics_from_exception(exc, path)]
    text = f"{type(exc).__name__}: {exc}"
    return {"type": type(exc).__name__, "message": text[:2000], "diagnostics": diags,
            "gpu_fault": any(k in text for k in ("illegal memory access", "CUDA error", "misaligned address",
                                                 "unspecified launch failure", "HIP error"))}


def candidate_entry(module, source: str, entry: str, task_root: str | None):
    """The callable the harness calls: the module's entry function, or for a KernelBench-form
    candidate (`class ModelNew`) of a task imported from KernelBench, the importer's adapter."""
    from ksearch.task.importers.kernelbench import modelnew_entry, uses_modelnew

    if uses_modelnew(source, task_root):
        return modelnew_entry(module, Path(task_root))
    return getattr(module, entry, None)


def _tail_wait_us(calls) -> float:
    """Least time, over the calls, that a full device synchronize still waits once the current
    stream has finished the call's work. Host jitter only adds, hence the minimum."""
    import torch

    waits = []
    for call in calls:
        torch.cuda.synchronize()
        call()
        done = torch.cuda.Event()
        done.record()
        done.synchronize()
        t0 = time.perf_counter()
        torch.cuda.synchronize()
        waits.append((time.perf_counter() - t0) * 1e6)
    return min(waits)


def _bench_workload(entry, spec: dict, buffers: list) -> dict:
    """Time one workload on rotating input sets, then re-run every set on fresh poison for the parent
    to re-verify (a candidate that stops working after warm-up is caught there), and measure how long
    the device stays busy after the timed stream is done (work hidden on a side stream shows up there)."""
    import torch

    from ksearch.harness.poison import poison
    from ksearch.harness.timing import time_gpu

    sets = [[buffers[i] for i in args] for args in spec["sets"]]
    outs = [args[spec["n_inputs"]:] for args in sets]
    stream = torch.cuda.current_stream()
    result: dict = {"workload": spec["workload"]}
    try:
        t0 = time.perf_counter()
        timing = time_gpu(lambda i: entry(*sets[i]), len(sets), device="cuda", budget_s=spec["budget_s"],
                          rel_ci=spec["rel_ci"])
        result["timed_s"] = time.perf_counter() - t0
        # Side-stream work keeps the device busy after the timed stream is done; compared with the
        # same wait after no work at all (the driver's own latency).
        side_us = _tail_wait_us([lambda i=i: entry(*sets[i % len(sets)]) for i in range(5)])
        idle_us = _tail_wait_us([lambda: None] * 5)
        for o in outs:
            for t in o:
                poison(t)
        for args in sets:
            entry(*args)
        torch.cuda.synchronize()
    except BaseException as exc:
        result["error"] = _error(exc, spec["candidate"])
        return result
    result["timing"] = timing.model_dump(mode="json")
    result["side_sync_us"] = max(0.0, side_us - idle_us)
    result["stream_changed"] = torch.cuda.current_stream() != stream
    return result


class _Session:
    """One candidate in one worker: imported once, then given a verification job and, if that
    passed on a GPU, a timing job. The guard, the op recorder and the launch patch stay installed
    for the worker's life."""

    def __init__(self, first_job: dict):
        from ksearch.harness.guard import install_guard

        self.path = first_job["candidate"]
        self.device = first_job["device"]
        self.violations: list[str] = []
        install_guard(self.path, first_job["tmpdir"], self.violations)
        self.recorder = _OpRecorder()
        self.launches: dict[str, Any] = {"mode": None, "skipped": 0}
        _patch_launches(self.recorder, self.launches)
        self.threads_before = threading.active_count()
        self.stack = contextlib.ExitStack()
        self.entry = None
        self.load_error: dict = {}

    def load(self, job: dict) -> None:
        from ksearch.compile.capture import candidate_module

        source = Path(self.path).read_text()
        try:
            module = self.stack.enter_context(candidate_module(source, Path(self.path), interpret=job["interpret"]))
        except BaseException as exc:  # raised by the candidate's own top-level code
            self.load_error = {"import_error": _error(exc, self.path)}
            return
        self.entry = candidate_entry(module, source, job["entry"], job.get("task"))
        if not callable(self.entry):
            self.load_error = {"entry_error": f"the module defines no callable `{job['entry']}`"}

    def run(self, job: dict) -> dict:
        from ksearch.harness.arena import open_buffers
        from ksearch.harness.timing import timers_intact

        if self.entry is None and not self.load_error:
            self.load(job)
        if self.load_error:
            return {**self.load_error, "violations": self.violations}
        if job.get("precompile"):
            return {**self._precompile(job), "violations": self.violations}
        buffers = open_buffers(job["buffers"])
        if job.get("bench"):
            reply: dict[str, Any] = {"bench": [_bench_workload(self.entry, {**spec, "candidate": self.path}, buffers)
                                               for spec in job["bench"]]}
        else:
            reply = {"calls": [self._call(call, buffers, job["n_inputs"]) for call in job["calls"]]}
            if "tensors" in job["buffers"]:
                reply["buffers"] = buffers  # by value on the CPU; on a GPU the parent reads its arena
        reply["violations"] = self.violations
        reply["timers_replaced"] = timers_intact()
        return reply

    def _precompile(self, job: dict) -> dict:
        """Run the entry once per workload on zero-filled tensors of the worker's own with every
        Triton launch compiled and not executed: the JIT's work done while the device times another
        candidate. Failures are left for the verification job to report."""
        import torch

        from ksearch.task import load_task
        from ksearch.task.inputs import torch_dtype

        task = load_task(job["task"])
        errors = []
        self.launches["mode"] = "compile"
        try:
            for name in job["precompile"]:
                wl = task.workload(name)
                args = [torch.zeros(t.shape, dtype=torch_dtype(t.dtype), device=self.device)
                        for t in [*task.input_specs(wl, job["dtype"]), *task.output_specs(wl, job["dtype"])]]
                try:
                    self.entry(*args)
                except BaseException as exc:  # noqa: BLE001  reported by the verification job instead
                    errors.append(f"{name}: {type(exc).__name__}: {exc}"[:300])
            if self.device != "cpu":
                torch.cuda.synchronize()
        finally:
            self.launches["mode"] = None
        return {"precompiled": job["precompile"], "errors": errors}

    def _call(self, call: dict, buffers: list, n_inputs: int) -> dict:
        """One call on the buffers `call["args"]` names (inputs, then outputs). A pointer-reuse call
        first copies new values into those same inputs from the buffers `call["refill"]` names."""
        import torch

        from ksearch.harness.poison import poison

        args = [buffers[i] for i in call["args"]]
        inputs, outputs = args[:n_inputs], args[n_inputs:]
        with torch.no_grad():
            for dst, i in zip(inputs, call.get("refill") or []):
                dst.copy_(buffers[i])  # same pointers, new values
        for o in outputs:
            poison(o)
        before = [(o.data_ptr(), tuple(o.shape), o.dtype, tuple(o.stride())) for o in outputs]
        self.recorder.ops.clear()
        self.recorder.tainted.clear()
        self.recorder.taint(args)
        result: dict[str, Any] = {"id": call["id"]}
        self.launches["mode"] = "skip" if call.get("ghost") else None
        self.launches["skipped"] = 0
        t0 = time.perf_counter()
        try:
            with self.recorder.mode:
                self.entry(*args)
            if self.device != "cpu":
                torch.cuda.synchronize()
        except BaseException as exc:  # the candidate's fault, reported, never fatal to the worker
            result["error"] = _error(exc, self.path)
        finally:
            self.launches["mode"] = None
            result["seconds"] = time.perf_counter() - t0  # the candidate's own time: JIT compile and kernels
        after = [(o.data_ptr(), tuple(o.shape), o.dtype, tuple(o.stride())) for o in outputs]
        result["rebound"] = [i for i, (b, a) in enumerate(zip(before, after)) if b != a]
        result["torch_ops"] = sorted(set(self.recorder.ops))
        result["threads"] = threading.active_count() - self.threads_before
        result["launches_skipped"] = self.launches["skipped"]
        return result


def _warm(device: str) -> None:
    """What every job needs, done before the worker says it is ready: the parent's next candidate
    should not wait for imports or for the device context."""
    import torch
    import triton  # noqa: F401

    import ksearch.harness.timing  # noqa: F401  captures the timers' identities before any candidate runs
    from ksearch.compile import capture  # noqa: F401
    from ksearch.harness import arena, guard, poison  # noqa: F401

    if device == "cuda":
        torch.cuda.init()
        torch.empty(1, device="cuda")


def main() -> None:
    fd, device = int(sys.argv[1]), sys.argv[2]
    conn = Connection(fd)
    _warm(device)
    _send(conn, {"ready": os.getpid()})
    session: _Session | None = None
    while True:
        try:
            job = _recv(conn)
        except EOFError:
            break  # the parent is done with this worker
        try:
            if session is None:
                os.chdir(job["tmpdir"])
                session = _Session(job)
            reply = session.run(job)
        except BaseException as exc:  # harness bug: report, don't die silently
            reply = {"fatal": _error(exc, job["candidate"]), "traceback": traceback.format_exc()[-4000:]}
        _send(conn, reply)
    conn.close()
    os._exit(0)  # skip interpreter teardown: threads or atexit hooks a candidate left must not hang us


if __name__ == "__main__":
    main()
