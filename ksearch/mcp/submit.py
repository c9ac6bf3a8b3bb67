"""`submit`: an agent's candidate evaluated as the run's own and appended to its log.

The attempt goes through the run's pipeline with the run's settings (targets, dtype, seeds,
workloads, timeouts): compile and audit per target, the sandboxed, correctness-gated evaluation, the
score the search ranks by. It is then logged the way the search loop logs a candidate: a
`proposer_call` row naming the agent (`agent:<client name>`, an `implement` call), one `attempt` row
per target and the `step` row, in one append. The run's writer lock is held throughout, so a submit
never races a running search (it is refused, naming the writer) and a search resumed later continues
the candidate numbering past the agent's. `log verify`, `log stats`, `report`, `replay` and the
distilled memory then see the attempt like any other.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from ksearch.errors import ConfigError, LogError
from ksearch.mcp.limits import EvaluationLimits
from ksearch.mcp.sandbox import Sandbox

if TYPE_CHECKING:
    from ksearch.harness.evaluate import Evaluator

AGENT = "agent"  # proposer calls of agents are logged with model `agent:<client name>`
_CANDIDATE = re.compile(r"^c(\d+)$")


def agent_label(client_name: str | None) -> str:
    """`agent:<client name>`, the name kept to what a log line and a table cell can hold."""
    name = re.sub(r"[^A-Za-z0-9._@+-]+", "-", (client_name or "").strip()).strip("-")[:64]
    return f"{AGENT}:{name or 'unknown'}"


def next_candidate_id(steps: list[str]) -> str:
    """A candidate id no step of the run holds: the search names its candidates `c%04d` after the
    number of steps so far, so the agent's takes the next such number (and a resumed search, which
    counts the agent's step too, goes on past it)."""
    numbers = [int(m.group(1)) for s in steps if (m := _CANDIDATE.match(s))]
    n = max([len(steps), *(k + 1 for k in numbers)])
    taken = set(steps)
    while f"c{n:04d}" in taken:
        n += 1
    return f"c{n:04d}"


def submit(
    sandbox: Sandbox,
    limits: EvaluationLimits[Evaluator],
    session: str,
    client_name: str | None,
    source: str,
    run: str | None,
    task: str | None,
    parent: str | None,
    rationale: str,
) -> dict[str, Any]:
    from ksearch.harness.evaluate import resolve_device
    from ksearch.log import History, put_blob
    from ksearch.log.history import read_rows
    from ksearch.log.lock import writer_lock
    from ksearch.log.rows import ProposerCallRecord, RunStart, Step
    from ksearch.propose.base import Implementation
    from ksearch.propose.memory import distill
    from ksearch.search.pipeline import LocalPool, Pipeline
    from ksearch.search.run import run_config_of
    from ksearch.target import load_target
    from ksearch.task import load_task

    if not source.strip():
        raise ConfigError("the source is empty; send the candidate's complete text")
    run_dir = sandbox.run(run)
    start = next(
        (r.payload for r in read_rows(run_dir, RunStart.KIND) if isinstance(r.payload, RunStart)), None
    )
    if start is None:
        raise ConfigError(f"{run_dir} has no run_start row: it is not a run an attempt can be added to")
    cfg = run_config_of(run_dir)
    spec = load_task(start.task if task is None else sandbox.task(task))
    if spec.name != start.task:
        raise ConfigError(
            f"{run_dir} searches task {start.task}, not {spec.name}; submit a {start.task} candidate there "
            "or name a run of that task"
        )
    device = resolve_device(start.device)
    label = agent_label(client_name)
    with writer_lock(run_dir):  # held until the rows are written: no search appends meanwhile
        steps = [r.payload.candidate for r in read_rows(run_dir, Step.KIND) if isinstance(r.payload, Step)]
        if parent is not None and parent not in steps:
            raise LogError(
                f"parent {parent!r} is no candidate of {run_dir}; name one of its candidate ids (c0012), "
                "as `log_query` lists them in steps.candidate"
            )
        cid = next_candidate_id(steps)
        limits.charge(session)
        profiles = [load_target(t) for t in sorted(start.targets, key=lambda t: t != start.primary)]
        t0 = time.monotonic()
        with limits.evaluator((device, cfg.eval.timeout_s, cfg.eval.bench_budget_s)) as evaluator:
            pipeline = Pipeline(
                run_dir,
                spec,
                start.dtype,
                profiles,
                LocalPool(evaluator, spec),
                cfg.eval,
            )
            try:
                impl = Implementation(source, {"proposer": label}, note=rationale)
                (result,) = pipeline.run([(cid, impl, {"action_id": None, "parent_id": parent})])
            finally:
                pipeline.close()
        packet = result.packet
        call = ProposerCallRecord(
            kind="implement",
            summary=f"{cid}: {' '.join(rationale.split())[:300] or '(no rationale given)'}",
            model=label,
            usd=None,  # what the agent's own model cost is not ksearch's to know
            latency_s=round(time.monotonic() - t0, 3),
            prompt_blob=put_blob(run_dir, rationale.encode(), ".txt") if rationale.strip() else None,
            response_blob=result.blob,
        )
        step = result.step()  # as the search loop logs a candidate, outside any visit
        History(run_dir).append_many([call, *result.rows(step)])
        distill(run_dir)  # memory.json and frontier.csv, as the loop refreshes them after a visit
    return {
        "run": str(run_dir),
        "candidate": cid,
        "proposer": label,
        "passed": result.passed,
        "status": packet.status.value,
        "failure_class": step.failure_class,
        "score": result.score,
        "score_basis": result.score_basis,
        "targets": step.targets,
        "message": packet.message,
        "packet": packet.model_dump(mode="json"),
    }
