"""One batch of candidates through compile, audit, verify and (on a GPU) benchmark.

The compiles of a batch (every candidate x every target, in the compile service's process pool)
run in a background thread while the evaluator verifies the same candidates in its sandbox
worker, so proposing, compiling and evaluating overlap. Each candidate ends with one
EvidencePacket per target: verification is shared (it ran once, on this machine), compile and
audit are the target's own, and performance belongs only to the target that was timed.
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass
from pathlib import Path

from ksearch.audit import audit_compile, max_intensity
from ksearch.compile import CompileRequest, compile_many
from ksearch.compile.result import CompileResult
from ksearch.evidence import EvidencePacket, FailureClass, Status, Unmeasured, source_hash, status_for
from ksearch.harness.evaluate import Evaluator
from ksearch.log import put_blob
from ksearch.log.rows import PacketId
from ksearch.propose.base import Implementation
from ksearch.search.estimate import static_score
from ksearch.search.reuse import Reuse, measured_with
from ksearch.target.profile import TargetProfile
from ksearch.task import Task

# What a batch holds per candidate: its id, the implementation, and its provenance (action, parent).
CandidateJob = tuple[str, Implementation, dict]


@dataclass
class CandidateResult:
    candidate_id: str
    blob: str  # the source, content-addressed in the run's blobs/: what was compiled and evaluated
    attrs: dict
    packets: dict[str, EvidencePacket]  # target -> packet
    primary: str
    score: float | None  # higher is better; None unless the primary target's packet passed
    score_basis: str | None  # "reward:<target>" (measured) or "static-estimate:<target>" (modelled)

    @property
    def packet(self) -> EvidencePacket:
        return self.packets[self.primary]

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
        evaluator: Evaluator,
        *,
        seeds: list[int],
        workloads: list[str] | None,
        cache_dir: Path | None = None,
        every_target: bool = True,
        compile_timeout_s: float = 60,
        reuse: Reuse | None = None,
    ):
        """`profiles[0]` is the primary target (the one scored, and timed where there is a GPU); with `every_target` False, candidates compile for
        the primary only and `other_targets` audits a chosen one (the best) for the rest."""
        self.run_dir, self.task, self.dtype, self.primary = run_dir, task, dtype, profiles[0].name
        self.all_profiles = profiles
        self.profiles = profiles if every_target else profiles[:1]
        self.evaluator, self.seeds, self.workloads, self.cache_dir = evaluator, seeds, workloads, cache_dir
        self.compile_timeout_s, self.reuse = compile_timeout_s, reuse
        self.here = measured_with(evaluator.environment) if reuse else {}
        # the same for every candidate and target, over the workloads this run evaluates
        self.intensity = max_intensity(task.only(workloads) if workloads else task, dtype)
        self._compiler = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="ksearch-compile"
        )

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
        evaluated = []
        for (_, impl, _), p in zip(batch, paths):
            packet = self.reuse.get(source_hash(impl.source), self.here) if self.reuse else None
            if packet is None:  # not measured before on this machine with these settings
                packet = self.evaluator.evaluate(
                    p,
                    self.task,
                    target=self.primary,
                    dtype=self.dtype,
                    seeds=tuple(self.seeds),
                    workloads=self.workloads,
                )
            evaluated.append(packet)
        compiled = compiling.result()
        n = len(self.profiles)
        return [
            self._merge(cid, impl, prov, blob, packet, compiled[i * n : (i + 1) * n])
            for i, ((cid, impl, prov), blob, packet) in enumerate(zip(batch, blobs, evaluated))
        ]

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
