"""The typed rows of history.jsonl: one pydantic model per row kind, a discriminated union on `kind`.

A row on disk is the envelope {"seq", "ts", "run", "kind", "prev", "payload"} (see history.py);
`payload` is the model of its kind:

    attempt          EvidencePacket (ksearch.evidence), one per candidate and target
    step             Step: the search loop's record of one evaluated candidate
    wm_edit          WmEdit: world-model edit ops (validated as EditOps by ksearch.worldmodel)
    proposer_call    ProposerCallRecord: what a proposer call decided and cost
    proposer_failure ProposerFailure: an unusable reply or an invalid edit, with its raw text
    run_start        RunStart, run_resume RunResume, run_stop RunStop
    final_audit      FinalAudit: the best kernel's packets for the targets the search skipped
    infra_event      InfraEvent: an evaluator started, lost (actor or node died) or given up on
    seal             Seal: the torn line a killed writer left, sealed off by the next one

Writers append payload models (History.append); readers get `Row` models (history.read_rows). What the
store cannot type without importing the layers above it stays a plain dict here and is validated
there: a run's config (ksearch.search.config.RunConfig), the environment snapshot, edit ops.
Fields that old logs lack have defaults, so every log written since the first release still reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, Field, PlainSerializer, TypeAdapter

from ksearch.evidence import EvidencePacket


@dataclass(frozen=True, order=True)
class PacketId:
    """An attempt's id, `<evaluation>@<target>`: the packets of one evaluation (one verification,
    one timing) share the evaluation part, one per target. An evaluation id alone has no target."""

    evaluation: str
    target: str | None = None

    @classmethod
    def parse(cls, text: str) -> PacketId:
        evaluation, sep, target = text.rpartition("@")
        return cls(evaluation, target) if sep else cls(text)

    def on(self, target: str) -> PacketId:
        """The id of the same evaluation's packet for `target`."""
        return PacketId(self.evaluation, target)

    def __str__(self) -> str:
        return self.evaluation if self.target is None else f"{self.evaluation}@{self.target}"


def _packet_id(value: Any) -> Any:
    return PacketId.parse(value) if isinstance(value, str) else value


# A PacketId in a model: read from its text, written as its text.
PacketIdField = Annotated[PacketId, BeforeValidator(_packet_id), PlainSerializer(str, return_type=str)]


class _Payload(BaseModel):
    KIND: ClassVar[str]


class Step(_Payload):
    KIND: ClassVar[str] = "step"
    candidate: str
    visit: int | None = None
    island: int | None = None
    action_id: str | None = None
    template: str | None = None
    knobs: dict[str, Any] = Field(default_factory=dict)
    passed: bool
    score: float | None = None
    score_basis: str | None = None
    failure_class: str | None = None
    packet_id: PacketIdField | None = None
    blob: str | None = None
    targets: dict[str, str] = Field(default_factory=dict)  # target -> "pass" or its failure class
    message: str = ""
    evidence: str = ""  # the packet as prompt text


class WmEdit(_Payload):
    KIND: ClassVar[str] = "wm_edit"
    root: dict[str, Any] | None = None  # only in the row that creates the tree
    ops: list[dict[str, Any]] = Field(default_factory=list)
    reason: str = ""


class ProposerCallRecord(_Payload):
    KIND: ClassVar[str] = "proposer_call"
    kind: str  # propose_actions | implement | reflect
    summary: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    usd: float | None = 0.0  # None: unpriced
    latency_s: float = 0.0
    model: str = ""
    finish: str | None = None
    prompt_blob: str | None = None
    response_blob: str | None = None
    failure: str | None = None


class ProposerFailure(_Payload):
    KIND: ClassVar[str] = "proposer_failure"
    call: str
    error: str
    ops: list[dict[str, Any]] | None = None
    raw: str | None = None
    prompt_blob: str | None = None
    response_blob: str | None = None


