"""The MCP tools' bodies: plain functions over ksearch's own, returning JSON-able dicts.

Each calls what the CLI or the search loop calls for the same job (skills and ISA selection from
ksearch.context, compile and audit as `ksearch compile`, the Evaluator as `ksearch eval`, the log's
index, stats, memory and world model), after the sandbox has resolved every run and task it names.
Errors are KsearchError subclasses, which the server turns into the CLI's one-line `error:` text.
`submit` lives in ksearch.mcp.submit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ksearch import settings
from ksearch.errors import KsearchError, LogError
from ksearch.mcp.limits import EvaluationLimits
from ksearch.mcp.sandbox import Sandbox
from ksearch.paths import write_atomic

if TYPE_CHECKING:
    from ksearch.harness.evaluate import Evaluator

MAX_QUERY_ROWS = 1000  # log_query answers at most this many rows, whatever it is asked for
MAX_CELL_CHARS = 4000  # a longer text cell (a packet's JSON) is cut, saying how much was left off


@dataclass
class Services:
    """What the tools share for the server's lifetime: the sandbox, the evaluation limits, and a
    scratch directory for the sources agents send."""

    sandbox: Sandbox
    limits: EvaluationLimits[Evaluator]
    scratch: Path


def plain(obj: Any) -> Any:
    """A dataclass (Selection, Packet, SearchHit, ...) or model as JSON-able data."""
    return json.loads(json.dumps(obj, default=_default))


def _default(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    return str(obj)


def source_file(services: Services, source: str, language: str | None) -> Path:
    """The source an agent sent, as a file in the scratch directory (named by its hash): `.hip` for
    HIP (asked for, or a source with `__global__` kernels), else a Python module."""
    if not source.strip():
        raise KsearchError("the source is empty; send the candidate's complete text")
    hip = language == "hip" if language else "__global__" in source
    digest = hashlib.sha256(f"{language}\0{source}".encode()).hexdigest()[:20]
    folder = services.scratch / digest
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ("candidate.hip" if hip else "candidate.py")
    write_atomic(path, source.encode("utf-8"))  # a concurrent call with the same source never reads half
    return path


# ---------------------------------------------------------------- context


def select_skills(services: Services, task: str, target: str, budget_tokens: int) -> dict[str, Any]:
    from ksearch import context

    return plain(context.select_skills(services.sandbox.task_text(task), target, budget_tokens, strict=True))


def isa_packet(topic: str, target: str | None, budget_tokens: int) -> dict[str, Any]:
    from ksearch.context import build_packet

    return plain(build_packet(topic, target, budget_tokens))


def isa_search(text: str, target: str | None, limit: int) -> dict[str, Any]:
    from ksearch.context import ContextError, load_corpus

    if limit < 1:
        raise ContextError(f"--limit must be at least 1, got {limit}")
    hits = load_corpus().search(text, target, limit=None)
    return {"hits": plain(hits[:limit]), "total": len(hits)}


# ---------------------------------------------------------------- compile and evaluate


def compile_source(
    services: Services,
    source: str,
    task: str,
    targets: list[str],
    dtype: str | None,
    language: str | None,
) -> dict[str, Any]:
    """`ksearch compile --json` on the source: each target's compile result and audit."""
    from ksearch.audit import audit_compile, max_intensity
    from ksearch.compile import CompileRequest, compile_many
    from ksearch.target import load_target
    from ksearch.task import load_task

    task_ref = services.sandbox.task(task)
    spec = load_task(task_ref)
    dtype = dtype or spec.default_dtype
    profiles = [load_target(t) for t in targets]
    path = source_file(services, source, language)
    requests = [
        CompileRequest(source_path=str(path), task=task_ref, target=p.name, dtype=dtype, language=language)
        for p in profiles
    ]
    results = compile_many(requests)
    intensity = max_intensity(spec, dtype)
    per_target = []
    for r, p in zip(results, profiles):
        audit = audit_compile(r, p, spec.spec.op_family, dtype, intensity)
        per_target.append(
            {"target": p.name, "compile": r.model_dump(mode="json"), "audit": audit.model_dump(mode="json")}
        )
    return {"task": spec.name, "dtype": dtype, "ok": all(r.ok for r in results), "targets": per_target}


def evaluate_source(
    services: Services,
    session: str,
    source: str,
    task: str,
    device: str,
    workloads: list[str] | None,
    dtype: str | None,
    target: str | None,
    seeds: list[int] | None,
    language: str | None,
) -> dict[str, Any]:
    """`ksearch eval --json` on the source: the EvidencePacket of the same sandboxed harness."""
    from ksearch.harness.evaluate import resolve_device
    from ksearch.task import load_task

    spec = load_task(services.sandbox.task(task))
    for name in workloads or []:
        spec.workload(name)  # an unknown name is refused before the budget is charged
    key = (resolve_device(device), settings.DEFAULT_EVAL_TIMEOUT_S, 1.0)  # ksearch eval's defaults
    path = source_file(services, source, language)
    services.limits.charge(session)
    with services.limits.evaluator(key) as ev:
        packet = ev.evaluate(
            path, spec, target=target, dtype=dtype, seeds=tuple(seeds or (0, 1)), workloads=workloads or None
        )
    return dict(packet.model_dump(mode="json"))


