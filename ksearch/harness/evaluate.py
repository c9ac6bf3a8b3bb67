"""One evaluation, end to end: static checks, the recorded call, the trusted replay that is judged,
(on a GPU) timing of that replay, and the EvidencePacket that records all of it.

Who does what (docs/harness-trust.md says why):
  - here: the static checks (an allowlist), every input and reference, every comparison;
  - the worker (`worker`, inside the OS boundary of `jail`): the only process that imports the
    candidate. It calls the entry once per workload x distribution x seed on tensors lent from
    here, with every Triton launch recorded and none run: one launch trace per call;
  - the judge (`judge`): never imports the candidate. It replays each call's trace with the
    compiled kernels alone on that call's inputs, and each workload's first trace once more on
    inputs drawn from a seed chosen now, which the worker never saw; outputs poisoned, scratch
    fresh. Its outputs are the ones judged. On a GPU it also times each workload's trace.
What the worker's own outputs hold after a call (where no kernel ran) only names a failure: right
outputs there were computed by the host (`reward_hack:no_kernel_work`).
"""

from __future__ import annotations

import contextlib
import json
import platform
import secrets
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import ValidationError

import ksearch
from ksearch import settings
from ksearch.compile import compiler, detect_language
from ksearch.errors import ConfigError, TargetError
from ksearch.evidence import (
    Artifacts,
    Audit,
    Candidate,
    Diagnostic,
    Environment,
    EvidencePacket,
    FailureClass,
    OutputCheck,
    Performance,
    Status,
    Unmeasured,
    Validation,
    Verdict,
    WorkloadTiming,
    eval_command,
    source_hash,
    status_for,
)
from ksearch.harness.arena import Arena, returned
from ksearch.harness.datacache import InputCache
from ksearch.harness.judge import dtype_size
from ksearch.harness.poison import unwritten_mask
from ksearch.harness.reward import REWARD_FORMULA, reward
from ksearch.harness.sandbox import DEFAULT_MEMORY_MB, JUDGE, Worker, WorkerOutcome, WorkerPool
from ksearch.harness.static_checks import static_checks_for_task
from ksearch.harness.trace import Trace, TraceError, check_trace
from ksearch.harness.verify import Comparison, bitwise_unchanged, compare_many, failure_of, scored
from ksearch.paths import read_text
from ksearch.task import Task

ROTATING_SETS = 3  # input sets timed in rotation, so no call finds the previous call's inputs in cache
TIMED_SEEDS = [1000 + i for i in range(ROTATING_SETS)]  # their seeds, of the normal distribution
_LOW_PRECISION = {"bfloat16"}  # the Triton interpreter computes these wrongly on CPU, silently
SCRATCH_FACTOR, SCRATCH_SLACK = 8, 64 << 20  # scratch a call may ask for: 8x its own tensors + 64 MiB


@dataclass
class _Call:
    id: int
    workload: str
    distribution: str
    seed: int
    refs: dict[str, torch.Tensor]
    pristine: list[torch.Tensor]  # the inputs as drawn: after the replay they must still hold these values
    judge_args: list[int]  # where the replay's inputs, then outputs, sit in the judge's buffers
    worker_args: list[int] | None = None  # where the worker's call sits in its buffers (None: replay only)
    trace_of: int = (
        -1
    )  # the call whose trace is replayed: itself, or for the fresh probe its workload's first
    probe: str = ""  # "" or "fresh" (inputs the worker never saw)


class _Layout:
    """The tensors of one job, in the order the process's buffers list them."""

    def __init__(self) -> None:
        self.tensors: list[torch.Tensor] = []

    def place(self, tensors: list[torch.Tensor]) -> list[int]:
        start = len(self.tensors)
        self.tensors.extend(tensors)
        return list(range(start, len(self.tensors)))


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA or ROCm device is visible to torch; use --device cpu")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu or cuda")
    return device