class RunStart(_Payload):
    KIND: ClassVar[str] = "run_start"
    config: dict[str, Any]  # a RunConfig (ksearch.search.config)
    task: str
    dtype: str
    targets: list[str]
    primary: str
    device: str
    ksearch_version: str = ""
    environment: dict[str, Any] = Field(default_factory=dict)


class RunResume(_Payload):
    KIND: ClassVar[str] = "run_resume"
    config: dict[str, Any]
    device: str
    environment: dict[str, Any] = Field(default_factory=dict)


class BestRecord(BaseModel):
    score: float
    candidate: str
    packet_id: PacketIdField
    blob: str
    basis: str
    attrs: dict[str, Any] = Field(default_factory=dict)


class RunStop(_Payload):
    KIND: ClassVar[str] = "run_stop"
    reason: str
    evaluations: int
    passed: int
    failures: dict[str, int] = Field(default_factory=dict)
    elapsed_s: float = 0.0
    best: BestRecord | None = None


class FinalAudit(_Payload):
    KIND: ClassVar[str] = "final_audit"
    candidate: str
    targets: dict[str, str]  # target -> status of the best kernel's packet there


class InfraEvent(_Payload):
    """What happened to the evaluation infrastructure (`ksearch run --cluster ray`): the pool's
    evaluators at start, one lost under a candidate (re-evaluated elsewhere), its replacement, a
    candidate given up after its retries. Never a verdict: that is the candidate's attempt row."""

    KIND: ClassVar[str] = "infra_event"
    event: Literal[
        "pool_start", "evaluator_lost", "evaluator_started", "evaluator_dropped", "retries_exhausted"
    ]
    at: str = ""  # when it happened (UTC, ISO 8601); the row's ts is when it was logged
    candidate: str | None = None  # the candidate under evaluation, where there was one
    attempt: int | None = None  # its try (0: the first) that the event ended
    evaluator: int | None = None  # the pool's slot
    node: str | None = None  # Ray node id
    host: str | None = None
    gpu: str | None = None  # name and index of the slot's GPU; None for a CPU slot
    error: str = ""
    evaluators: list[dict[str, Any]] = Field(default_factory=list)  # pool_start: slot, node, host, gpu


class Seal(_Payload):
    KIND: ClassVar[str] = "seal"
    torn_offset: int
    torn_length: int
    torn_sha256: str


# What History.append takes: a payload model, whose kind is its class's.
RowPayload = (
    EvidencePacket
    | Step
    | WmEdit
    | ProposerCallRecord
    | ProposerFailure
    | RunStart
    | RunResume
    | RunStop
    | FinalAudit
    | InfraEvent
    | Seal
)
ATTEMPT = "attempt"


def kind_of(payload: RowPayload) -> str:
    if isinstance(payload, EvidencePacket):
        return ATTEMPT
    if not isinstance(payload, _Payload):
        raise TypeError(
            f"a history row is one of the models of ksearch.log.rows, not {type(payload).__name__}"
        )
    return payload.KIND


class _Row(BaseModel):
    seq: int
    ts: str
    run: str
    prev: str


class AttemptRow(_Row):
    kind: Literal["attempt"]
    payload: EvidencePacket


class AttemptEnvelope(_Row):
    """An attempt row with its packet left as parsed JSON: for readers of a million packets that
    need a few fields each (the index), where validating every EvidencePacket would dominate."""

    kind: Literal["attempt"]
    payload: dict[str, Any]


class StepRow(_Row):
    kind: Literal["step"]
    payload: Step


class WmEditRow(_Row):
    kind: Literal["wm_edit"]
    payload: WmEdit


class ProposerCallRow(_Row):
    kind: Literal["proposer_call"]
    payload: ProposerCallRecord


class ProposerFailureRow(_Row):
    kind: Literal["proposer_failure"]
    payload: ProposerFailure


