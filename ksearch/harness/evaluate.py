"""One evaluation, end to end: static checks, sandboxed calls, verification, dynamic anti-hack
checks, (on a GPU) timing, and the EvidencePacket that records all of it.

The parent draws every input, computes every reference and judges every output; the worker only
runs the candidate, on tensors the parent lends it (`arena`) and reads back in place. Inputs and
references depend only on (task, workload, distribution, seed, dtype), so the parent keeps them
for the next candidate. The calls a candidate gets, per workload x distribution x seed:
  - the plain call, on its own copy of the inputs and its own outputs;
  - a pointer-reuse probe: the first call's setup repeated, then the same tensors refilled in place
    with new values (a cache keyed by pointers or shapes, or work done only once, returns stale
    outputs);
  - a ghost replay: the first inputs again with every kernel launch made a no-op (if the outputs
    still come out right, the kernels were not doing the work).
A candidate that passes on a GPU is then timed by the same worker (one import, one JIT compile).
"""

from __future__ import annotations

import json
import platform
import socket
import sys
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

import ksearch
from ksearch.compile.service import detect_language
from ksearch.errors import ConfigError
from ksearch.evidence import (
    Artifacts, Audit, Candidate, Diagnostic, Environment, EvidencePacket, FailureClass, OutputCheck, Performance,
    Status, Unmeasured, Validation, Verdict, WorkloadTiming, eval_command, source_hash, status_for,
)
from ksearch.harness.arena import Arena, returned
from ksearch.harness.reward import REWARD_FORMULA, reward
from ksearch.harness.static_checks import static_checks_for_task
from ksearch.harness.sandbox import DEFAULT_MEMORY_MB, Outcome, Worker, WorkerPool
from ksearch.harness.poison import unwritten_mask
from ksearch.harness.verify import bitwise_equal, compare, failure_of
from ksearch.task import Task

REUSE_SEED_OFFSET = 7919
ROTATING_SETS = 3  # input sets timed in rotation, so no call finds the previous call's inputs in cache
MAX_PREPARED = 2  # candidates compiling ahead of `evaluate` at once: the pipeline prepares one
# After the timed stream's work is done, a full device synchronize may still wait this long (at
# least, over several calls) before the wait counts as work hidden on another stream.
SIDE_SYNC_FACTOR, SIDE_SYNC_SLACK_US = 0.5, 20.0
_LOW_PRECISION = {"bfloat16"}  # the Triton interpreter computes these wrongly on CPU, silently


@dataclass
class _Call:
    id: int
    workload: str
    distribution: str
    seed: int
    refs: dict[str, torch.Tensor]
    pristine: list[torch.Tensor]  # the inputs as drawn: after the call they must still hold these values
    args: list[int]  # where the call's inputs, then outputs, sit in the job's buffers
    probe: str = ""  # "", "setup" (unjudged: its tensors are the reuse probe's), "reuse" or "ghost"


class _Layout:
    """The tensors of one job, in the order the worker's buffers list them."""

    def __init__(self) -> None:
        self.tensors: list[torch.Tensor] = []

    def place(self, tensors: list[torch.Tensor]) -> list[int]:
        start = len(self.tensors)
        self.tensors.extend(tensors)
        return list(range(start, len(self.tensors)))


def hides_work(tail_us: float, event_us: float) -> bool:
    """Whether the device stayed busy for `tail_us` after the timed stream finished a call that took
    `event_us` between its events for a reason other than noise: work on another stream."""
    return tail_us > max(SIDE_SYNC_SLACK_US, SIDE_SYNC_FACTOR * event_us)


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA or ROCm device is visible to torch; use --device cpu")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu or cuda")
    return device