# ---------------------------------------------------------------- the log


def log_stats(services: Services, run: str | None) -> dict[str, Any]:
    from ksearch.log import log_stats as stats

    return plain(stats(services.sandbox.run(run)))


def log_query(services: Services, run: str | None, sql: str, max_rows: int) -> dict[str, Any]:
    """`ksearch log query`: one read-only SELECT over the run's index, at most `max_rows` rows back.

    The same guards as ksearch.log.query (a SELECT or WITH only, an authorizer that denies every
    write, ATTACH and PRAGMA change, one statement), with the rows fetched up to the bound rather
    than all of them."""
    from ksearch.log.index import _READ_STATEMENT, _authorize, connect_readonly

    run_dir = services.sandbox.run(run)
    limit = max(1, min(max_rows, MAX_QUERY_ROWS))
    if not _READ_STATEMENT.match(sql):
        raise LogError(f"log query runs one SELECT (or WITH ... SELECT) statement only; got {sql[:60]!r}")
    with closing(connect_readonly(run_dir)) as conn:
        conn.set_authorizer(_authorize)
        try:
            cur = conn.execute(sql)
            columns = [d[0] for d in cur.description or []]
            rows = cur.fetchmany(limit + 1)
        except (sqlite3.Error, sqlite3.Warning) as e:
            raise LogError(
                f"query failed: {e}; log query runs one read-only SELECT over the index's tables "
                "(`ksearch log query --help` lists them)"
            ) from e
    return {
        "columns": columns,
        "rows": [[_cell(v) for v in r] for r in rows[:limit]],
        "truncated": len(rows) > limit,
        "max_rows": limit,
    }


def _cell(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.hex()
    if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
        return value[:MAX_CELL_CHARS] + f"... ({len(value) - MAX_CELL_CHARS} more characters)"
    return value


def tree(services: Services, run: str | None, budget_tokens: int) -> dict[str, Any]:
    """`ksearch tree`: the run's world model rebuilt from its log, as indented text in the budget."""
    from ksearch.worldmodel import WorldModel, render_text

    wm = WorldModel.from_log(services.sandbox.run(run))
    return {"nodes": len(wm), "text": render_text(wm, budget_tokens)}


def memory(services: Services, run: str | None, budget_tokens: int) -> dict[str, Any]:
    """The run's distilled memory (proven strategies, dead ends) as the prompt builder reads it."""
    from ksearch.propose.memory import distill, load_memory, memory_text

    run_dir = services.sandbox.run(run)
    mem = load_memory(run_dir) or distill(run_dir)  # a run without memory.json yet: distill it once
    return {
        "text": memory_text(mem, budget_tokens),
        "proven": len(mem.proven),
        "dead_ends": len(mem.dead_ends),
        "evaluations": mem.evaluations,
        "updated_at": mem.updated_at,
    }


def best(services: Services, run: str | None, target: str | None) -> dict[str, Any]:
    """The run's best kernel for `target` (default: the run's primary): the highest-scored candidate
    (the run's own ranking: measured reward, else the static estimate) whose packet on `target`
    passed, with that packet and its source."""
    from ksearch.context.locate import check_target
    from ksearch.log import read_blob
    from ksearch.log.index import connect_readonly, read_evaluation_packets, run_start
    from ksearch.log.rows import PacketId

    run_dir = services.sandbox.run(run)
    with closing(connect_readonly(run_dir)) as conn:
        start = run_start(conn)
        want = check_target(target) or (start.primary if start else None)
        ranked = conn.execute(
            "SELECT candidate, score, score_basis, packet_id, blob FROM steps "
            "WHERE score IS NOT NULL AND packet_id IS NOT NULL ORDER BY score DESC, ordinal"
        )
        for candidate, score, basis, packet_id, blob in ranked:
            evaluation = PacketId.parse(packet_id).evaluation
            packets = read_evaluation_packets(conn, run_dir, evaluation)
            packet = next((p for p in packets if p.candidate.target == want), None)
            if packet is not None and packet.status.value == "pass":
                return {
                    "run": str(run_dir),
                    "target": want,
                    "candidate": candidate,
                    "score": score,
                    "score_basis": basis,
                    "source": read_blob(run_dir, blob).decode("utf-8") if blob else None,
                    "packet": packet.model_dump(mode="json"),
                }
    where = f" on {want}" if want else ""
    raise LogError(f"{run_dir} holds no passing, scored kernel{where} yet")