class Evaluator:
    """Evaluates candidates one after another on one device, with a warm worker and judge waiting."""

    def __init__(
        self,
        device: str = "auto",
        *,
        timeout_s: float = settings.DEFAULT_EVAL_TIMEOUT_S,
        memory_mb: int = DEFAULT_MEMORY_MB,
        artifacts_dir: Path | None = None,
        bench_budget_s: float = 1.0,
        rel_ci: float = 0.01,
        ncu: bool = False,
        ncu_calls: int = 20,
        baselines: bool = True,
        static: bool = True,
    ):
        """`baselines=False` skips timing torch eager, torch.compile and the vendor library (speedups are
        then absent): for runs that only need verdicts, such as the cheat corpora. `static=False` skips
        the static checks, so tests can show the replay alone rejects what they would have."""
        self.device = resolve_device(device)
        self.time_baselines = baselines
        self.static = static
        self.ncu, self.ncu_calls = ncu, ncu_calls
        self.timeout_s, self.memory_mb = timeout_s, memory_mb
        self.artifacts_dir = Path(artifacts_dir) if artifacts_dir else None
        self.bench_budget_s, self.rel_ci = bench_budget_s, rel_ci
        self._baselines: dict[
            tuple, dict
        ] = {}  # (task, workload, dtype) -> baseline medians: same for every candidate
        self._peaks = None
        self._profile: tuple | None = None  # (detected device, its target profile), looked up once
        # (task, workload, distribution, seed, dtype) -> (inputs, references), on the device. A quarter
        # of a GPU's memory holds a norm's whole suite with its 16384 x 16384 rows (about 12 GiB) on an
        # 80 GB card; the candidate's two arena copies of one workload and its own buffers keep the rest.
        self._needed: set[tuple] = set()  # the data keys of the evaluation under way (see _plan)
        self.data = InputCache(
            torch.cuda.get_device_properties(0).total_memory // 4 if self.device == "cuda" else 2 << 30
        )
        # Two arenas: nothing the worker was ever lent (or any process it left) can reach the judge's memory.
        self.arena, self.judge_arena = Arena(self.device), Arena(self.device)
        self.pool = WorkerPool(device=self.device)
        # three spare judges on a GPU, as for workers: with two, a fast candidate found the next judge still
        # starting (judge_wait 0.6-0.9 s of a 2.3 s matmul evaluation on an H100)
        self.judges = WorkerPool(device=self.device, module=JUDGE, spares=1 if self.device == "cpu" else 3)
        # On the CPU a second judge puts every launch through Triton's front end for a real GPU target
        # before the first may interpret it (one process cannot hold both: the interpreter needs triton
        # imported for it). It runs nothing of a candidate, so one serves them all.
        self._gate_process: Worker | None = None
        self._environment: dict | None = None
        # The seed of the inputs no worker ever sees: drawn once per evaluator (its inputs and
        # references are then cached like the others: drawing a 4096x4096 tensor on the CPU for
        # each candidate cost a GPU evaluation most of its overhead).
        self.fresh_seed = secrets.randbelow(2**31 - 2000) + 2000

    def close(self) -> None:
        self.pool.close()
        self.judges.close()
        if self._gate_process is not None:
            self._gate_process.kill()

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ the evaluation

    def evaluate(
        self,
        candidate_path: Path,
        task: Task,
        *,
        target: str | None = None,
        dtype: str | None = None,
        seeds: tuple[int, ...] = (0, 1),
        workloads: list[str] | None = None,
    ) -> EvidencePacket:
        """One candidate's packet. durations_s says where the time went: `total` (this call),
        `verify` (the worker's recording job), `replay` (the judge's job: its kernel compiles and
        kernels; `replay_first`, its first call, is where the kernels compile), `benchmark` (the
        judge's timing job), `timed_calls` (inside the timing loops),
        `baselines` (timing baselines, once per workload per Evaluator), `ncu`, `worker_wait` and
        `judge_wait` (for warm processes), `candidate_calls` (the candidate's host code, in the
        worker: its launch overhead), and `overhead`: the total less the replay, the timed calls,
        baselines, ncu and the candidate's calls, i.e. what the harness itself costs. Parts of it:
        `static`, `inputs` (drawing inputs and references, laying out the calls), `lend` (copies into
        the arenas), `reap` (waiting until the last candidate's processes are gone, device contexts
        and all, before memory is lent again), `check_traces`, `compare` (the judge's outputs
        against the references)."""
        t0 = time.perf_counter()
        packet = self._evaluate(
            candidate_path, task, target=target, dtype=dtype, seeds=seeds, workloads=workloads
        )
        d = packet.durations_s
        d["total"] = round(time.perf_counter() - t0, 4)
        d["overhead"] = round(
            d["total"]
            - sum(d.get(k, 0.0) for k in ("replay", "timed_calls", "baselines", "ncu", "candidate_calls")),
            4,
        )
        return packet

    def _evaluate(
        self,
        candidate_path: Path,
        task: Task,
        *,
        target: str | None,
        dtype: str | None,
        seeds: tuple[int, ...],
        workloads: list[str] | None,
    ) -> EvidencePacket:
        path = Path(candidate_path).resolve()
        try:
            source = read_text(path)
        except OSError as e:
            raise ConfigError(f"candidate {candidate_path} cannot be read ({e.strerror})") from e
        language = detect_language(path, source)
        requested = dtype or task.default_dtype
        if requested not in task.dtypes:
            raise ConfigError(
                f"dtype {requested!r} is not a variant of task {task.name}: {', '.join(task.dtypes)}"
            )
        run_dtype, dtype_note = self._verification_dtype(task, requested)
        wls = self._workloads(task, workloads)
        target_name = target or self._local_target()
        _check_target_name(target_name)
        env = self._env()
        backend = "triton-interpreter" if self.device == "cpu" else f"cuda:{torch.cuda.get_device_name()}"
        packet = _Packet(
            task,
            path,
            source,
            language,
            target_name,
            requested,
            [w.name for w in wls],
            list(seeds),
            env,
            backend,
            self.timeout_s,
        )

        why = compiler(language).cannot_run(self.device)
        if why:
            return packet.finish(
                FailureClass.SKIPPED_TOOLCHAIN_MISSING,
                f"{why}; none here: compiled and audited only (ksearch compile)",
            )
        if self.static:
            with packet.timed("static"):
                static = static_checks_for_task(source, str(path), task)
            packet.audit.anti_hack.extend(static)
            first_static = next((v for v in static if not v.ok and v.failure_class), None)
            if first_static is not None:
                return packet.finish(first_static.failure_class, first_static.detail)
        only = task.spec.target_only
        if only is not None and target_name not in only.targets:
            return packet.finish(
                FailureClass.SKIPPED_NEEDS_TARGET,
                f"task {task.name} is verified on "
                f"{', '.join(only.targets)} only ({only.reason}); here it was statically "
                "checked, and `ksearch compile` audits it",
            )
        if run_dtype is None:
            return packet.finish(FailureClass.SKIPPED_BF16_INTERPRETER, dtype_note)

        with packet.timed("inputs"):
            calls, worker_layout, judge_layout = self._plan(task, wls, run_dtype, seeds)
        job = {
            "candidate": str(path),
            "entry": task.entry_name,
            "task": str(task.root),
            "dtype": run_dtype,
            "n_inputs": len(task.input_names),
        }
        with packet.timed("reap"):  # no finished candidate's process may still touch what is lent below
            self.pool.reap()
            self.judges.reap()
        with self.pool.session() as worker:
            with packet.timed("lend"):
                message, views = self.arena.lend(worker_layout.tensors)
            outcome = worker.ask(
                {
                    **job,
                    "buffers": message,
                    "calls": [{"id": c.id, "args": c.worker_args} for c in calls if c.worker_args],
                },
                self.timeout_s,
                self.memory_mb,
            )
            packet.seconds = outcome.seconds
            packet.durations["worker_wait"] = worker.waited_s
            packet.diagnostics.append(
                Diagnostic(severity="note", message=f"worker OS boundary: {worker.boundary.describe()}")
            )
            with packet.timed("check_traces"):
                traces = self._traces(packet, task, calls, outcome, (message, views), run_dtype)
        if not isinstance(traces, dict):
            return traces
        gated = self._gate(packet, job, calls, traces, worker_layout)
        if gated is not None:
            return gated
        with self.judges.session() as judge:
            with packet.timed("lend"):
                message, views = self.judge_arena.lend(judge_layout.tensors)
            replays = [
                {
                    "id": c.id,
                    "args": c.judge_args,
                    "trace": traces[c.trace_of],
                    "workload": c.workload,
                    "n_inputs": len(task.input_names),
                }
                for c in calls
            ]
            outcome = judge.ask(
                {**job, "buffers": message, "replays": replays}, self.timeout_s, self.memory_mb
            )
            packet.durations["replay"] = outcome.seconds
            first = ((outcome.reply or {}).get("replays") or [{}])[0]
            if "seconds" in first:  # on a GPU mostly the compile of the kernels it launches
                packet.durations["replay_first"] = first["seconds"]
            packet.durations["judge_wait"] = judge.waited_s
            verified = self._judge(packet, task, calls, outcome, (message, views), run_dtype, dtype_note)
            if verified.status is not Status.PASS or self.device == "cpu":
                if verified.status is Status.PASS and requested != run_dtype:  # verified a stand-in dtype
                    return packet.finish(FailureClass.SKIPPED_BF16_INTERPRETER, dtype_note)
                return verified
            # The worker was killed after its reply and has been dying while the judge replayed
            # (a device context takes ~0.1 s to go); it is gone before anything is timed.
            with packet.timed("reap"):
                self.pool.reap()
            return self._benchmark(packet, task, wls, run_dtype, judge, traces, calls)

    def _gate(
        self, packet: _Packet, job: dict, calls: list[_Call], traces: dict[int, dict], layout: _Layout
    ) -> EvidencePacket | None:
        """On the CPU: every recorded launch must compile for a real GPU target before the judge may
        interpret it (None when all do, or on a GPU, where the judge compiles them itself)."""
        if self.device != "cpu":
            return None
        replays = []
        for c in calls:
            if c.worker_args is None:
                continue
            sizes = [t.numel() * t.element_size() for t in (layout.tensors[i] for i in c.worker_args)]
            replays.append({"id": c.id, "trace": traces[c.id], "sizes": sizes, "workload": c.workload})
        if self._gate_process is None:
            self._gate_process = Worker(device="gate", module=JUDGE)
        outcome = self._gate_process.ask({**job, "replays": replays}, self.timeout_s, self.memory_mb)
        if outcome.kind != "reply":
            self._gate_process = None  # killed by `ask`; the next candidate gets a new one
        packet.durations["gate"] = outcome.seconds
        reply = outcome.reply
        if outcome.kind != "reply" or reply is None:
            return packet.finish(
                _no_reply_failure(outcome), f"compiling the launches for a GPU: {outcome.detail}"
            )
        if "fatal" in reply:
            return packet.finish(
                FailureClass.IMPORT_ERROR,
                f"the kernels alone do not build: {reply['fatal']['message']}",
            )
        for got in reply.get("replays", []):
            for key, failure in (
                ("compile_error", FailureClass.COMPILE_ERROR),
                ("trace_error", FailureClass.RUNTIME_ERROR),
                ("error", FailureClass.COMPILE_ERROR),
            ):
                if key in got:
                    detail = got[key]["message"] if key == "error" else got[key]
                    return packet.finish(failure, f"before interpreting: {detail}")
        return None

    # ------------------------------------------------------------------ pieces

    def _workloads(self, task: Task, names: list[str] | None) -> list:
        """The workloads named, or else every workload the device runs (the CPU's subset there)."""
        if names:
            return [task.workload(w) for w in names]
        return task.workloads(cpu_only=self.device == "cpu")

    def _verification_dtype(self, task: Task, dtype: str) -> tuple[str | None, str]:
        """The dtype the calls run in, and a note when it is not the one asked for. On the CPU a
        bfloat16 candidate is checked in float16 (or float32) and is never a pass: it is skipped,
        with what the stand-in showed."""
        if self.device != "cpu" or dtype not in _LOW_PRECISION:
            return dtype, ""
        for alt in ("float16", "float32"):
            if alt in task.dtypes:
                return alt, (
                    f"{dtype} is unreliable in the Triton interpreter on CPU and is not verified here; "
                    f"the {alt} variant verified (verify {dtype} on a GPU)"
                )
        return (
            None,
            f"{dtype} is unreliable in the Triton interpreter on CPU and task {task.name} has no fp16/fp32 variant",
        )

    def _plan(self, task: Task, wls, dtype: str, seeds) -> tuple[list[_Call], _Layout, _Layout]:
        """Every call: its inputs and outputs placed once in the worker's buffers (the recorded call)
        and once in the judge's (the replay); per workload, one replay of its first trace on inputs
        from a seed drawn now."""
        calls: list[_Call] = []
        worker, judge = _Layout(), _Layout()
        while self.fresh_seed in seeds:  # a seed a worker saw is not fresh
            self.fresh_seed = secrets.randbelow(2**31 - 2000) + 2000
        fresh = self.fresh_seed
        first_dist = task.distributions[0]
        # every key this evaluation draws: what the cache keeps for the next one (see InputCache)
        self._needed = {
            *(_data_key(task, wl, d, s, dtype) for wl in wls for d in task.distributions for s in seeds),
            *(_data_key(task, wl, first_dist, fresh, dtype) for wl in wls),
            *(_data_key(task, wl, "normal", s, dtype) for wl in wls for s in TIMED_SEEDS),
        }
        for wl in wls:
            first: _Call | None = None
            for dist in task.distributions:
                for seed in seeds:
                    inputs, refs = self._inputs_and_references(task, wl, dist, seed, dtype)
                    blank = _blank_outputs(task, wl, dtype)
                    call = _Call(
                        len(calls),
                        wl.name,
                        dist,
                        seed,
                        refs,
                        inputs,
                        judge.place(inputs + blank),
                        worker_args=worker.place(inputs + blank),
                        trace_of=len(calls),
                    )
                    calls.append(call)
                    first = first or call
            assert first is not None and first.distribution == first_dist
            inputs, refs = self._inputs_and_references(task, wl, first_dist, fresh, dtype)
            calls.append(
                _Call(
                    len(calls),
                    wl.name,
                    first_dist,
                    fresh,
                    refs,
                    inputs,
                    judge.place(inputs + _blank_outputs(task, wl, dtype)),
                    trace_of=first.id,
                    probe="fresh",
                )
            )
        return calls, worker, judge

    def _inputs_and_references(
        self, task: Task, wl, distribution: str, seed: int, dtype: str
    ) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        """The inputs drawn from a seed and the reference's outputs for them, on the evaluation device
        (where the comparison runs: on a GPU it is 100x faster), kept for the next candidates within
        the cache's cap. Nothing here is ever lent to a worker or judge, only copies."""

        def draw() -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
            drawn = task.make_inputs(wl, distribution, seed, dtype=dtype, device=self.device)
            refs = task.run_reference({k: v.clone() for k, v in drawn.items()}, workload=wl, dtype=dtype)
            return list(drawn.values()), refs

        return self.data.get(_data_key(task, wl, distribution, seed, dtype), draw, self._needed)

    def _traces(
        self, packet: _Packet, task: Task, calls: list[_Call], outcome: WorkerOutcome, lent: tuple, dtype: str
    ) -> dict[int, dict] | EvidencePacket:
        """Each recorded call's trace, validated, by call id; or the packet of why there is none. The
        worker's outputs, where no kernel ran, are checked too: right ones were computed by the host."""
        reply = outcome.reply
        if outcome.kind != "reply" or reply is None:
            return packet.finish(_no_reply_failure(outcome), outcome.detail)
        if "import_error" in reply:
            packet.add_diagnostics(reply["import_error"])
            return packet.finish(FailureClass.IMPORT_ERROR, reply["import_error"]["message"])
        if "entry_error" in reply:
            return packet.finish(FailureClass.ENTRY_SIGNATURE, reply["entry_error"])
        if "fatal" in reply:
            return packet.finish(FailureClass.HARNESS_ERROR, reply["fatal"]["message"])
        hack = next(iter(_sandbox_verdicts(reply)), None)
        if hack is not None:
            packet.audit.anti_hack.append(hack)
            return packet.finish(hack.failure_class, hack.detail)
        try:
            buffers = returned(lent[0], reply, lent[1])
        except ValueError as e:
            return packet.finish(FailureClass.HARNESS_ERROR, str(e))
        by_id = {c.get("id"): c for c in reply.get("calls", [])}
        packet.durations["candidate_calls"] = sum(c.get("seconds", 0.0) for c in by_id.values())
        tolerances = task.output_tolerances(dtype)
        traces: dict[int, dict] = {}
        host_ops: set[str] = set()
        written: list[tuple[_Call, list[torch.Tensor]]] = []  # the worker's outputs, where no kernel ran
        for call in calls:
            if call.worker_args is None:
                continue
            got = by_id.get(call.id)
            if got is None:
                return packet.finish(
                    FailureClass.HARNESS_ERROR, f"the worker returned no result for call {call.id}"
                )
            where = f"{call.workload}/{call.distribution}/seed {call.seed}"
            if "error" in got:
                packet.add_diagnostics(got["error"])
                return packet.finish(FailureClass.RUNTIME_ERROR, f"{where}: {got['error']['message']}")
            tensors = [buffers[i] for i in call.worker_args]
            try:
                trace = Trace.model_validate(got.get("trace"))
                check_trace(
                    trace,
                    [t.numel() * t.element_size() for t in tensors],
                    dtype_size,
                    SCRATCH_FACTOR * sum(t.numel() * t.element_size() for t in tensors) + SCRATCH_SLACK,
                )
            except (ValidationError, TraceError) as e:
                return packet.finish(
                    FailureClass.RUNTIME_ERROR, f"{where}: the launches cannot be replayed: {e}"
                )
            host_ops.update(trace.host_ops)
            written.append((call, tensors[len(call.pristine) :]))
            traces[call.id] = trace.model_dump(mode="json")
        computed_on_host = _host_computed(written, tolerances)
        if computed_on_host is not None:
            return packet.finish(FailureClass.REWARD_HACK_NO_KERNEL_WORK, computed_on_host)
        # One workload is one set of shapes: a launcher's steps depend on nothing else, so a call whose
        # steps differ from the first call's chose them from the values it was given (or its history).
        first: dict[str, _Call] = {}
        for call in (c for c in calls if c.id in traces):
            ref = first.setdefault(call.workload, call)
            if traces[call.id]["steps"] != traces[ref.id]["steps"]:
                return packet.finish(
                    FailureClass.REWARD_HACK_CACHING,
                    f"{call.workload}/{call.distribution}/seed "
                    f"{call.seed}: its launches differ from those of {ref.distribution}/seed "
                    f"{ref.seed} on the same shapes: they depend on the input values or on earlier "
                    "calls",
                )
        if host_ops:
            packet.diagnostics.append(
                Diagnostic(
                    severity="note",
                    message="torch compute on the call's data in the "
                    f"host code, not replayed: {', '.join(sorted(host_ops))}",
                )
            )
        return traces

    def _judge(
        self,
        packet: _Packet,
        task: Task,
        calls: list[_Call],
        outcome: WorkerOutcome,
        lent: tuple,
        dtype: str,
        dtype_note: str,
    ) -> EvidencePacket:
        reply = outcome.reply
        if outcome.kind != "reply" or reply is None:
            return packet.finish(_no_reply_failure(outcome), f"replaying the launches: {outcome.detail}")
        if "fatal" in reply:
            return packet.finish(
                FailureClass.IMPORT_ERROR, f"the kernels alone do not build: {reply['fatal']['message']}"
            )
        try:
            buffers = returned(lent[0], reply, lent[1])
        except ValueError as e:
            return packet.finish(FailureClass.HARNESS_ERROR, str(e))
        if reply.get("stray_writes"):
            return packet.finish(FailureClass.GPU_FAULT, _STRAY_WRITES)
        by_id = {c["id"]: c for c in reply.get("replays", [])}
        t_compare = time.perf_counter()
        checks: list[OutputCheck] = []
        results: dict[int, tuple[list[OutputCheck], list[torch.Tensor]]] = {}
        tolerances = task.output_tolerances(dtype)
        replayed: list[tuple[_Call, list[torch.Tensor], list[torch.Tensor]]] = []
        for call in calls:
            got = by_id.get(call.id)
            if got is None:
                return packet.finish(
                    FailureClass.HARNESS_ERROR, f"the judge returned no result for call {call.id}"
                )
            where = f"{call.workload}/{call.distribution}/seed {call.seed}"
            if "compile_error" in got:
                return packet.finish(FailureClass.COMPILE_ERROR, f"{where}: {got['compile_error']}")
            if "trace_error" in got:
                return packet.finish(
                    FailureClass.RUNTIME_ERROR,
                    f"{where}: the launches cannot be replayed: {got['trace_error']}",
                )
            if "error" in got:
                packet.add_diagnostics(got["error"])
                failure = FailureClass.GPU_FAULT if got["error"]["gpu_fault"] else FailureClass.RUNTIME_ERROR
                return packet.finish(failure, f"{where}: {got['error']['message']}")
            args = [buffers[i] for i in call.judge_args]
            replayed.append((call, args[: len(call.pristine)], args[len(call.pristine) :]))
        judged = iter(
            compare_many(
                [
                    Comparison(
                        o,
                        call.refs[name],
                        tolerances[name],
                        call.workload,
                        call.distribution,
                        call.seed,
                        name,
                    )
                    for call, _, outs in replayed
                    for o, name in zip(outs, call.refs)
                ]
            )
        )
        unchanged = bitwise_unchanged([list(zip(ins, c.pristine)) for c, ins, _ in replayed])
        for (call, _, outs), same in zip(replayed, unchanged):
            out_checks = [next(judged) for _ in zip(outs, call.refs)]
            results[call.id] = (out_checks, outs)
            if not call.probe:
                checks.extend(out_checks)
            mutated = [name for name, ok in zip(task.input_names, same) if not ok]
            if mutated:
                packet.input_mutated = mutated
        packet.checks = checks
        dynamic = _probe_verdicts(calls, results)
        packet.audit.anti_hack.extend(dynamic)
        packet.validation_reason = dtype_note
        hack = next((v for v in dynamic if not v.ok), None)
        if hack is not None:
            return packet.finish(hack.failure_class, hack.detail)
        if packet.input_mutated:
            return packet.finish(
                FailureClass.INPUT_MUTATED, f"inputs changed by the call: {', '.join(packet.input_mutated)}"
            )
        bad = next((c for c in checks if not c.passed), None)
        if bad is not None:
            return packet.finish(failure_of(bad), _describe(bad))
        for call in (c for c in calls if c.probe == "fresh"):
            bad = next((c for c in results[call.id][0] if not c.passed), None)
            if bad is not None:
                return packet.finish(
                    failure_of(bad), f"replayed on inputs drawn for this evaluation: {_describe(bad)}"
                )
        fresh = [c for c in calls if c.probe == "fresh"]
        packet.diagnostics.append(
            Diagnostic(
                severity="note",
                message="outputs are the judge's replay of the recorded "
                "launches; fresh-input seeds: " + ", ".join(f"{c.workload}={c.seed}" for c in fresh),
            )
        )
        packet.message_ok = "verified on every workload, distribution and seed" + (
            f" ({dtype_note})" if dtype_note else ""
        )
        packet.durations["compare"] = time.perf_counter() - t_compare
        return packet.finish(None, packet.message_ok)

    # ------------------------------------------------------------------ timing (GPU)

    def _benchmark(
        self, packet: _Packet, task: Task, wls, dtype: str, judge, traces: dict[int, dict], calls: list[_Call]
    ) -> EvidencePacket:
        """Time every workload's trace in the judge that verified it (kernels compiled, autotune
        choices made), re-verify the timed outputs, time the baselines here, and score against the
        roofline."""
        from ksearch.harness.sol import geomean, is_impossible, task_roofline

        seeds = TIMED_SEEDS
        n_inputs = len(task.input_names)
        layout = _Layout()
        specs, timed_sets = [], []
        first_of = {c.workload: c.id for c in reversed(calls) if c.worker_args is not None}
        for wl in wls:
            drawn = [self._inputs_and_references(task, wl, "normal", seed, dtype) for seed in seeds]
            args = [layout.place(inputs + _blank_outputs(task, wl, dtype)) for inputs, _ in drawn]
            timed_sets.append(
                [
                    (list(zip(a[:n_inputs], inputs)), (a[n_inputs:], refs))
                    for a, (inputs, refs) in zip(args, drawn)
                ]
            )
            specs.append(
                {
                    "workload": wl.name,
                    "trace": traces[first_of[wl.name]],
                    "sets": args,
                    "n_inputs": n_inputs,
                    "budget_s": self.bench_budget_s,
                    "rel_ci": self.rel_ci,
                }
            )
        message, views = self.judge_arena.lend(layout.tensors)
        outcome = judge.ask(
            {"candidate": str(packet.path), "buffers": message, "bench": specs},
            self.timeout_s,
            self.memory_mb,
        )
        packet.durations["benchmark"] = outcome.seconds
        reply = outcome.reply
        packet.durations["timed_calls"] = sum(
            got.get("timed_s", 0.0) for got in (reply or {}).get("bench", [])
        )
        if outcome.kind != "reply" or reply is None:
            return packet.finish(_no_reply_failure(outcome), f"while timing: {outcome.detail}")
        if reply.get("stray_writes"):
            return packet.finish(FailureClass.GPU_FAULT, f"while timing: {_STRAY_WRITES}")
        timed_ins = [ins for sets in timed_sets for _seed, (ins, _) in zip(seeds, sets)]
        for same in bitwise_unchanged([[(views[i], pristine) for i, pristine in ins] for ins in timed_ins]):
            mutated = [name for name, ok in zip(task.input_names, same) if not ok]
            if mutated:
                return packet.finish(
                    FailureClass.INPUT_MUTATED, f"timed calls changed inputs: {', '.join(mutated)}"
                )
        dev, profile = self._device_profile()
        peaks = self._device_peaks(profile)
        timings: list[WorkloadTiming] = []
        samples: dict[str, list[float]] = {}
        tolerances = task.output_tolerances(dtype)
        for wl, got in zip(wls, reply.get("bench", [])):
            if "error" in got or "trace_error" in got:
                if "error" in got:
                    packet.add_diagnostics(got["error"])
                why = got["error"]["message"] if "error" in got else got["trace_error"]
                return packet.finish(FailureClass.RUNTIME_ERROR, f"while timing {wl.name}: {why}")
        timed_outputs = [
            Comparison(views[i], ref, tolerances[name], wl.name, "normal", seed, name)
            for wl, sets in zip(wls, timed_sets)
            for seed, (_, (out_args, refs)) in zip(seeds, sets)
            for i, (name, ref) in zip(out_args, refs.items())
        ]
        wrong = next((c for c in compare_many(timed_outputs) if not c.passed), None)
        if wrong is not None:
            return packet.finish(
                FailureClass.REWARD_HACK_CACHING,
                f"timed calls of {wrong.workload}: outputs wrong after warm-up and repetition "
                f"({_describe(wrong)})",
            )
        for wl, got in zip(wls, reply.get("bench", [])):
            timing = got["timing"]
            median = timing["median_us"]
            samples[wl.name] = timing["samples_us"]
            t_base = time.perf_counter()
            base = self._baseline_medians(task, wl, dtype)
            packet.durations["baselines"] = (
                packet.durations.get("baselines", 0.0) + time.perf_counter() - t_base
            )
            ncu_us = (
                self._ncu_median(
                    packet, task, wl, dtype, seeds, traces[first_of[wl.name]], got.get("choices", {})
                )
                if self.ncu
                else None
            )
            named = "vendor" if base.get("vendor") else "torch_eager"
            roof = (
                task_roofline(task, wl, dtype, profile=profile, peaks=peaks, basis="optimistic")
                if profile
                else None
            )
            if roof is not None and is_impossible(median, roof.sol_us):
                return packet.finish(
                    FailureClass.REWARD_HACK_IMPOSSIBLE_SPEED,
                    f"{wl.name}: {median:.2f} us is under the roofline floor {roof.sol_us:.2f} us",
                )
            timings.append(
                WorkloadTiming(
                    workload=wl.name,
                    median_us=median,
                    iqr_us=timing["iqr_us"],
                    cv=timing["cv"],
                    samples=timing["n"],
                    ci_us=(timing["ci_low_us"], timing["ci_high_us"]),
                    baseline=named,
                    baseline_median_us=base.get(named),
                    baselines_us=base,
                    speedup=base[named] / median if base.get(named) else None,
                    flops=task.flops(wl, dtype),
                    bytes=task.bytes(wl, dtype),
                    sol_us=roof.sol_us if roof else None,
                    sol_fraction=min(1.0, roof.sol_us / median) if roof else None,
                    ncu_median_us=ncu_us,
                )
            )
        speedup = geomean(t.speedup for t in timings if t.speedup)
        sol = geomean(t.sol_fraction for t in timings if t.sol_fraction)
        perf = Performance(
            device=dev.name if dev else "cuda", workloads=timings, speedup_geomean=speedup, sol_score=sol
        )
        if self.artifacts_dir is not None:
            packet.artifacts.profiler_traces.append(str(_write_samples(self.artifacts_dir, packet, samples)))
        return packet.finish(None, packet.message_ok, performance=perf)

    def _ncu_median(
        self,
        packet: _Packet,
        task: Task,
        wl,
        dtype: str,
        seeds: list[int],
        trace: dict,
        choices: dict[str, int],
    ) -> float | None:
        """Nsight Compute's gpu__time_duration of the judge's replay of one workload's trace (summed
        over its kernels per call, median over calls), in a process that never imports the candidate;
        None, with a diagnostic note saying why, when ncu is missing or fails."""
        from ksearch.harness.profilers import ncu_duration_us

        t_ncu = time.perf_counter()
        probe = json.dumps(
            {
                "candidate": str(packet.path),
                "task": str(task.root),
                "trace": trace,
                "choices": choices,
                "workload": wl.name,
                "dtype": dtype,
                "seeds": seeds,
                "calls": self.ncu_calls,
            }
        )
        res = ncu_duration_us(
            [sys.executable, "-m", "ksearch.harness.ncu_probe", probe], calls=self.ncu_calls
        )
        packet.durations["ncu"] = packet.durations.get("ncu", 0.0) + time.perf_counter() - t_ncu
        if not res.available:
            packet.diagnostics.append(Diagnostic(severity="note", message=f"ncu on {wl.name}: {res.reason}"))
        return res.median_us

    def prepare_baselines(
        self, task: Task, dtype: str | None = None, workloads: list[str] | None = None
    ) -> None:
        """Time now the baselines an evaluation of these workloads will use. A caller that later runs
        Python threads in this process (a run's compile thread) calls this first: a busy thread here
        turned a 5 us baseline into 5 ms on an H100 (docs/benchmarks.md, 2026-12-08)."""
        if self.device == "cuda":
            for wl in self._workloads(task, workloads):
                self._baseline_medians(task, wl, dtype or task.default_dtype)

    def _baseline_medians(self, task: Task, wl, dtype: str) -> dict[str, float | None]:
        key = (task.name, wl.name, dtype)
        if not self.time_baselines:
            return {}
        if key not in self._baselines:
            from ksearch.harness.baselines import build_baselines, time_baselines

            # drawn afresh, not taken from the cache: a baseline (an in-place reference) may write its inputs
            arg_sets = [task.make_inputs(wl, "normal", s, dtype=dtype, device="cuda") for s in TIMED_SEEDS]
            timed = time_baselines(
                build_baselines(task, wl, arg_sets),
                device="cuda",
                budget_s=self.bench_budget_s,
                rel_ci=self.rel_ci,
            )
            self._baselines[key] = {
                name: (t.timing.median_us if t.available and t.timing else None) for name, t in timed.items()
            }
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
        return dev.profile if dev and dev.profile else "local"

    @property
    def environment(self) -> dict:
        """This machine as packets record it: host, GPU (None without one), driver, clocks, toolchain."""
        return dict(self._env())

    def _env(self) -> dict:
        if self._environment is None:
            from ksearch.target import environment_snapshot

            snap = environment_snapshot()
            gpu = snap.gpus[0] if snap.gpus else None
            self._environment = {
                "host": socket.gethostname(),
                "gpu_name": gpu.name if gpu else None,
                "driver": gpu.driver_version if gpu else None,
                "clocks_mhz": {
                    k: v
                    for k, v in {
                        "sm": gpu.sm_clock_mhz,
                        "sm_max": gpu.sm_clock_max_mhz,
                        "mem": gpu.mem_clock_mhz,
                    }.items()
                    if v is not None
                }
                if gpu
                else {},
                "toolchain": {
                    "python": platform.python_version(),
                    "torch": torch.__version__,
                    "triton": _version("triton"),
                },
            }
        return self._environment