class Evaluator:
    """Evaluates candidates one after another on one device, with a warm worker always waiting."""

    def __init__(self, device: str = "auto", *, timeout_s: float = 600, memory_mb: int = DEFAULT_MEMORY_MB,
                 artifacts_dir: Path | None = None, bench_budget_s: float = 1.0, rel_ci: float = 0.01,
                 ncu: bool = False, ncu_calls: int = 20, baselines: bool = True, precompile: bool | None = None):
        """`baselines=False` skips timing torch eager, torch.compile and the vendor library (speedups are
        then absent): for runs that only need verdicts, such as the cheat corpora. `precompile` (default:
        on a GPU) lets `prepare` start the next candidate's JIT compile during this one's evaluation."""
        self.device = resolve_device(device)
        self.time_baselines = baselines
        self.ncu, self.ncu_calls = ncu, ncu_calls
        self.timeout_s, self.memory_mb = timeout_s, memory_mb
        self.artifacts_dir = Path(artifacts_dir) if artifacts_dir else None
        self.bench_budget_s, self.rel_ci = bench_budget_s, rel_ci
        self._baselines: dict[tuple, dict] = {}  # (task, workload, dtype) -> baseline medians: same for every candidate
        self._peaks = None
        self._profile: tuple | None = None  # (detected device, its target profile), looked up once
        # (task, workload, distribution, seed, dtype) -> (inputs, references), least recently used first
        self._data: OrderedDict[tuple, tuple[list[torch.Tensor], dict[str, torch.Tensor]]] = OrderedDict()
        self._data_bytes = 0
        self.cache_bytes = (torch.cuda.get_device_properties(0).total_memory // 8 if self.device == "cuda"
                            else 2 << 30)
        self.arena = Arena(self.device)
        self.pool = WorkerPool(interpret=self.device == "cpu", device=self.device)
        self.precompile = self.device == "cuda" if precompile is None else precompile
        self._prepared: dict[str, Worker] = {}  # candidate path -> worker precompiling it
        self._environment: dict | None = None

    def close(self) -> None:
        for worker in self._prepared.values():
            worker.kill()
        self._prepared.clear()
        self.pool.close()

    def prepare(self, candidate_path: Path, task: Task, *, dtype: str | None = None,
                workloads: list[str] | None = None) -> None:
        """Start the JIT compile of a candidate that `evaluate` will see next, in a warm worker of its
        own, while the device is busy with the current one (a no-op unless `precompile`). The worker
        imports the candidate and runs it once per workload with every launch compiled and none
        executed; `evaluate` of the same path then continues in that worker. Only a candidate that
        passes the static checks is prepared: nothing else is ever imported."""
        path = Path(candidate_path).resolve()
        if not self.precompile or str(path) in self._prepared:
            return
        try:
            source = path.read_text()
        except OSError:
            return  # `evaluate` reports it
        requested = dtype or task.default_dtype
        run_dtype = self._verification_dtype(task, requested)[0] if requested in task.dtypes else None
        if run_dtype is None or detect_language(path, source) != "triton" or any(
                not v.ok and v.failure_class for v in static_checks_for_task(source, str(path), task)):
            return
        while len(self._prepared) >= MAX_PREPARED:  # prepared but never evaluated: each holds a device context
            self.pool.release(self._prepared.pop(next(iter(self._prepared))))
        worker = self.pool.take()
        worker.submit({"candidate": str(path), "entry": task.entry_name, "task": str(task.root), "dtype": run_dtype,
                       "precompile": [wl.name for wl in self._workloads(task, workloads)]})
        self._prepared[str(path)] = worker

    def _worker_for(self, path: Path) -> tuple[Worker, float]:
        """The worker that precompiled `path` if there is one and it finished healthy, else a warm one;
        and the seconds spent waiting for that precompile to finish."""
        worker = self._prepared.pop(str(path), None)
        if worker is None:
            return self.pool.take(), 0.0
        t0 = time.perf_counter()
        done = worker.collect(self.timeout_s, self.memory_mb)  # kills the worker unless it replied
        waited = time.perf_counter() - t0
        if done.kind == "reply" and not done.reply.get("fatal"):
            return worker, waited
        self.pool.release(worker)
        return self.pool.take(), waited

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ the evaluation

    def evaluate(self, candidate_path: Path, task: Task, *, target: str | None = None, dtype: str | None = None,
                 seeds: tuple[int, ...] = (0, 1), workloads: list[str] | None = None) -> EvidencePacket:
        """One candidate's packet. durations_s says where the time went: `total` (this call),
        `verify` and `benchmark` (worker wall time), `timed_calls` (inside the timing loops),
        `baselines` (timing baselines, once per workload per Evaluator), `ncu`, `worker_wait` (for a
        warm worker), `compile_wait` (for the JIT compile `prepare` started), `candidate_calls`
        (inside the candidate's verification calls: its JIT compile where it was not prepared, and
        its kernels), and `overhead`: the total less the candidate's calls, the compile wait, the
        timed calls, baselines and ncu, i.e. what the harness itself costs."""
        t0 = time.perf_counter()
        try:
            packet = self._evaluate(candidate_path, task, target=target, dtype=dtype, seeds=seeds, workloads=workloads)
        finally:  # a verdict reached before any worker was needed leaves the prepared one unused
            unused = self._prepared.pop(str(Path(candidate_path).resolve()), None)
            if unused is not None:
                self.pool.release(unused)
        d = packet.durations_s
        d["total"] = round(time.perf_counter() - t0, 4)
        d["overhead"] = round(d["total"] - sum(d.get(k, 0.0) for k in ("candidate_calls", "compile_wait", "timed_calls",
                                                                         "baselines", "ncu")), 4)
        return packet

    def _evaluate(self, candidate_path: Path, task: Task, *, target: str | None, dtype: str | None,
                  seeds: tuple[int, ...], workloads: list[str] | None) -> EvidencePacket:
        path = Path(candidate_path).resolve()
        try:
            source = path.read_text()
        except OSError as e:
            raise ConfigError(f"candidate {candidate_path} cannot be read ({e.strerror})") from e
        language = detect_language(path, source)
        requested = dtype or task.default_dtype
        if requested not in task.dtypes:
            raise ConfigError(f"dtype {requested!r} is not a variant of task {task.name}: {', '.join(task.dtypes)}")
        run_dtype, dtype_note = self._verification_dtype(task, requested)
        wls = self._workloads(task, workloads)
        target_name = target or self._local_target()
        env = self._env()
        backend = "triton-interpreter" if self.device == "cpu" else f"cuda:{torch.cuda.get_device_name()}"
        packet = _Packet(task, path, source, language, target_name, requested, [w.name for w in wls], list(seeds),
                         env, backend)

        if language != "triton":
            why = ("HIP candidates need a ROCm runtime" if language == "hip" else "TileLang candidates run on a GPU")
            if self.device == "cpu" or language == "hip":
                return packet.finish(FailureClass.SKIPPED_TOOLCHAIN_MISSING, f"{why}; none here: compiled and "
                                     "audited only (ksearch compile)")
        static = static_checks_for_task(source, str(path), task)
        packet.audit.anti_hack.extend(static)
        first_static = next((v for v in static if not v.ok and v.failure_class), None)
        if first_static is not None:
            return packet.finish(first_static.failure_class, first_static.detail)
        if run_dtype is None:
            return packet.finish(FailureClass.SKIPPED_BF16_INTERPRETER, dtype_note)

        calls, job_calls, layout = self._plan(task, wls, run_dtype, seeds)
        self.pool.reap()  # no finished candidate's process may still touch what is lent below
        first, packet.durations["compile_wait"] = self._worker_for(path)
        with self.pool.session(first) as worker:
            message, views = self.arena.lend(layout.tensors)
            outcome = worker.ask({"candidate": str(path), "entry": task.entry_name, "task": str(task.root),
                                  "dtype": run_dtype,
                                  "buffers": message, "calls": job_calls, "n_inputs": len(task.input_names)},
                                 self.timeout_s, self.memory_mb)
            packet.seconds = outcome.seconds
            packet.durations["worker_wait"] = worker.waited_s
            verified = self._judge(packet, task, calls, outcome, (message, views), run_dtype, dtype_note)
            if verified.status is not Status.PASS or self.device == "cpu":
                return verified
            return self._benchmark(packet, task, wls, run_dtype, worker)

    # ------------------------------------------------------------------ pieces

    def _workloads(self, task: Task, names: list[str] | None) -> list:
        """The workloads named, or else every workload the device runs (the CPU's subset there)."""
        if names:
            return [task.workload(w) for w in names]
        return task.workloads(cpu_only=self.device == "cpu")

    def _verification_dtype(self, task: Task, dtype: str) -> tuple[str | None, str]:
        if self.device != "cpu" or dtype not in _LOW_PRECISION:
            return dtype, ""
        for alt in ("float16", "float32"):
            if alt in task.dtypes:
                return alt, (f"{dtype} is unreliable in the Triton interpreter on CPU; verified the {alt} "
                             "variant instead")
        return None, f"{dtype} is unreliable in the Triton interpreter on CPU and task {task.name} has no fp16/fp32 variant"

    def _plan(self, task: Task, wls, dtype: str, seeds) -> tuple[list[_Call], list[dict], _Layout]:
        calls: list[_Call] = []
        job: list[dict] = []
        layout = _Layout()

        def add(wl, dist: str, seed: int, probe: str = "", refill: _Call | None = None) -> _Call:
            inputs, refs = self._inputs_and_references(task, wl, dist, seed, dtype)
            if refill is None:  # its own inputs and outputs
                args, refill_from = layout.place(inputs + _blank_outputs(task, wl, dtype)), None
            else:  # refill's tensors, refilled in place from a copy of these inputs
                args, refill_from = refill.args, layout.place(inputs)
            call = _Call(len(calls), wl.name, dist, seed, refs, inputs, args, probe)
            calls.append(call)
            job.append({"id": call.id, "args": args, "refill": refill_from, "ghost": probe == "ghost"})
            return call

        for wl in wls:
            for dist in task.distributions:
                for seed in seeds:
                    add(wl, dist, seed)
        first = calls[0]
        setup = add(wls[0], first.distribution, first.seed, "setup")
        add(wls[0], first.distribution, first.seed + REUSE_SEED_OFFSET, "reuse", refill=setup)
        add(wls[0], first.distribution, first.seed, "ghost")
        return calls, job, layout

    def _inputs_and_references(self, task: Task, wl, distribution: str, seed: int,
                               dtype: str) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        """The inputs drawn from a seed and the reference's outputs for them, on the evaluation device
        (where the comparison runs: on a GPU it is 100x faster). Kept for the next candidates, the
        least recently used dropped beyond `cache_bytes`; nothing here is ever lent to a worker."""
        key = (str(task.root), wl.name, distribution, seed, dtype)
        hit = self._data.get(key)
        if hit is not None:
            self._data.move_to_end(key)
            return hit
        drawn = task.make_inputs(wl, distribution, seed, dtype=dtype, device=self.device)
        refs = task.run_reference({k: v.clone() for k, v in drawn.items()}, workload=wl, dtype=dtype)
        hit = self._data[key] = (list(drawn.values()), refs)
        self._data_bytes += _nbytes(hit)
        while self._data_bytes > self.cache_bytes and len(self._data) > 1:
            self._data_bytes -= _nbytes(self._data.popitem(last=False)[1])
        return hit

    def _judge(self, packet: _Packet, task: Task, calls: list[_Call], outcome: Outcome, lent: tuple,
               dtype: str, dtype_note: str) -> EvidencePacket:
        if outcome.kind != "reply":
            return packet.finish(_no_reply_failure(outcome), outcome.detail)
        reply = outcome.reply
        if "import_error" in reply:
            packet.add_diagnostics(reply["import_error"])
            return packet.finish(FailureClass.IMPORT_ERROR, reply["import_error"]["message"])
        if "entry_error" in reply:
            return packet.finish(FailureClass.ENTRY_SIGNATURE, reply["entry_error"])
        if "fatal" in reply:
            return packet.finish(FailureClass.HARNESS_ERROR, reply["fatal"]["message"])

        try:
            buffers = returned(lent[0], reply, lent[1])
        except ValueError as e:
            return packet.finish(FailureClass.HARNESS_ERROR, str(e))
        packet.durations["candidate_calls"] = sum(c.get("seconds", 0.0) for c in reply["calls"])
        by_id = {c["id"]: c for c in reply["calls"]}
        checks: list[OutputCheck] = []
        results: dict[int, tuple[list[OutputCheck], list[torch.Tensor]]] = {}
        dynamic: list[Verdict] = []
        tolerances = task.output_tolerances(dtype)
        for call in calls:
            got = by_id.get(call.id)
            if got is None:
                return packet.finish(FailureClass.HARNESS_ERROR, f"the worker returned no result for call {call.id}")
            if "error" in got:
                packet.add_diagnostics(got["error"])
                failure = FailureClass.GPU_FAULT if got["error"]["gpu_fault"] else FailureClass.RUNTIME_ERROR
                return packet.finish(failure, f"{call.workload}/{call.distribution}/seed {call.seed}: "
                                              f"{got['error']['message']}")
            names = list(call.refs)
            if got["torch_ops"]:
                dynamic.append(_hack(FailureClass.REWARD_HACK_REFERENCE_CALL,
                                     f"torch computes on the task's data outside the kernels: {', '.join(got['torch_ops'])}"))
            if got["threads"] > 0:
                dynamic.append(_hack(FailureClass.REWARD_HACK_THREAD, f"{got['threads']} Python thread(s) left running"))
            if got["rebound"]:
                dynamic.append(_hack(FailureClass.REWARD_HACK_OUTPUT_REBIND,
                                     f"output {', '.join(names[i] for i in got['rebound'])} changed storage, shape or strides"))
            if call.probe == "setup":  # its tensors hold the reuse probe's values now: judged there
                continue
            args = [buffers[i] for i in call.args]
            ins, outs = args[:len(call.pristine)], args[len(call.pristine):]
            out_checks = [compare(o, call.refs[name], tolerances[name], workload=call.workload,
                                  distribution=call.distribution, seed=call.seed, name=name)
                          for o, name in zip(outs, call.refs)]
            results[call.id] = (out_checks, outs)
            if not call.probe:
                checks.extend(out_checks)
            mutated = [task.input_names[i] for i, (t, p) in enumerate(zip(ins, call.pristine)) if not bitwise_equal(t, p)]
            if mutated:
                packet.input_mutated = mutated
        packet.checks = checks
        dynamic += _sandbox_verdicts(reply)
        dynamic += _probe_verdicts(calls, results, by_id)
        packet.audit.anti_hack.extend(dynamic)
        packet.validation_reason = dtype_note

        hack = next((v for v in dynamic if not v.ok), None)
        if hack is not None:
            return packet.finish(hack.failure_class, hack.detail)
        if packet.input_mutated:
            return packet.finish(FailureClass.INPUT_MUTATED, f"inputs changed by the call: {', '.join(packet.input_mutated)}")
        bad = next((c for c in checks if not c.passed), None)
        if bad is not None:
            return packet.finish(failure_of(bad), _describe(bad))
        packet.message_ok = "verified on every workload, distribution and seed" + (f" ({dtype_note})" if dtype_note else "")
        return packet.finish(None, packet.message_ok)


    # ------------------------------------------------------------------ timing (GPU)

    def _benchmark(self, packet: _Packet, task: Task, wls, dtype: str, worker: Worker) -> EvidencePacket:
        """Time every workload in the worker that verified the candidate, re-verify the timed calls,
        time the baselines here (never in the candidate's process, which could slow them down), and
        score against the roofline."""
        from ksearch.harness.sol import geomean, is_impossible, task_roofline

        seeds = [1000 + i for i in range(ROTATING_SETS)]
        n_inputs = len(task.input_names)
        layout = _Layout()
        specs, timed_sets = [], []
        for wl in wls:
            sets = [self._inputs_and_references(task, wl, "normal", seed, dtype) for seed in seeds]
            args = [layout.place(inputs + _blank_outputs(task, wl, dtype)) for inputs, _ in sets]
            timed_sets.append([(a[n_inputs:], refs) for a, (_, refs) in zip(args, sets)])
            specs.append({"workload": wl.name, "sets": args, "n_inputs": n_inputs,
                          "budget_s": self.bench_budget_s, "rel_ci": self.rel_ci})
        message, views = self.arena.lend(layout.tensors)
        outcome = worker.ask({"candidate": str(packet.path), "entry": task.entry_name, "task": str(task.root),
                              "dtype": dtype,
                              "buffers": message, "bench": specs}, self.timeout_s, self.memory_mb)
        self.pool.release(worker)  # its last job: let it die while the timed outputs are judged
        packet.durations["benchmark"] = outcome.seconds
        packet.durations["timed_calls"] = sum(got.get("timed_s", 0.0) for got in (outcome.reply or {}).get("bench", []))
        if outcome.kind != "reply":
            return packet.finish(_no_reply_failure(outcome), f"while timing: {outcome.detail}")
        reply = outcome.reply
        hack = next(iter(_sandbox_verdicts(reply)), None)
        if hack is not None:
            packet.audit.anti_hack.append(hack)
            return packet.finish(hack.failure_class, f"while timing: {hack.detail}")
        dev, profile = self._device_profile()
        peaks = self._device_peaks(profile)
        timings: list[WorkloadTiming] = []
        samples: dict[str, list[float]] = {}
        tolerances = task.output_tolerances(dtype)
        for wl, got, sets in zip(wls, reply.get("bench", []), timed_sets):
            if "error" in got:
                packet.add_diagnostics(got["error"])
                return packet.finish(FailureClass.RUNTIME_ERROR, f"while timing {wl.name}: {got['error']['message']}")
            for seed, (out_args, refs) in zip(seeds, sets):
                for i, (name, ref) in zip(out_args, refs.items()):
                    out = views[i]
                    check = compare(out, ref, tolerances[name], workload=wl.name, distribution="normal", seed=seed,
                                    name=name)
                    if not check.passed:
                        return packet.finish(FailureClass.REWARD_HACK_CACHING, f"timed calls of {wl.name}: outputs "
                                             f"wrong after warm-up and repetition ({_describe(check)})")
            timing = got["timing"]
            median = timing["median_us"]
            if got["stream_changed"] or hides_work(got["side_sync_us"], median):
                return packet.finish(FailureClass.REWARD_HACK_STREAM, f"{wl.name}: {median:.1f} us between events, "
                                     f"then {got['side_sync_us']:.1f} us more until the device was idle: work runs "
                                     "outside the timed stream")
            samples[wl.name] = timing["samples_us"]
            t_base = time.perf_counter()
            base = self._baseline_medians(task, wl, dtype)
            packet.durations["baselines"] = packet.durations.get("baselines", 0.0) + time.perf_counter() - t_base
            ncu_us = self._ncu_median(packet, task, wl, dtype, seeds) if self.ncu else None
            named = "vendor" if base.get("vendor") else "torch_eager"
            roof = task_roofline(task, wl, dtype, profile=profile, peaks=peaks, basis="optimistic") if profile else None
            if roof is not None and is_impossible(median, roof.sol_us):
                return packet.finish(FailureClass.REWARD_HACK_IMPOSSIBLE_SPEED,
                                     f"{wl.name}: {median:.2f} us is under the roofline floor {roof.sol_us:.2f} us")
            timings.append(WorkloadTiming(
                workload=wl.name, median_us=median, iqr_us=timing["iqr_us"], cv=timing["cv"], samples=timing["n"],
                ci_us=(timing["ci_low_us"], timing["ci_high_us"]), baseline=named,
                baseline_median_us=base.get(named), baselines_us=base,
                speedup=base[named] / median if base.get(named) else None,
                flops=task.flops(wl, dtype), bytes=task.bytes(wl, dtype),
                sol_us=roof.sol_us if roof else None,
                sol_fraction=min(1.0, roof.sol_us / median) if roof else None, ncu_median_us=ncu_us))
        speedup = geomean(t.speedup for t in timings if t.speedup)
        sol = geomean(t.sol_fraction for t in timings if t.sol_fraction)
        perf = Performance(device=dev.name if dev else "cuda", workloads=timings, speedup_geomean=speedup, sol_score=sol)
        if self.artifacts_dir is not None:
            packet.artifacts.profiler_traces.append(str(_write_samples(self.artifacts_dir, packet, samples)))
        return packet.finish(None, packet.message_ok, performance=perf)

    def _ncu_median(self, packet: _Packet, task: Task, wl, dtype: str, seeds: list[int]) -> float | None:
        """Nsight Compute's gpu__time_duration of the candidate's calls on one workload (summed over
        its kernels per call, median over calls), run outside the sandbox worker on already-verified
        code; None, with a diagnostic note saying why, when ncu is missing or fails."""
        from ksearch.harness.timing import ncu_duration_us

        t_ncu = time.perf_counter()
        probe = json.dumps({"candidate": str(packet.path), "entry": task.entry_name, "task": str(task.root),
                            "workload": wl.name, "dtype": dtype, "seeds": seeds, "calls": self.ncu_calls})
        res = ncu_duration_us([sys.executable, "-m", "ksearch.harness.ncu_probe", probe], calls=self.ncu_calls)
        packet.durations["ncu"] = packet.durations.get("ncu", 0.0) + time.perf_counter() - t_ncu
        if not res.available:
            packet.diagnostics.append(Diagnostic(severity="note", message=f"ncu on {wl.name}: {res.reason}"))
        return res.median_us

    def _baseline_medians(self, task: Task, wl, dtype: str) -> dict[str, float | None]:
        key = (task.name, wl.name, dtype)
        if not self.time_baselines:
            return {}
        if key not in self._baselines:
            from ksearch.harness.baselines import build_baselines, time_baselines

            arg_sets = [task.make_inputs(wl, "normal", 1000 + i, dtype=dtype, device="cuda")
                        for i in range(ROTATING_SETS)]
            timed = time_baselines(build_baselines(task, wl, arg_sets), device="cuda",
                                   budget_s=self.bench_budget_s, rel_ci=self.rel_ci)
            self._baselines[key] = {name: (t.timing.median_us if t.available and t.timing else None)
                                    for name, t in timed.items()}
        return self._baselines[key]

    def _device_profile(self) -> tuple:
        """The local GPU and its target profile (None when ksearch has no profile for it)."""
        if self._profile is None:
            from ksearch.target import detect_local_device, load_target

            dev = detect_local_device()
            self._profile = (dev, load_target(dev.profile) if dev and dev.profile else None)
        return self._profile

    def _device_peaks(self, profile):
        if self._peaks is None and profile is not None:
            from ksearch.harness.sol import measure_device_peaks

            self._peaks = measure_device_peaks("cuda", profile=profile)
        return self._peaks

    # ------------------------------------------------------------------ environment

    def _local_target(self) -> str:
        if self.device == "cpu":
            return "cpu"
        dev, _ = self._device_profile()
        return (dev.profile if dev and dev.profile else "local")

    def _env(self) -> dict:
        if self._environment is None:
            from ksearch.target import environment_snapshot

            snap = environment_snapshot()
            gpu = snap.gpus[0] if snap.gpus else None
            self._environment = {
                "host": socket.gethostname(),
                "gpu_name": gpu.name if gpu else None,
                "driver": gpu.driver_version if gpu else None,
                "clocks_mhz": {k: v for k, v in {"sm": gpu.sm_clock_mhz, "sm_max": gpu.sm_clock_max_mhz,
                                                  "mem": gpu.mem_clock_mhz}.items() if v is not None} if gpu else {},
                "toolchain": {"python": platform.python_version(), "torch": torch.__version__,
                              "triton": _version("triton")},
            }
        return self._environment


