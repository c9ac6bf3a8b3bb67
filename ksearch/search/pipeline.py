"""One batch of candidates through compile, audit, verify and (on a GPU) benchmark.

The compiles of a batch (every candidate x every target, in the compile service's process pool)
run in a background thread while the evaluator verifies the same candidates in its sandbox
worker, so proposing, compiling and evaluating overlap. The evaluator is this process's own
wrapped as a pool of one (`LocalPool`), or a pool of them elsewhere (ksearch.cluster's Ray actors,
one per GPU), which evaluates the batch's candidates side by side; either returns them in order.
Each candidate ends with one EvidencePacket per target: verification is shared (it ran once), compile
and audit are the target's own, and performance belongs only to the target that was timed.
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ksearch.audit import audit_compile, max_intensity
from ksearch.compile import CompileRequest, compile_many
from ksearch.compile.result import CompileResult
from ksearch.errors import KsearchError
from ksearch.evidence import EvidencePacket, FailureClass, Status, Unmeasured, source_hash, status_for
from ksearch.harness.evaluate import Evaluator
from ksearch.log import put_blob
from ksearch.log.rows import InfraEvent, PacketId, RowPayload, Step
from ksearch.propose.base import Implementation
from ksearch.propose.prompt import evidence_text
from ksearch.search.config import ClusterSettings, EvalSettings
from ksearch.search.estimate import static_score
from ksearch.search.reuse import Reuse, measured_with
from ksearch.target.profile import TargetProfile
from ksearch.task import Task

# What a batch holds per candidate: its id, the implementation, and its provenance (action, parent).
CandidateJob = tuple[str, Implementation, dict]


class EvaluatorsLost(KsearchError):
    """No evaluator is left in a pool: the run stops (cleanly, resumable). `events`: the batch's
    infrastructure events until then (losses, replacements that failed), which the run still logs."""

    def __init__(self, message: str, events: list[InfraEvent] | None = None):
        super().__init__(message)
        self.events = list(events or [])


@dataclass(frozen=True)
class EvalJob:
    """One candidate for a pool: `path` is where the driver keeps its source (the run's blob), the
    name its packet gives it; `source` the bytes evaluated (a pool's evaluator may be on another node)."""

    candidate_id: str
    path: Path
    source: bytes


@dataclass(frozen=True)
class EvalSpec:
    """How every candidate of a run is evaluated (Evaluator.evaluate's keyword arguments)."""

    target: str
    dtype: str
    seeds: tuple[int, ...]
    workloads: list[str] | None

    def evaluate(self, evaluator: Evaluator, path: Path, task: Task) -> EvidencePacket:
        """The packet of the candidate at `path`, evaluated this way."""
        return evaluator.evaluate(
            path, task, target=self.target, dtype=self.dtype, seeds=self.seeds, workloads=self.workloads
        )


@dataclass
class Evaluated:
    """A job's packet (the harness's verdict, or `skipped:evaluator_lost`) and the infrastructure
    events its evaluation met, logged just before its attempt rows."""

    packet: EvidencePacket
    events: list[InfraEvent] = field(default_factory=list)


class EvaluatorPool(Protocol):
    """The evaluators a run's candidates go to, `parallel` of them at once: this process's own
    (`LocalPool`), or ksearch.cluster's Ray actors, one per GPU, opened by a `PoolOpener` before the
    run directory exists."""

    device: str  # cpu or cuda, as the pool's evaluators run
    profile: str | None  # the target profile of its GPUs; None on CPU slots
    start_events: list[InfraEvent]  # where its evaluators run, logged when the run starts

    @property
    def parallel(self) -> int: ...

    @property
    def environment(self) -> dict[str, Any]: ...

    def prepare(self, spec: EvalSpec) -> None:
        """Called once before the run's first batch, while this process runs nothing else."""
        ...

    def evaluate_many(self, jobs: list[EvalJob], spec: EvalSpec) -> list[Evaluated]: ...

    def close(self) -> None: ...


class PoolOpener(Protocol):
    """What `ksearch run` passes to open a run's pool (ksearch.cluster.open_pool): the cluster block,
    the config's device (auto, cpu, cuda: the pool resolves it), the evaluators' settings, the task."""

    def __call__(
        self, settings: ClusterSettings, *, device: str, timeout_s: float, bench_budget_s: float, task: Task
    ) -> EvaluatorPool: ...


class LocalPool:
    """This process's own Evaluator as a pool of one: candidates are evaluated one after another, on
    this machine's device. The caller owns the evaluator (and closes it)."""

    def __init__(self, evaluator: Evaluator, task: Task):
        self.evaluator, self.task, self.device = evaluator, task, evaluator.device
        self.profile: str | None = None  # the run resolves its primary target itself
        self.start_events: list[InfraEvent] = []

    @property
    def parallel(self) -> int:
        return 1

    @property
    def environment(self) -> dict[str, Any]:
        return self.evaluator.environment

    def prepare(self, spec: EvalSpec) -> None:
        """The baselines are timed here, in this process, before the run's compile thread starts."""
        self.evaluator.prepare_baselines(self.task, spec.dtype, spec.workloads)

    def evaluate_many(self, jobs: list[EvalJob], spec: EvalSpec) -> list[Evaluated]:
        return [Evaluated(spec.evaluate(self.evaluator, job.path, self.task)) for job in jobs]

    def close(self) -> None:
        """Nothing: the evaluator is its caller's."""


@dataclass
class CandidateResult:
    candidate_id: str
    blob: str  # the source, content-addressed in the run's blobs/: what was compiled and evaluated
    attrs: dict
    packets: dict[str, EvidencePacket]  # target -> packet
    primary: str
    score: float | None  # higher is better; None unless the primary target's packet passed
    score_basis: str | None  # "reward:<target>" (measured) or "static-estimate:<target>" (modelled)
    # what its evaluation met on a pool (an evaluator lost under it): logged before its packets
    events: list[InfraEvent] = field(default_factory=list)

    @property
    def packet(self) -> EvidencePacket:
        return self.packets[self.primary]

    def step(
        self, *, visit: int | None = None, island: int | None = None, action_id: str | None = None
    ) -> Step:
        """The `step` row that maps this candidate to its packets (the loop's, or an agent's outside any
        visit)."""
        packet = self.packet
        return Step(
            candidate=self.candidate_id,
            visit=visit,
            island=island,
            action_id=action_id,
            template=self.attrs.get("template"),
            knobs=self.attrs.get("knobs", {}),
            passed=self.passed,
            score=self.score,
            score_basis=self.score_basis,
            failure_class=packet.failure_class.value if packet.failure_class else None,
            packet_id=PacketId.parse(packet.packet_id),
            blob=self.blob,
            targets={
                t: (p.failure_class.value if p.failure_class else "pass") for t, p in self.packets.items()
            },
            message=packet.message[:300],
            evidence=evidence_text(packet),
        )

    def rows(self, step: Step) -> list[RowPayload]:
        """What one write appends for the candidate, so that no packet is ever logged without its step:
        the infrastructure events its evaluation met first, its packets, its step."""
        return [*self.events, *self.packets.values(), step]

    @property
    def passed(self) -> bool:
        return self.packet.status is Status.PASS


class Pipeline:
    def __init__(
        self,
        run_dir: Path,
        task: Task,
        dtype: str,
        profiles: list[TargetProfile],
        evaluator: EvaluatorPool,
        settings: EvalSettings,
        *,
        cache_dir: Path | None = None,
        reuse: Reuse | None = None,
    ):
        """`profiles[0]` is the primary target (the one scored, and timed where there is a GPU); `settings`
        the run config's eval block: seeds, workloads, compile timeout, and with `targets: best` candidates
        compile for the primary only and `other_targets` audits a chosen one (the best) for the rest."""
        self.run_dir, self.task, self.dtype, self.primary = run_dir, task, dtype, profiles[0].name
        self.all_profiles = profiles
        self.profiles = profiles if settings.targets == "every" else profiles[:1]
        self.evaluator, self.seeds, self.workloads = evaluator, settings.seeds, settings.workloads
        self.cache_dir, self.compile_timeout_s, self.reuse = cache_dir, settings.compile_timeout_s, reuse
        self.here = measured_with(evaluator.environment) if reuse else {}
        # the same for every candidate and target, over the workloads this run evaluates
        self.intensity = max_intensity(task.only(self.workloads) if self.workloads else task, dtype)
        self._compiler = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="ksearch-compile"
        )
        self.spec = EvalSpec(self.primary, dtype, tuple(self.seeds), self.workloads)
        # the executor starts its thread at the first compile: until then nothing competes with timing
        evaluator.prepare(self.spec)

    @property
    def parallel(self) -> int:
        """Candidates evaluated at once: the pool's evaluator count."""
        return self.evaluator.parallel

    def close(self) -> None:
        self._compiler.shutdown(wait=True, cancel_futures=True)

    def _request(self, path: Path, target: str) -> CompileRequest:
        """Compiled, audited and modelled on the run's workloads only: a run over attention rows must
        not fail the spill audit on vocabulary rows it never launches."""
        workloads = tuple(self.workloads) if self.workloads else None
        return CompileRequest(
            source_path=str(path),
            task=str(self.task.root),
            target=target,
            dtype=self.dtype,
            workloads=workloads,
        )

    def run(self, batch: list[CandidateJob]) -> list[CandidateResult]:
        """Evaluate (candidate id, implementation, provenance) triples; results in the same order."""
        blobs = [put_blob(self.run_dir, impl.source.encode(), ".py") for _, impl, _ in batch]
        paths = [self.run_dir / b for b in blobs]
        requests = [self._request(p, prof.name) for p in paths for prof in self.profiles]
        compiling = self._compiler.submit(
            compile_many, requests, cache_dir=self.cache_dir, timeout_s=self.compile_timeout_s
        )
        # packets measured before on this machine with these settings are not measured again
        reused = [
            self.reuse.get(source_hash(impl.source), self.here) if self.reuse else None
            for _, impl, _ in batch
        ]
        evaluated, events = self._evaluate(batch, paths, reused)
        compiled = compiling.result()
        n = len(self.profiles)
        results = [
            self._merge(cid, impl, prov, blob, packet, compiled[i * n : (i + 1) * n])
            for i, ((cid, impl, prov), blob, packet) in enumerate(zip(batch, blobs, evaluated))
        ]
        for result, met in zip(results, events):
            result.events = met
        return results

    def _evaluate(
        self,
        batch: list[CandidateJob],
        paths: list[Path],
        reused: list[EvidencePacket | None],
    ) -> tuple[list[EvidencePacket], list[list[InfraEvent]]]:
        """The batch's packets and each one's infrastructure events, in the batch's order: the reused
        ones as they are, the rest evaluated on the pool (side by side where it has several evaluators)."""
        todo = [i for i, packet in enumerate(reused) if packet is None]
        jobs = [EvalJob(batch[i][0], paths[i], batch[i][1].source.encode()) for i in todo]
        done = dict(zip(todo, self.evaluator.evaluate_many(jobs, self.spec)))
        packets = [p if p is not None else done[i].packet for i, p in enumerate(reused)]
        return packets, [done[i].events if i in done else [] for i in range(len(batch))]

    def other_targets(
        self, packet: EvidencePacket, blob: str, done: frozenset[str] = frozenset()
    ) -> list[EvidencePacket]:
        """The packets of one evaluated candidate on the targets it was not yet compiled for (nor
        in `done`: targets whose packets the log already holds, e.g. from an earlier part of a run)."""
        rest = [p for p in self.all_profiles if p not in self.profiles and p.name not in done]
        requests = [self._request(self.run_dir / blob, p.name) for p in rest]
        compiled = (
            compile_many(requests, cache_dir=self.cache_dir, timeout_s=self.compile_timeout_s)
            if requests
            else []
        )
        prov = {"action_id": packet.candidate.action_id, "parent_id": packet.candidate.parent_id}
        return [self._target_packet(packet, p, c, blob, prov) for p, c in zip(rest, compiled)]

    def _merge(
        self,
        cid: str,
        impl: Implementation,
        prov: dict,
        blob: str,
        evaluated: EvidencePacket,
        compiles: list[CompileResult],
    ) -> CandidateResult:
        packets = {
            prof.name: self._target_packet(evaluated, prof, comp, blob, prov)
            for prof, comp in zip(self.profiles, compiles)
        }
        primary = packets[self.primary]  # profiles[0]
        score = basis = None
        if primary.status is Status.PASS and primary.reward is not None:
            score, basis = primary.reward, f"reward:{self.primary}"
        elif primary.status is Status.PASS:
            score = static_score(self.task, self.dtype, compiles[0], self.profiles[0])
            basis = f"static-estimate:{self.primary}" if score is not None else None
        return CandidateResult(cid, blob, impl.attrs, packets, self.primary, score, basis)

    def _target_packet(
        self, evaluated: EvidencePacket, prof: TargetProfile, comp: CompileResult, blob: str, prov: dict
    ) -> EvidencePacket:
        """The evaluated packet as it stands for one target: its own compile and audit; timing kept
        only where this target is the device that was timed."""
        audit = audit_compile(comp, prof, self.task.spec.op_family, self.dtype, self.intensity)
        audit.anti_hack = list(evaluated.audit.anti_hack)
        data = evaluated.model_dump()
        data["packet_id"] = str(PacketId.parse(evaluated.packet_id).on(prof.name))
        data["candidate"].update(
            target=prof.name,
            source_blob=blob,
            action_id=prov.get("action_id"),
            parent_id=prov.get("parent_id"),
            compiler_invocation=f"ksearch compile {self.run_dir / blob} --task {self.task.name} "
            f"--target {prof.name} --dtype {self.dtype}",
        )
        data["audit"] = audit.model_dump()
        data["durations_s"] = {**evaluated.durations_s, "compile": round(comp.seconds, 4)}
        data["diagnostics"] = [d.model_dump() for d in (*evaluated.diagnostics, *comp.diagnostics)]
        failure, message = _target_failure(comp, audit, prof.name)
        if evaluated.status is Status.PASS and failure is not None:  # right outputs, but not on this target
            data.update(
                status=status_for(failure),
                failure_class=failure,
                message=message[:2000],
                performance=None,
                reward=0.0,
                unmeasured=Unmeasured(
                    reason=FailureClass.UNMEASURED_NOT_VERIFIED, detail=message[:500]
                ).model_dump(),
            )
        elif evaluated.performance is not None and prof.name != self.primary:
            data.update(
                performance=None,
                reward=None,
                unmeasured=Unmeasured(
                    reason=FailureClass.UNMEASURED_NO_DEVICE,
                    detail=f"timed on {self.primary} only; no {prof.name} here",
                ).model_dump(),
            )
        return EvidencePacket.model_validate(data)


def _target_failure(comp: CompileResult, audit, target: str) -> tuple[FailureClass | None, str]:
    """Why a candidate fails on one target regardless of its outputs: it did not build, or the
    emitted code failed a rejecting audit check."""
    if not comp.ok:
        return comp.failure_class or FailureClass.COMPILE_ERROR, comp.message
    bad = next((v for v in audit.verdicts if not v.ok and v.severity == "fail" and v.failure_class), None)
    if bad is not None:
        return bad.failure_class, f"{target}: {bad.check}: {bad.detail}"
    return None, ""