def _data_key(task: Task, wl, distribution: str, seed: int, dtype: str) -> tuple:
    return (str(task.root), wl.name, distribution, seed, dtype)


def _blank_outputs(task: Task, wl, dtype: str) -> list[torch.Tensor]:
    """The outputs' shapes and dtypes, as meta tensors: the arena allocates, the worker poisons."""
    return list(task.allocate_outputs(wl, dtype=dtype, device="meta").values())


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


_STRAY_WRITES = (
    "the kernels wrote outside the job's tensors (out-of-bounds stores, which also could keep "
    "results between calls)"
)


def _host_computed(written: list[tuple[_Call, list[torch.Tensor]]], tolerances: dict) -> str | None:
    """Why the worker's outputs show the host computed them, or None. The worker records launches and
    runs none, so its outputs should still hold poison; only calls whose outputs were all fully written
    are compared with the references (one device read for the screen, one for the comparisons)."""
    candidates = [(c, outs) for c, outs in written if outs and all(o.numel() for o in outs)]
    screens = [
        (unwritten_mask(o.to(c.refs[name].device)) & scored(c.refs[name])).any()
        for c, outs in candidates
        for o, name in zip(outs, c.refs)
    ]
    if not screens:
        return None
    flags = iter(torch.stack([f.to(screens[0].device) for f in screens]).tolist())
    full = [(c, outs) for c, outs in candidates if not any([next(flags) for _ in zip(outs, c.refs)])]
    judged = iter(
        compare_many(
            [
                Comparison(o, c.refs[name], tolerances[name], c.workload, c.distribution, c.seed, name)
                for c, outs in full
                for o, name in zip(outs, c.refs)
            ]
        )
    )
    for c, outs in full:
        if all([next(judged).passed for _ in zip(outs, c.refs)]):
            return (
                f"{c.workload}/{c.distribution}/seed {c.seed}: the outputs were right although no kernel "
                "ran (the worker records launches and runs none): the host computed them"
            )
    return None