def _nbytes(entry: tuple[list[torch.Tensor], dict[str, torch.Tensor]]) -> int:
    """Bytes held by one (inputs, references) entry of the evaluator's data cache."""
    inputs, refs = entry
    return sum(t.numel() * t.element_size() for t in [*inputs, *refs.values()])


def _blank_outputs(task: Task, wl, dtype: str) -> list[torch.Tensor]:
    """The outputs' shapes and dtypes, as meta tensors: the arena allocates, the worker poisons."""
    return list(task.allocate_outputs(wl, dtype=dtype, device="meta").values())


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _no_reply_failure(outcome: Outcome) -> FailureClass:
    """The class of a worker that gave no reply: killed at its time or memory limit, or died."""
    if outcome.kind == "timeout":
        return FailureClass.TIMEOUT
    if outcome.kind == "out_of_memory":
        return FailureClass.OUT_OF_MEMORY
    return FailureClass.GPU_FAULT if "illegal" in outcome.detail.lower() else FailureClass.WORKER_CRASH


def _sandbox_verdicts(reply: dict) -> list[Verdict]:
    """What the worker saw the candidate do to the sandbox: replaced timers, blocked operations."""
    return ([_hack(FailureClass.REWARD_HACK_TIMING_TAMPER, f"{name} was replaced")
             for name in reply.get("timers_replaced", [])] +
            [_hack(FailureClass.REWARD_HACK_FORBIDDEN_CALL, f"the sandbox blocked {v}")
             for v in reply.get("violations", [])])


