"""The sandboxed worker: the only process that imports a candidate.

Started as `python -m ksearch.harness.worker FD` by `ksearch.harness.sandbox`, it imports torch and
triton, says it is ready, then runs exactly one job and exits: a candidate can monkeypatch what it
likes, and the next candidate still gets a fresh process.

Everything here is trusted harness code. It owns the buffers: it allocates every output and fills
it with NaN (integer outputs with a sentinel) before each call, keeps references the candidate
cannot rebind, clones the inputs to detect mutation, counts Python threads, records the torch
operators the candidate issues outside its kernel launches, and replays one call with every kernel
launch turned into a no-op ("ghost replay"). It never judges correctness: it sends the outputs back
and the parent compares them with references the parent computed. Messages are torch.save'd dicts
read with `weights_only=True`, so a forged reply cannot run code in the parent.
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


def _patch_launches(recorder: _OpRecorder, ghost: dict) -> None:
    """Kernel launches pause the op recorder; in a ghost replay they do nothing at all."""
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

        def run(self, *args, __original=original, **kwargs):
            if ghost["on"]:
                ghost["skipped"] += 1
                return None
            recorder.in_kernel += 1
            try:
                return __original(self, *args, **kwargs)
            finally:
                recorder.in_kernel -= 1

        cls.run = run


def _same(a, b) -> bool:
    """Bitwise-equal values, NaNs in the same places counting as equal."""
    import torch

    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if not a.dtype.is_floating_point:
        return torch.equal(a, b)
    na, nb = a.isnan(), b.isnan()
    return torch.equal(na, nb) and torch.equal(a[~na], b[~nb])


def _error(exc: BaseException, path: str) -> dict:
    from ksearch.compile.diagnostics import diagnostics_from_exception

    diags = [d.model_dump(mode="json") for d in diagnostics_from_exception(exc, path)]
    text = f"{type(exc).__name__}: {exc}"
    return {"type": type(exc).__name__, "message": text[:2000], "diagnostics": diags,
            "gpu_fault": any(k in text for k in ("illegal memory access", "CUDA error", "misaligned address",
                                                 "unspecified launch failure", "HIP error"))}


def rotating_sets(task, wl, distribution: str, seeds, dtype: str, device: str) -> tuple[list[list], list[list]]:
    """The benchmark's input sets (one per seed) and an output set for each: the same tensors the
    timing loop, its re-verification and the ncu probe all use."""
    sets = [list(task.make_inputs(wl, distribution, seed, dtype=dtype, device=device).values()) for seed in seeds]
    outs = [list(task.allocate_outputs(wl, dtype=dtype, device=device).values()) for _ in sets]
    return sets, outs


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


def _bench_workload(entry, spec: dict, job: dict, recorder: _OpRecorder) -> dict:
    """Time one workload on rotating input sets, then re-run every set on fresh poison for the parent
    to re-verify (a candidate that stops working after warm-up is caught here), and measure how long the
    device stays busy after the timed stream is done (work hidden on a side stream shows up there)."""
    import torch

    from ksearch.harness.poison import poison
    from ksearch.harness.timing import time_gpu
    from ksearch.task import load_task

    task = load_task(job["task"])
    wl = task.workload(spec["workload"])
    device = job["device"]
    sets, outs = rotating_sets(task, wl, spec["distribution"], spec["seeds"], job["dtype"], device)
    stream = torch.cuda.current_stream()
    result: dict = {"workload": wl.name}
    try:
        t0 = time.perf_counter()
        timing = time_gpu(lambda i: entry(*sets[i], *outs[i]), len(sets), device=device,
                          budget_s=spec["budget_s"], rel_ci=spec["rel_ci"])
        result["timed_s"] = time.perf_counter() - t0
        # Side-stream work keeps the device busy after the timed stream is done; compared with the
        # same wait after no work at all (the driver's own latency).
        side_us = _tail_wait_us([lambda i=i: entry(*sets[i % len(sets)], *outs[i % len(sets)]) for i in range(5)])
        idle_us = _tail_wait_us([lambda: None] * 5)
        for o in outs:
            for t in o:
                poison(t)
        for i in range(len(sets)):
            entry(*sets[i], *outs[i])
        torch.cuda.synchronize()
    except BaseException as exc:
        result["error"] = _error(exc, job["candidate"])
        return result
    result["timing"] = timing.model_dump(mode="json")
    result["side_sync_us"] = max(0.0, side_us - idle_us)
    result["stream_changed"] = torch.cuda.current_stream() != stream
    result["outputs"] = [[t.detach().cpu().clone() for t in o] for o in outs]
    return result


def run_job(job: dict) -> dict:
    import torch

    from ksearch.compile.capture import candidate_module
    from ksearch.harness.guard import install_guard
    from ksearch.harness.poison import poison
    from ksearch.harness.timing import timers_intact
    from ksearch.task import load_task

    device = job["device"]
    path = job["candidate"]
    source = Path(path).read_text()
    violations: list[str] = []
    install_guard(path, job["tmpdir"], violations)
    recorder = _OpRecorder()
    ghost = {"on": False, "skipped": 0}
    _patch_launches(recorder, ghost)
    reply: dict[str, Any] = {"calls": [], "violations": violations}
    threads_before = threading.active_count()
    with contextlib.ExitStack() as stack:
        try:
            module = stack.enter_context(candidate_module(source, Path(path), interpret=job["interpret"]))
        except BaseException as exc:  # raised by the candidate's own top-level code
            reply["import_error"] = _error(exc, path)
            return reply
        entry = getattr(module, job["entry"], None)
        if not callable(entry):
            reply["entry_error"] = f"the module defines no callable `{job['entry']}`"
            return reply
        if job.get("bench"):
            reply["bench"] = [_bench_workload(entry, spec, job, recorder) for spec in job["bench"]]
            reply["timers_replaced"] = timers_intact()
            return reply
        held: dict[int, tuple[list, list]] = {}  # call id -> (inputs, outputs): reused for pointer-reuse calls
        task = load_task(job["task"])
        for call in job["calls"]:
            wl = task.workload(call["workload"])
            fresh = list(task.make_inputs(wl, call["distribution"], call["seed"], dtype=job["dtype"],
                                          device=device).values())
            reuse = call.get("reuse")
            if reuse is not None:
                inputs, outputs = held[reuse]
                with torch.no_grad():
                    for dst, src in zip(inputs, fresh):
                        dst.copy_(src)  # same pointers, new values
            else:
                inputs = fresh
                outputs = list(task.allocate_outputs(wl, dtype=job["dtype"], device=device).values())
            held[call["id"]] = (inputs, outputs)
            for o in outputs:
                poison(o)
            before = [(o.data_ptr(), tuple(o.shape), o.dtype, tuple(o.stride())) for o in outputs]
            snapshots = [t.clone() for t in inputs]
            recorder.ops.clear()
            recorder.tainted.clear()
            recorder.taint(inputs + outputs)
            result: dict[str, Any] = {"id": call["id"]}
            ghost["on"] = bool(call.get("ghost"))
            ghost["skipped"] = 0
            try:
                with recorder.mode:
                    entry(*inputs, *outputs)
                if device != "cpu":
                    torch.cuda.synchronize()
            except BaseException as exc:  # the candidate's fault, reported, never fatal to the worker
                result["error"] = _error(exc, path)
            finally:
                ghost["on"] = False
            after = [(o.data_ptr(), tuple(o.shape), o.dtype, tuple(o.stride())) for o in outputs]
            result["rebound"] = [i for i, (b, a) in enumerate(zip(before, after)) if b != a]
            result["inputs_mutated"] = [i for i, (t, s) in enumerate(zip(inputs, snapshots)) if not _same(t, s)]
            result["outputs"] = [o.detach().to("cpu").clone() for o in outputs]
            result["torch_ops"] = sorted(set(recorder.ops))
            result["threads"] = threading.active_count() - threads_before
            result["launches_skipped"] = ghost["skipped"]
            reply["calls"].append(result)
    reply["timers_replaced"] = timers_intact()
    return reply


def main() -> None:
    fd = int(sys.argv[1])
    conn = Connection(fd)
    import torch  # noqa: F401  warm: the parent waits for "ready" before it hands out a job
    import triton  # noqa: F401

    import ksearch.harness.timing  # noqa: F401  captures the timers' identities before any candidate runs

    _send(conn, {"ready": os.getpid()})
    try:
        job = _recv(conn)
    except EOFError:
        return  # the parent no longer needs this worker
    os.chdir(job["tmpdir"])
    try:
        reply = run_job(job)
    except BaseException as exc:  # harness bug or candidate import failure: report, don't die silently
        reply = {"fatal": _error(exc, job["candidate"]), "traceback": traceback.format_exc()[-4000:]}
    _send(conn, reply)
    conn.close()
    os._exit(0)  # skip interpreter teardown: threads or atexit hooks a candidate left must not hang us


if __name__ == "__main__":
    main()