def _no_reply_failure(outcome: WorkerOutcome) -> FailureClass:
    """The class of a worker that gave no reply: killed at its time or memory limit, or died."""
    if outcome.kind == "timeout":
        return FailureClass.TIMEOUT
    if outcome.kind == "out_of_memory":
        return FailureClass.OUT_OF_MEMORY
    return FailureClass.GPU_FAULT if "illegal" in outcome.detail.lower() else FailureClass.WORKER_CRASH


def _sandbox_verdicts(reply: dict) -> list[Verdict]:
    """What the worker's guard blocked the candidate from doing (defence in depth behind the jail)."""
    return [
        _hack(FailureClass.REWARD_HACK_FORBIDDEN_CALL, f"the sandbox blocked {v}")
        for v in reply.get("violations", [])
    ]


def _hack(failure: FailureClass, detail: str) -> Verdict:
    return Verdict(check=failure.value, ok=False, detail=detail, failure_class=failure)


def _probe_verdicts(calls: list[_Call], results: dict) -> list[Verdict]:
    """Replayed outputs, and work that stops after the first calls. (Launches that differ between
    calls are refused before any replay; the fresh-input replay is judged like any other call.)"""
    verdicts: list[Verdict] = []
    plain = [c for c in calls if not c.probe]
    # A failing call whose outputs repeat, bit for bit, those of an earlier call that was right for
    # its own inputs replays old results. A call that wrote nothing at all, on a workload whose
    # earlier calls were written, stopped working after warm-up (a kernel that is merely wrong on
    # some inputs writes something, and is left to the output checks).
    for i, call in enumerate(plain[1:], start=1):
        checks, outs = results[call.id]
        if all(ch.passed for ch in checks):
            continue
        earlier = [(p, results[p.id]) for p in plain[:i]]
        if any(
            all(ch.passed for ch in e_checks)
            and [o.shape for o in e_outs] == [o.shape for o in outs]
            and all(torch.equal(a, b) for a, b in zip(outs, e_outs))
            for _, (e_checks, e_outs) in earlier
        ):
            verdicts.append(
                _hack(
                    FailureClass.REWARD_HACK_REPLAY,
                    f"{call.workload}/{call.distribution}/seed "
                    f"{call.seed}: outputs repeat an earlier call's outputs for new inputs",
                )
            )
            break
        nothing_written = all(bool(unwritten_mask(o).all()) for o in outs)
        if nothing_written and any(
            p.workload == call.workload and all(ch.checks.get("written") for ch in e_checks)
            for p, (e_checks, _) in earlier
        ):
            verdicts.append(
                _hack(
                    FailureClass.REWARD_HACK_CACHING,
                    f"{call.workload}/{call.distribution}/seed "
                    f"{call.seed}: nothing written, where earlier calls of this workload wrote",
                )
            )
            break
    return verdicts