def _hack(failure: FailureClass, detail: str) -> Verdict:
    return Verdict(check=failure.value, ok=False, detail=detail, failure_class=failure)


def _probe_verdicts(calls: list[_Call], results: dict, by_id: dict) -> list[Verdict]:
    """Pointer reuse, replayed outputs and ghost replay: stale results and kernels that do no work."""
    verdicts: list[Verdict] = []
    plain = [c for c in calls if not c.probe]
    reuse = next(c for c in calls if c.probe == "reuse")
    ghost = next(c for c in calls if c.probe == "ghost")
    first_ok = all(ch.passed for ch in results[plain[0].id][0])
    if first_ok and not all(ch.passed for ch in results[reuse.id][0]):
        verdicts.append(_hack(FailureClass.REWARD_HACK_CACHING,
                              "new values in the same tensors gave stale or unwritten outputs (cached by pointer, "
                              "shape or call count)"))
    # A failing call whose outputs repeat, bit for bit, those of an earlier call that was right for
    # its own inputs replays old results. A call that wrote nothing at all, on a workload whose
    # earlier calls were written, stopped working after warm-up (a kernel that is merely wrong on
    # some inputs writes something, and is left to the output checks).
    for i, call in enumerate(plain[1:], start=1):
        checks, outs = results[call.id]
        if all(ch.passed for ch in checks):
            continue
        earlier = [(p, results[p.id]) for p in plain[:i]]
        if any(all(ch.passed for ch in e_checks) and [o.shape for o in e_outs] == [o.shape for o in outs]
               and all(torch.equal(a, b) for a, b in zip(outs, e_outs)) for _, (e_checks, e_outs) in earlier):
            verdicts.append(_hack(FailureClass.REWARD_HACK_REPLAY, f"{call.workload}/{call.distribution}/seed "
                                  f"{call.seed}: outputs repeat an earlier call's outputs for new inputs"))
            break
        nothing_written = all(bool(unwritten_mask(o).all()) for o in outs)
        if nothing_written and any(p.workload == call.workload and all(ch.checks.get("written") for ch in e_checks)
                                   for p, (e_checks, _) in earlier):
            verdicts.append(_hack(FailureClass.REWARD_HACK_CACHING, f"{call.workload}/{call.distribution}/seed "
                                  f"{call.seed}: nothing written, where earlier calls of this workload wrote"))
            break
    # Right outputs with every launch made a no-op (or with no launch at all): kernels did not do the work.
    if all(ch.passed for ch in results[ghost.id][0]):
        launches = by_id[ghost.id].get("launches_skipped", 0)
        verdicts.append(_hack(FailureClass.REWARD_HACK_NO_KERNEL_WORK,
                              f"outputs were right with every kernel launch ({launches}) replaced by a no-op"))
    return verdicts