class RunStartRow(_Row):
    kind: Literal["run_start"]
    payload: RunStart


class RunResumeRow(_Row):
    kind: Literal["run_resume"]
    payload: RunResume


class RunStopRow(_Row):
    kind: Literal["run_stop"]
    payload: RunStop


class FinalAuditRow(_Row):
    kind: Literal["final_audit"]
    payload: FinalAudit


class InfraEventRow(_Row):
    kind: Literal["infra_event"]
    payload: InfraEvent


class SealRow(_Row):
    kind: Literal["seal"]
    payload: Seal


Row = Annotated[
    AttemptRow
    | StepRow
    | WmEditRow
    | ProposerCallRow
    | ProposerFailureRow
    | RunStartRow
    | RunResumeRow
    | RunStopRow
    | FinalAuditRow
    | InfraEventRow
    | SealRow,
    Field(discriminator="kind"),
]
ROW: TypeAdapter[Row] = TypeAdapter(Row)


def _g(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _op_line(op: dict[str, Any]) -> str:
    fields = op.get("fields") or {}
    title = fields.get("title")
    return f"{op.get('op')} {op.get('node')}" + (f" '{title}'" if title else "")


def row_line(row: Row) -> str:
    """One line saying what a row holds, for `log show` and other listings (the full row: --json)."""
    p = row.payload
    match p:
        case EvidencePacket():
            if p.failure_class is not None:
                what = f"{p.failure_class.value}: {p.message}"
            elif p.reward is not None:
                what = f"reward {_g(p.reward)}"
            else:
                what = p.unmeasured.reason.value if p.unmeasured else "unmeasured"
            return f"{p.packet_id}: {p.status.value}, {what}"
        case Step():
            verdict = f"score {_g(p.score)} ({p.score_basis})" if p.passed else f"FAIL {p.failure_class}"
            knobs = " ".join(f"{k}={v}" for k, v in p.knobs.items())
            return f"{p.candidate}: {verdict}; {p.template or 'free-form'} {knobs}".rstrip()
        case WmEdit():
            ops = "; ".join(_op_line(op) for op in p.ops) or ("new tree" if p.root else "no ops")
            return f"{p.reason}: {ops}" if p.reason else ops
        case ProposerCallRecord():
            cost = "unpriced" if p.usd is None else f"${p.usd:.4f}"
            tokens = f"{p.prompt_tokens}+{p.completion_tokens} tokens"
            return f"{p.kind} {p.model or 'offline'} {tokens}, {cost}, {p.latency_s:.1f} s" + (
                f": FAILED {p.failure}" if p.failure else ""
            )
        case ProposerFailure():
            return f"{p.call}: {p.error}"
        case RunStart():
            return f"{p.task} {p.dtype} on {p.primary} ({p.device}), targets {', '.join(p.targets)}"
        case RunResume():
            return f"resumed on {p.device}"
        case RunStop():
            best = f", best {_g(p.best.score)} ({p.best.candidate})" if p.best else ""
            return f"{p.reason}: {p.evaluations} evaluated, {p.passed} passed{best}, {p.elapsed_s:.0f} s"
        case FinalAudit():
            return f"{p.candidate}: " + ", ".join(f"{t} {s}" for t, s in p.targets.items())
        case InfraEvent():
            who = f"evaluator {p.evaluator}" if p.evaluator is not None else "pool"
            where = f" on {p.host or p.node}" + (f" ({p.gpu})" if p.gpu else "") if p.host or p.node else ""
            what = f" under {p.candidate} (try {p.attempt})" if p.candidate else ""
            tail = f": {p.error}" if p.error else ""
            if p.event == "pool_start":
                return f"pool of {len(p.evaluators)} evaluators"
            return f"{p.event}: {who}{where}{what}{tail}"
        case Seal():
            return f"sealed a torn line of {p.torn_length} bytes at offset {p.torn_offset}"
    return type(p).__name__
