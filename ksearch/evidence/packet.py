"""EvidencePacket: everything one evaluation established about one candidate, pass or fail.

A failed candidate is evidence too: it gets a packet with its validation result, a failure class
and a null performance block with the reason. The packet is versioned (`schema_version`) and its
JSON Schema lives in docs/evidence.schema.json, kept in sync by a test.
"""

from __future__ import annotations

import hashlib
import shlex
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ksearch.evidence.catalog import FailureClass, Status, status_for
from ksearch.evidence.language import Language

SCHEMA_VERSION: Literal[1] = 1
Severity = Literal["error", "warning", "note"]  # of a Diagnostic


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Diagnostic(_Model):
    """A located compiler or runtime message a proposer can act on."""

    file: str | None = None
    line: int | None = None
    column: int | None = None
    severity: Severity = "error"
    message: str


class Candidate(_Model):
    source_hash: str = Field(description="sha256 of the candidate source (hex)")
    language: Language
    entry: str = Field(default="run", description="entry function name; destination-passing")
    target: str = Field(description="target profile name, e.g. b200, mi355x, h100")
    dtype: str = Field(description="dtype variant of the task, e.g. float16")
    shape_suite: list[str] = Field(description="names of the workloads this evaluation covers")
    compiler_invocation: str | None = Field(default=None, description="the compile call or command line")
    source_blob: str | None = Field(
        default=None, description="content-addressed path of the source in the run's blobs/"
    )
    parent_id: str | None = None
    action_id: str | None = None


class Environment(_Model):
    host: str | None = None
    node: str | None = Field(
        default=None, description="the Ray node id of the evaluator (ksearch run --cluster ray); None: local"
    )
    gpu_name: str | None = Field(default=None, description="None on a machine without a GPU")
    gpu_index: int | None = Field(
        default=None, description="the GPU's index on its host (nvidia-smi's), where recorded"
    )
    gpu_uuid: str | None = Field(default=None, description="the GPU's UUID, where recorded")
    driver: str | None = None
    clocks_mhz: dict[str, float] = Field(default_factory=dict)
    toolchain: dict[str, str | None] = Field(default_factory=dict, description="tool -> version")
    ksearch_version: str
    baseline: str = Field(default="reference", description="what speedups are measured against")
    tolerances: dict[str, float] = Field(default_factory=dict)
    replay_command: str = Field(description="a shell command that re-runs exactly this evaluation")


class OutputCheck(_Model):
    """One output of one call: workload x distribution x seed."""

    workload: str
    distribution: str
    seed: int
    output: str
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    matched_ratio: float | None = None
    nonfinite_candidate: int = 0
    nonfinite_reference: int = 0
    checks: dict[str, bool] = Field(default_factory=dict, description="check name -> passed")
    passed: bool


class Validation(_Model):
    passed: bool
    backend: str = Field(
        description="where outputs were computed, e.g. triton-interpreter or cuda:NVIDIA H100"
    )
    workloads_checked: list[str]
    seeds: list[int] = Field(default_factory=list)
    distributions: list[str] = Field(default_factory=list)
    outputs: list[OutputCheck] = Field(default_factory=list)
    reason: str | None = Field(default=None, description="why validation did not run or what failed first")


class WorkloadTiming(_Model):
    workload: str
    median_us: float
    iqr_us: float
    cv: float
    samples: int
    baseline: str | None = Field(default=None, description="the baseline speedup is measured against")
    baseline_median_us: float | None = None
    baselines_us: dict[str, float | None] = Field(
        default_factory=dict,
        description="median of every baseline timed (torch_eager, torch_compile, vendor); "
        "None where unavailable",
    )
    speedup: float | None = None
    ci_us: tuple[float, float] | None = Field(default=None, description="95% CI of the median")
    flops: float | None = None
    bytes: float | None = None
    sol_us: float | None = Field(default=None, description="speed-of-light time on the target's roofline")
    sol_fraction: float | None = Field(default=None, description="sol_us / median_us, in (0, 1]")
    ncu_median_us: float | None = Field(
        default=None,
        description="Nsight Compute gpu__time_duration per call (median), when requested with --ncu",
    )


class Performance(_Model):
    device: str
    workloads: list[WorkloadTiming]
    speedup_geomean: float | None = None
    sol_score: float | None = Field(default=None, description="geometric mean of per-workload SOL fractions")