def _describe(check: OutputCheck) -> str:
    where = f"{check.workload}/{check.distribution}/seed {check.seed}, output {check.output}"
    failed = [k for k, ok in check.checks.items() if not ok]
    return (f"{where}: failed {', '.join(failed)} (max abs err {check.max_abs_err:.3g}, matched "
            f"{check.matched_ratio:.4f})" if check.max_abs_err is not None else f"{where}: failed {', '.join(failed)}")


def _write_samples(directory: Path, packet: _Packet, samples: dict[str, list[float]]) -> Path:
    path = directory / packet.packet_id / "timing_samples.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"unit": "us", "samples": samples}))
    return path


class _Packet:
    """Collects an evaluation's evidence and turns it into one EvidencePacket."""

    def __init__(self, task: Task, path: Path, source: str, language: str, target: str, dtype: str,
                 workloads: list[str], seeds: list[int], env: dict, backend: str):
        self.task, self.path, self.source, self.language, self.backend = task, path, source, language, backend
        self.target, self.dtype, self.workloads, self.seeds, self.env = target, dtype, workloads, seeds, env
        self.audit = Audit(target=target)
        self.diagnostics: list[Diagnostic] = []
        self.checks: list[OutputCheck] | None = None
        self.input_mutated: list[str] = []
        self.validation_reason = ""
        self.message_ok = ""
        self.seconds = 0.0
        self.durations: dict[str, float] = {}
        self.artifacts = Artifacts()
        self.packet_id = f"att-{uuid.uuid4().hex[:16]}"

    def add_diagnostics(self, error: dict) -> None:
        self.diagnostics.extend(Diagnostic.model_validate(d) for d in error.get("diagnostics", []))

    def finish(self, failure: FailureClass | None, message: str,
               performance: Performance | None = None) -> EvidencePacket:
        status = Status.PASS if failure is None else status_for(failure)
        validation = None
        if self.checks is not None:
            validation = Validation(
                passed=failure is None, backend=self.backend, workloads_checked=self.workloads, seeds=self.seeds,
                distributions=self.task.distributions, outputs=self.checks,
                reason=(self.validation_reason or None) if failure is None else message)
        unmeasured = None if performance is not None else Unmeasured(
            reason=FailureClass.UNMEASURED_NO_DEVICE if failure is None else FailureClass.UNMEASURED_NOT_VERIFIED,
            detail=f"verified on {self.backend} only; timing needs the target's GPU" if failure is None else message)
        speed = performance.speedup_geomean if performance else None
        sol = performance.sol_score if performance else None
        return EvidencePacket(
            packet_id=self.packet_id, task=self.task.name,
            candidate=Candidate(source_hash=source_hash(self.source), language=self.language,
                                entry=self.task.entry_name, target=self.target, dtype=self.dtype,
                                shape_suite=self.workloads),
            environment=Environment(
                ksearch_version=ksearch.__version__, baseline="reference", **self.env,
                tolerances={f"{k}.{f}": getattr(v, f) for k, v in self.task.output_tolerances(self.dtype).items()
                            for f in ("atol", "rtol", "matched_ratio", "max_error_cap")},
                replay_command=eval_command(self.task.name, str(self.path), self.target, self.dtype, self.seeds,
                                            self.workloads)),
            validation=validation, performance=performance, unmeasured=unmeasured, audit=self.audit,
            artifacts=self.artifacts, diagnostics=self.diagnostics,
            durations_s={"verify": round(self.seconds, 4), **{k: round(v, 4) for k, v in self.durations.items()}},
            reward=reward(failure is None, speed, sol), reward_formula=REWARD_FORMULA,
            status=status, failure_class=failure if status is not Status.PASS else None, message=message[:2000])