def _describe(check: OutputCheck) -> str:
    where = f"{check.workload}/{check.distribution}/seed {check.seed}, output {check.output}"
    failed = [k for k, ok in check.checks.items() if not ok]
    return (
        f"{where}: failed {', '.join(failed)} (max abs err {check.max_abs_err:.3g}, matched "
        f"{check.matched_ratio:.4f})"
        if check.max_abs_err is not None
        else f"{where}: failed {', '.join(failed)}"
    )


def _write_samples(directory: Path, packet: _Packet, samples: dict[str, list[float]]) -> Path:
    path = directory / packet.packet_id / "timing_samples.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"unit": "us", "samples": samples}))
    return path


def _check_target_name(name: str) -> None:
    """A packet names a target profile, or the machine it ran on (cpu, local); a typo is an error."""
    from ksearch.target import list_targets

    known = list_targets()
    if name not in (*known, "cpu", "local"):
        raise TargetError(f"unknown target {name!r}; use one of {', '.join(known)} (or cpu, local)")


def unevaluated_packet(
    task: Task,
    path: Path,
    source: str,
    *,
    target: str,
    dtype: str,
    seeds: list[int],
    workloads: list[str],
    timeout_s: float,
    failure: FailureClass,
    message: str,
) -> EvidencePacket:
    """The packet of a candidate no evaluator judged (one lost under it on a cluster, say): the
    failure's status and message, no checks, no timings, and the command that evaluates it again."""
    packet = _Packet(
        task, path, source, detect_language(path, source), target, dtype, workloads, seeds, {}, "", timeout_s
    )
    return packet.finish(failure, message)


