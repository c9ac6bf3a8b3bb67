"""One batch of candidates through compile, audit, verify and (on a GPU) benchmark.

The compiles of a batch (every candidate x every target, in the compile service's process pool)
run in a background thread while the evaluator verifies the same candidates in its sandbox
worker, so proposing, compiling and evaluating overlap. Each candidate ends with one
EvidencePacket per target: verification is shared (it ran once, on this machine), compile and
audit are the target's own, and performance belongs only to the target that was timed.
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass, field
from pathlib import Path

from ksearch.audit import audit_compile
from ksearch.compile import CompileRequest, compile_many
from ksearch.compile.result import CompileResult
from ksearch.evidence import EvidencePacket, FailureClass, Status, Unmeasured, status_for
from ksearch.harness.evaluate import Evaluator
from ksearch.log import put_blob
from ksearch.propose.base import Implementation
from ksearch.search.estimate import static_score
from ksearch.target.profile import TargetProfile
from ksearch.task import Task


@dataclass
class CandidateResult:
    candidate_id: str
    path: Path
    blob: str
    attrs: dict
    packets: dict[str, EvidencePacket]  # target -> packet
    primary: str
    score: float | None  # higher is better; None unless the primary target's packet passed
    score_basis: str | None  # "reward:<target>" (measured) or "static-estimate:<target>" (modelled)
    compile_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def packet(self) -> EvidencePacket:
        return self.packets[self.primary]

    @property
    def passed(self) -> bool:
        return self.packet.status is Status.PASS


class Pipeline:
    def __init__(self, run_dir: Path, task: Task, dtype: str, profiles: list[TargetProfile], primary: str,
                 evaluator: Evaluator, *, seeds: list[int], workloads: list[str] | None, cache_dir: Path | None = None,
                 every_target: bool = True, compile_timeout_s: float = 60):
        """`profiles[0]` must be the primary target; with `every_target` False, candidates compile for
        the primary only and `other_targets` audits a chosen one (the best) for the rest."""
        self.run_dir, self.task, self.dtype, self.primary = run_dir, task, dtype, primary
        self.all_profiles = profiles
        self.profiles = profiles if every_target else profiles[:1]
        self.evaluator, self.seeds, self.workloads, self.cache_dir = evaluator, seeds, workloads, cache_dir
        self.compile_timeout_s = compile_timeout_s
        (run_dir / "candidates").mkdir(exist_ok=True)
        self._compiler = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="ksearch-compile")

    def close(self) -> None:
        self._compiler.shutdown(wait=True, cancel_futures=True)

    def run(self, batch: list[tuple[str, Implementation, dict]]) -> list[CandidateResult]:
        """Evaluate (candidate id, implementation, provenance) triples; results in the same order."""
        paths = []
        for cid, impl, _ in batch:
            path = self.run_dir / "candidates" / f"{cid}.py"
            path.write_text(impl.source)
            paths.append(path)
        requests = [CompileRequest(source_path=str(p), task=str(self.task.root), target=prof.name, dtype=self.dtype)
                    for p in paths for prof in self.profiles]
        compiling = self._compiler.submit(compile_many, requests, cache_dir=self.cache_dir,
                                          timeout_s=self.compile_timeout_s)
        evaluated = [self.evaluator.evaluate(p, self.task, target=self.primary, dtype=self.dtype,
                                             seeds=tuple(self.seeds), workloads=self.workloads) for p in paths]
        compiled = compiling.result()
        n = len(self.profiles)
        return [self._merge(cid, impl, prov, path, packet, compiled[i * n:(i + 1) * n])
                for i, ((cid, impl, prov), path, packet) in enumerate(zip(batch, paths, evaluated))]

    def other_targets(self, packet: EvidencePacket, path: Path, blob: str) -> list[EvidencePacket]:
        """The packets of one evaluated candidate on the targets it was not yet compiled for."""
        rest = [p for p in self.all_profiles if p not in self.profiles]
        requests = [CompileRequest(source_path=str(path), task=str(self.task.root), target=p.name, dtype=self.dtype)
                    for p in rest]
        compiled = (compile_many(requests, cache_dir=self.cache_dir, timeout_s=self.compile_timeout_s)
                    if requests else [])
        prov = {"action_id": packet.candidate.action_id, "parent_id": packet.candidate.parent_id}
        return [self._target_packet(packet, p, c, blob, prov) for p, c in zip(rest, compiled)]

    def _merge(self, cid: str, impl: Implementation, prov: dict, path: Path, evaluated: EvidencePacket,
               compiles: list[CompileResult]) -> CandidateResult:
        blob = put_blob(self.run_dir, impl.source.encode(), ".py")
        packets = {}
        for prof, comp in zip(self.profiles, compiles):
            packets[prof.name] = self._target_packet(evaluated, prof, comp, blob, prov)
        primary_packet = packets[self.primary]
        score = basis = None
        if primary_packet.status is Status.PASS:
            if primary_packet.reward is not None:
                score, basis = primary_packet.reward, f"reward:{self.primary}"
            else:
                prof = next(p for p in self.profiles if p.name == self.primary)
                comp = compiles[self.profiles.index(prof)]
                score = static_score(self.task, self.dtype, comp, prof)
                basis = f"static-estimate:{self.primary}" if score is not None else None
        return CandidateResult(cid, path, blob, impl.attrs, packets, self.primary, score, basis,
                               compile_s=sum(c.seconds for c in compiles))

    def _target_packet(self, evaluated: EvidencePacket, prof: TargetProfile, comp: CompileResult, blob: str,
                       prov: dict) -> EvidencePacket:
        """The evaluated packet as it stands for one target: its own compile and audit; timing kept
        only where this target is the device that was timed."""
        audit = audit_compile(comp, prof, self.task.spec.op_family, self.dtype)
        audit.anti_hack = list(evaluated.audit.anti_hack)
        data = evaluated.model_dump()
        data["packet_id"] = f"{evaluated.packet_id.rsplit('@', 1)[0]}@{prof.name}"
        data["candidate"].update(target=prof.name, source_blob=blob, action_id=prov.get("action_id"),
                                 parent_id=prov.get("parent_id"),
                                 compiler_invocation=f"ksearch compile CANDIDATE --task {self.task.name} "
                                                     f"--target {prof.name} --dtype {self.dtype}")
        data["audit"] = audit.model_dump()
        data["durations_s"] = {**evaluated.durations_s, "compile": round(comp.seconds, 4)}
        data["diagnostics"] = [d.model_dump() for d in (*evaluated.diagnostics, *comp.diagnostics)]
        failure = None
        if not comp.ok:
            failure, message = comp.failure_class or FailureClass.COMPILE_ERROR, comp.message
        else:
            bad = next((v for v in audit.verdicts if not v.ok and v.severity == "fail" and v.failure_class), None)
            if bad is not None:
                failure, message = bad.failure_class, f"{prof.name}: {bad.check}: {bad.detail}"
        if evaluated.status is not Status.PASS or failure is None:
            if evaluated.status is Status.PASS and evaluated.performance is not None and prof.name != self.primary:
                data.update(performance=None, reward=None, unmeasured=Unmeasured(
                    reason=FailureClass.UNMEASURED_NO_DEVICE,
                    detail=f"timed on {self.primary} only; no {prof.name} here").model_dump())
            return EvidencePacket.model_validate(data)
        data.update(status=status_for(failure), failure_class=failure, message=message[:2000], performance=None,
                    reward=0.0, unmeasured=Unmeasured(reason=FailureClass.UNMEASURED_NOT_VERIFIED,
                                                      detail=message[:500]).model_dump())
        return EvidencePacket.model_validate(data)