class Unmeasured(_Model):
    reason: FailureClass
    detail: str = ""

    @model_validator(mode="after")
    def _is_a_measurement_reason(self) -> Unmeasured:
        if not self.reason.is_unmeasured:
            raise ValueError(f"unmeasured.reason must be an unmeasured:* class, got {self.reason.value}")
        return self


class Artifacts(_Model):
    compile_log: str | None = None
    files: dict[str, str] = Field(
        default_factory=dict, description="kind (ptx, sass, amdgcn, ttir, ...) -> path"
    )
    profiler_traces: list[str] = Field(default_factory=list)


class Verdict(_Model):
    check: str
    ok: bool
    detail: str = ""
    severity: Literal["fail", "warn", "info"] = Field(
        default="fail", description="what a failed check means: reject the attempt, or only report it"
    )
    failure_class: FailureClass | None = Field(
        default=None, description="the catalog class of a failed check"
    )


class Audit(_Model):
    target: str | None = None
    families_found: list[str] = Field(default_factory=list)
    families_expected: list[str] = Field(default_factory=list)
    registers: int | None = None
    spills: int | None = None
    smem_bytes: int | None = None
    occupancy: float | None = None
    verdicts: list[Verdict] = Field(default_factory=list, description="emitted-code checks")
    anti_hack: list[Verdict] = Field(default_factory=list, description="reward-hack checks")


class EvidencePacket(_Model):
    schema_version: Literal[1] = SCHEMA_VERSION
    packet_id: str
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="microseconds"))
    task: str
    candidate: Candidate
    environment: Environment
    validation: Validation | None = None
    performance: Performance | None = None
    unmeasured: Unmeasured | None = Field(default=None, description="why performance is null")
    artifacts: Artifacts = Field(default_factory=Artifacts)
    audit: Audit = Field(default_factory=Audit)
    diagnostics: list[Diagnostic] = Field(default_factory=list)
    durations_s: dict[str, float] = Field(
        default_factory=dict, description="stage -> seconds: compile, verify, benchmark"
    )
    reward: float | None = None
    reward_formula: str | None = Field(default=None, description="how reward was computed from this packet")
    reused_from: str | None = Field(
        default=None,
        description="the run whose evaluation of the same source, settings and GPU this packet reuses "
        "(a run config's eval.reuse); None: evaluated for this attempt",
    )
    status: Status
    failure_class: FailureClass | None = None
    message: str = Field(default="", description="one-line summary; the error text for failures")

    @model_validator(mode="after")
    def _consistent(self) -> EvidencePacket:
        if (self.performance is None) == (self.unmeasured is None):
            raise ValueError("exactly one of performance and unmeasured must be set")
        if self.status is Status.PASS:
            if self.failure_class is not None:
                raise ValueError("a passing packet has no failure_class")
            if self.validation is None or not self.validation.passed:
                raise ValueError("a passing packet needs a passed validation")
        else:
            if self.failure_class is None:
                raise ValueError(f"a packet with status {self.status.value} needs a failure_class")
            if status_for(self.failure_class) is not self.status:
                raise ValueError(
                    f"failure_class {self.failure_class.value} implies status "
                    f"{status_for(self.failure_class).value}, not {self.status.value}"
                )
            if self.performance is not None:
                raise ValueError("only a passing packet carries performance")
        return self


def source_hash(source: str | bytes) -> str:
    data = source.encode() if isinstance(source, str) else source
    return hashlib.sha256(data).hexdigest()


def eval_command(
    task: str,
    candidate_path: str,
    target: str,
    dtype: str,
    seeds: list[int],
    workloads: list[str],
    timeout_s: float | None = None,
) -> str:
    """The `ksearch eval` command line (the harness's CLI) that re-runs one evaluation exactly.
    `task` is a built-in task's name or the path of the task's directory."""
    parts = ["ksearch", "eval", candidate_path, "--task", task, "--target", target, "--dtype", dtype]
    parts += ["--seeds", ",".join(str(s) for s in seeds)]
    parts += ["--workloads", ",".join(workloads)]
    if timeout_s is not None:
        parts += ["--timeout", f"{timeout_s:g}"]
    return shlex.join(parts)