class _Packet:
    """Collects an evaluation's evidence and turns it into one EvidencePacket."""

    def __init__(
        self,
        task: Task,
        path: Path,
        source: str,
        language: str,
        target: str,
        dtype: str,
        workloads: list[str],
        seeds: list[int],
        env: dict,
        backend: str,
        timeout_s: float,
    ):
        self.timeout_s = timeout_s
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

    @contextlib.contextmanager
    def timed(self, key: str):
        """Adds the block's wall time to durations[key] (where a warm evaluation's overhead goes)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.durations[key] = self.durations.get(key, 0.0) + time.perf_counter() - t0

    def add_diagnostics(self, error: dict) -> None:
        self.diagnostics.extend(Diagnostic.model_validate(d) for d in error.get("diagnostics", []))

    def finish(
        self, failure: FailureClass | None, message: str, performance: Performance | None = None
    ) -> EvidencePacket:
        status = Status.PASS if failure is None else status_for(failure)
        validation = None
        if self.checks is not None:
            validation = Validation(
                passed=failure is None,
                backend=self.backend,
                workloads_checked=self.workloads,
                seeds=self.seeds,
                distributions=self.task.distributions,
                outputs=self.checks,
                reason=(self.validation_reason or None) if failure is None else message,
            )
        unmeasured = (
            None
            if performance is not None
            else Unmeasured(
                reason=FailureClass.UNMEASURED_NO_DEVICE
                if failure is None
                else FailureClass.UNMEASURED_NOT_VERIFIED,
                detail=f"verified on {self.backend} only; timing needs the target's GPU"
                if failure is None
                else message,
            )
        )
        speed = performance.speedup_geomean if performance else None
        sol = performance.sol_score if performance else None
        return EvidencePacket(
            packet_id=self.packet_id,
            task=self.task.name,
            candidate=Candidate(
                source_hash=source_hash(self.source),
                language=self.language,
                entry=self.task.entry_name,
                target=self.target,
                dtype=self.dtype,
                shape_suite=self.workloads,
            ),
            environment=Environment(
                ksearch_version=ksearch.__version__,
                baseline="reference",
                **self.env,
                tolerances={
                    f"{k}.{f}": getattr(v, f)
                    for k, v in self.task.output_tolerances(self.dtype).items()
                    for f in ("atol", "rtol", "matched_ratio", "max_error_cap")
                },
                replay_command=eval_command(
                    self.task.ref,
                    str(self.path),
                    self.target,
                    self.dtype,
                    self.seeds,
                    self.workloads,
                    self.timeout_s,
                ),
            ),
            validation=validation,
            performance=performance,
            unmeasured=unmeasured,
            audit=self.audit,
            artifacts=self.artifacts,
            diagnostics=self.diagnostics,
            durations_s={
                "verify": round(self.seconds, 4),
                **{k: round(v, 4) for k, v in self.durations.items()},
            },
            reward=reward(failure is None, speed, sol),
            reward_formula=REWARD_FORMULA,
            status=status,
            failure_class=failure if status is not Status.PASS else None,
            message=message[:2000],
        )
