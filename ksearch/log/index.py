"""attempts.db: a SQLite index of history.jsonl, built with sqlite-utils. Never the source of truth.

Tables: `events` (every row), `attempts` (attempt rows flattened from their EvidencePacket, with
their ordinal, the byte offset of their row, and `final_audit` = 1 for the best kernel's packets on
the targets the search did not compile it for, written at the end of a run: attempts, not search
evaluations; `reward` is NULL for an attempt that was not timed), `failures` (non-passing attempts with their error
text, full-text searchable as `failures_fts`), `steps` (the search loop's per-candidate rows),
`proposer_calls`, and `_cursor` (where indexing stopped and the chain state there). Indexing is
incremental: it resumes at the cursor after checking that the row before it still has the recorded
hash, and starts from scratch when the history was rewritten or the index is missing or damaged.

Aggregate tables, kept as rows are indexed so that `log stats` never scans a million rows:
`kind_counts`, `attempt_summary` (per target, status, failure class), `attempt_buckets` (the same
per BUCKET consecutive attempts: accept-rate drift), `improvements` (every new best score, per
target, of attempts' rewards and of steps' scores), `strategy_stats` and `strategy_failures` (per
strategy: the step's template, else its action), `template_settings` (per template and knob
setting tried: steps, passes, best score; the frontier), `audit_checks` (attempts per audit or
anti-hack check and outcome, "ok" or "failed (<severity>)"), `totals` (compile, evaluation and
GPU seconds, LLM dollars and tokens).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import sqlite_utils
from pydantic import ValidationError

from ksearch.errors import LogError
from ksearch.evidence import EvidencePacket
from ksearch.log.history import Cursor, history_path, iter_rows, kind_in, parse_row, row_hash
from ksearch.log.rows import (
    ATTEMPT,
    AttemptEnvelope,
    AttemptRow,
    FinalAuditRow,
    PacketId,
    ProposerCallRecord,
    ProposerCallRow,
    RunStart,
    Step,
    StepRow,
)

DB = "attempts.db"
_BATCH = 20_000
# 4: no best_reward in attempt_summary (improvements holds the best rewards); 5: audit_checks, template_settings;
# 6: attempts.final_audit, NULL rewards for untimed attempts
_SCHEMA_VERSION = 6
BUCKET = 64  # attempts per row of attempt_buckets; drift windows over big logs are multiples of it

EVENT_COLUMNS = {"seq": int, "ts": str, "run": str, "kind": str, "payload": str}
ATTEMPT_COLUMNS = {
    "seq": int,
    "ts": str,
    "attempt_id": str,
    "task": str,
    "target": str,
    "language": str,
    "dtype": str,
    "source_hash": str,
    "parent_id": str,
    "action_id": str,
    "status": str,
    "failure_class": str,
    "reward": float,
    "speedup": float,
    "sol_score": float,
    "unmeasured": str,
    "gpu": str,
    "compile_s": float,
    "verify_s": float,
    "benchmark_s": float,
    "message": str,
    "ordinal": int,
    "offset": int,
    "eval_s": float,
    "gpu_s": float,
    "final_audit": int,
}
FAILURE_COLUMNS = {"seq": int, "attempt_id": str, "failure_class": str, "message": str}
ATTEMPT_INDEXES = [
    ["status", "target"],
    ["failure_class"],
    ["target", "reward"],
    ["action_id"],
    ["ts"],
    ["attempt_id"],
    ["compile_s"],
]
STEP_COLUMNS = {
    "seq": int,
    "ts": str,
    "ordinal": int,
    "candidate": str,
    "visit": int,
    "island": int,
    "action_id": str,
    "template": str,
    "strategy": str,
    "knobs": str,
    "passed": int,
    "score": float,
    "score_basis": str,
    "target": str,
    "failure_class": str,
    "packet_id": str,
    "blob": str,
    "message": str,
}
STEP_INDEXES = [["strategy"], ["candidate"], ["packet_id"], ["target", "score"]]
CALL_COLUMNS = {
    "seq": int,
    "ts": str,
    "kind": str,
    "model": str,
    "prompt_tokens": int,
    "completion_tokens": int,
    "cached_tokens": int,
    "usd": float,
    "latency_s": float,
    "failure": str,
}
# Running totals kept in `totals` (key -> value).
TOTAL_KEYS = (
    "attempts",
    "steps",
    "final_audits",
    "compile_s",
    "eval_s",
    "gpu_s",
    "llm_calls",
    "llm_usd",
    "llm_unpriced_calls",
    "prompt_tokens",
    "completion_tokens",
)


@dataclass
class IndexReport:
    db: Path
    added: int
    total: int
    rebuilt: bool
    seconds: float


def db_path(run_dir: Path) -> Path:
    return Path(run_dir) / DB


def evaluation_id(attempt_id: str | None) -> str | None:
    """The evaluation an attempt belongs to (PacketId.evaluation); None for None."""
    return PacketId.parse(attempt_id).evaluation if attempt_id else attempt_id


def flatten_attempt(seq: int, ts: str, packet: dict) -> dict:
    """The attempts-table row of one attempt event. The indexer adds ordinal, offset, eval_s and
    gpu_s. The reward is NULL unless the attempt was timed: a rejected or unmeasured candidate has
    no reward to rank by, and a 0 would read as a measured one.

    The packet is read as parsed JSON, not as an EvidencePacket: validating one costs about 0.4 ms,
    which would make a million-row index take minutes. `log verify` validates every row."""
    cand = packet.get("candidate") or {}
    perf = packet.get("performance") or {}
    unmeasured = packet.get("unmeasured") or {}
    durations = packet.get("durations_s") or {}
    return {
        "seq": seq,
        "ts": ts,
        "attempt_id": packet.get("packet_id"),
        "task": packet.get("task"),
        "target": cand.get("target"),
        "language": cand.get("language"),
        "dtype": cand.get("dtype"),
        "source_hash": cand.get("source_hash"),
        "parent_id": cand.get("parent_id"),
        "action_id": cand.get("action_id"),
        "status": packet.get("status"),
        "failure_class": packet.get("failure_class"),
        "reward": packet.get("reward") if perf else None,
        "speedup": perf.get("speedup_geomean"),
        "sol_score": perf.get("sol_score"),
        "unmeasured": unmeasured.get("reason"),
        "gpu": (packet.get("environment") or {}).get("gpu_name"),
        "compile_s": durations.get("compile"),
        "verify_s": durations.get("verify"),
        "benchmark_s": durations.get("benchmark"),
        "message": packet.get("message"),
        "ordinal": None,
        "offset": None,
        "eval_s": None,
        "gpu_s": None,
        "final_audit": 0,
    }


def flatten_step(seq: int, ts: str, step: Step) -> dict:
    """The steps-table row of one `step` event (ordinal added by the indexer)."""
    basis = step.score_basis or ""
    return {
        "seq": seq,
        "ts": ts,
        "ordinal": None,
        "candidate": step.candidate,
        "visit": step.visit,
        "island": step.island,
        "action_id": step.action_id,
        "template": step.template,
        "strategy": step.template or step.action_id or "(none)",
        "knobs": json.dumps(step.knobs, sort_keys=True, separators=(",", ":")),
        "passed": int(step.passed),
        "score": step.score,
        "score_basis": step.score_basis,
        "target": basis.split(":", 1)[1] if ":" in basis else None,
        "failure_class": step.failure_class,
        "packet_id": None if step.packet_id is None else str(step.packet_id),
        "blob": step.blob,
        "message": step.message,
    }


def flatten_call(seq: int, ts: str, call: ProposerCallRecord) -> dict:
    return {"seq": seq, "ts": ts, **call.model_dump(include=set(CALL_COLUMNS) - {"seq", "ts"})}


def _create(db: sqlite_utils.Database) -> None:
    db.table("events").create(EVENT_COLUMNS, pk="seq")
    db.table("attempts").create(ATTEMPT_COLUMNS, pk="seq")
    db.table("failures").create(FAILURE_COLUMNS, pk="seq")
    db.table("_cursor").create(
        {
            "id": int,
            "offset": int,
            "lineno": int,
            "next_seq": int,
            "prev_hash": str,
            "history_size": int,
            "schema": int,
        },
        pk="id",
    )
    for cols in ATTEMPT_INDEXES:
        db.table("attempts").create_index(cols)
    db.table("failures").create_index(["failure_class"])
    db.table("failures").enable_fts(["message", "failure_class"], create_triggers=False)
    # Running totals kept as rows are indexed, so `log stats` reads a few rows, not a million.
    db.table("kind_counts").create({"kind": str, "n": int}, pk="kind")
    db.table("attempt_summary").create(
        {"target": str, "status": str, "failure_class": str, "n": int},
        pk=("target", "status", "failure_class"),
    )
    db.table("steps").create(STEP_COLUMNS, pk="seq")
    for cols in STEP_INDEXES:
        db.table("steps").create_index(cols)
    db.table("proposer_calls").create(CALL_COLUMNS, pk="seq")
    db.table("attempt_buckets").create(
        {"bucket": int, "status": str, "failure_class": str, "n": int},
        pk=("bucket", "status", "failure_class"),
    )
    db.table("improvements").create(
        {
            "stream": str,
            "target": str,
            "ordinal": int,
            "seq": int,
            "id": str,
            "strategy": str,
            "score": float,
            "prev_score": float,
            "basis": str,
        },
        pk=("stream", "target", "ordinal"),
    )
    db.table("strategy_stats").create(
        {
            "strategy": str,
            "template": str,
            "action_id": str,
            "n": int,
            "passed": int,
            "best_score": float,
            "new_bests": int,
            "gain": float,
        },
        pk="strategy",
    )
    db.table("strategy_failures").create(
        {"strategy": str, "failure_class": str, "n": int}, pk=("strategy", "failure_class")
    )
    db.table("template_settings").create(
        {"template": str, "knobs": str, "n": int, "passed": int, "best_score": float},
        pk=("template", "knobs"),
    )
    db.table("audit_checks").create({"name": str, "outcome": str, "n": int}, pk=("name", "outcome"))
    db.table("totals").create({"key": str, "value": float}, pk="key")


def _insert(conn: sqlite3.Connection, table: str, columns: dict, rows: list[dict]) -> None:
    # sqlite-utils made the schema; rows here are already flat scalars in column order, and its
    # per-value insert path is 3x slower than executemany on a million-row rebuild.
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    conn.executemany(sql, [tuple(r[c] for c in columns) for r in rows])


@dataclass
class _Batch:
    """The rows of up to _BATCH events, per table, and their audit verdict counts."""

    events: list[dict] = field(default_factory=list)
    attempts: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)
    calls: list[dict] = field(default_factory=list)
    final_audits: list[tuple[int, str]] = field(default_factory=list)  # (seq, candidate) of final_audit rows
    audit: Counter = field(default_factory=Counter)  # (check, outcome) -> attempts


@dataclass
class _State:
    """What the indexer carries from one batch (and one incremental build) to the next."""

    attempts: int = 0  # the next attempt ordinal
    steps: int = 0  # the next step ordinal
    last_eval: str | None = (
        None  # evaluation id of the last attempt: its other targets' packets share its seconds
    )
    best: dict = field(default_factory=dict)  # (stream, target) -> best score so far

    @classmethod
    def load(cls, conn: sqlite3.Connection) -> _State:
        totals = dict(conn.execute("SELECT key, value FROM totals").fetchall())
        last = conn.execute("SELECT attempt_id FROM attempts ORDER BY seq DESC LIMIT 1").fetchone()
        best = {
            (st, t): sc
            for st, t, sc in conn.execute(
                "SELECT stream, target, max(score) FROM improvements GROUP BY stream, target"
            )
        }
        return cls(
            int(totals.get("attempts", 0)),
            int(totals.get("steps", 0)),
            evaluation_id(last[0]) if last else None,
            best,
        )


def audit_outcomes(packet: dict) -> Iterator[tuple[str, str]]:
    """(check, outcome) of each audit and anti-hack verdict of a packet: outcome "ok", or
    "failed (<severity>)"."""
    audit = packet.get("audit") or {}
    for v in [*(audit.get("verdicts") or []), *(audit.get("anti_hack") or [])]:
        yield v.get("check", "?"), "ok" if v.get("ok") else f"failed ({v.get('severity', '?')})"


def _eval_seconds(packet: dict) -> float:
    d = packet.get("durations_s") or {}
    return float(sum(d.get(k) or 0.0 for k in ("verify", "benchmark", "ncu", "baselines")))


def _improve(
    state: _State,
    out: list,
    stream: str,
    target: str,
    ordinal: int,
    seq: int,
    ident,
    strategy,
    score: float | None,
    basis: str | None,
) -> float | None:
    """Record a new best of (stream, target); returns the gain over the previous best (the whole score
    for the first), or None when the score is no new best."""
    if score is None:
        return None
    prev = state.best.get((stream, target))
    if prev is not None and score <= prev:
        return None
    state.best[(stream, target)] = score
    out.append((stream, target, ordinal, seq, ident, strategy, score, prev, basis))
    return score - (prev or 0.0)


# the larger of a row's best_score and the incoming one, either of which may be NULL
_MAX_BEST = (
    "CASE WHEN best_score IS NULL OR excluded.best_score > best_score "
    "THEN coalesce(excluded.best_score, best_score) ELSE best_score END"
)


def _add_summaries(conn: sqlite3.Connection, state: _State, b: _Batch) -> None:
    kinds = Counter(e["kind"] for e in b.events)
    conn.executemany(
        "INSERT INTO kind_counts (kind, n) VALUES (?, ?) ON CONFLICT (kind) DO UPDATE SET n = n + excluded.n",
        list(kinds.items()),
    )
    groups: Counter = Counter()
    buckets: Counter = Counter()
    improvements: list[tuple] = []
    totals: defaultdict[str, float] = defaultdict(float)  # counts and seconds
    for a in b.attempts:
        # '' rather than NULL in key columns: NULLs never conflict, so they would not accumulate.
        key = (a["target"] or "", a["status"] or "", a["failure_class"] or "")
        groups[key] += 1
        buckets[(a["ordinal"] // BUCKET, key[1], key[2])] += 1
        totals["compile_s"] += a["compile_s"] or 0.0
        totals["eval_s"] += a["eval_s"] or 0.0
        totals["gpu_s"] += a["gpu_s"] or 0.0
        if a["status"] == "pass":
            _improve(
                state,
                improvements,
                "attempt",
                a["target"] or "",
                a["ordinal"],
                a["seq"],
                a["attempt_id"],
                a["action_id"],
                a["reward"],
                "reward",
            )
    totals["attempts"] += len(b.attempts)
    conn.executemany(
        "INSERT INTO attempt_summary (target, status, failure_class, n) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (target, status, failure_class) DO UPDATE SET n = n + excluded.n",
        [(*k, n) for k, n in groups.items()],
    )
    conn.executemany(
        "INSERT INTO attempt_buckets (bucket, status, failure_class, n) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (bucket, status, failure_class) DO UPDATE SET n = n + excluded.n",
        [(*k, n) for k, n in buckets.items()],
    )

    strategies: dict[str, list] = {}  # strategy -> [template, action, n, passed, best, new_bests, gain]
    settings: dict[tuple[str, str], list] = {}  # (template, knobs JSON) -> [n, passed, best]
    fails: Counter = Counter()
    for st in b.steps:
        s = strategies.setdefault(st["strategy"], [st["template"], st["action_id"], 0, 0, None, 0, 0.0])
        s[2] += 1
        s[3] += bool(st["passed"])
        if st["score"] is not None and (s[4] is None or st["score"] > s[4]):
            s[4] = st["score"]
        if st["template"] is not None:
            t = settings.setdefault((st["template"], st["knobs"] or ""), [0, 0, None])
            t[0] += 1
            t[1] += bool(st["passed"])
            if st["score"] is not None and (t[2] is None or st["score"] > t[2]):
                t[2] = st["score"]
        if not st["passed"]:
            fails[(st["strategy"], st["failure_class"] or "unknown")] += 1
        gain = _improve(
            state,
            improvements,
            "step",
            st["target"] or "",
            st["ordinal"],
            st["seq"],
            st["candidate"],
            st["strategy"],
            st["score"],
            st["score_basis"],
        )
        if gain is not None:
            s[5] += 1
            s[6] += gain
    totals["steps"] += len(b.steps)
    conn.executemany(
        "INSERT INTO strategy_stats (strategy, template, action_id, n, passed, best_score, new_bests, gain) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (strategy) DO UPDATE SET n = n + excluded.n, "
        "passed = passed + excluded.passed, new_bests = new_bests + excluded.new_bests, gain = gain + excluded.gain, "
        f"best_score = {_MAX_BEST}",
        [(k, *v) for k, v in strategies.items()],
    )
    conn.executemany(
        "INSERT INTO template_settings (template, knobs, n, passed, best_score) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (template, knobs) DO UPDATE SET n = n + excluded.n, passed = passed + excluded.passed, "
        f"best_score = {_MAX_BEST}",
        [(*k, *v) for k, v in settings.items()],
    )
    conn.executemany(
        "INSERT INTO strategy_failures (strategy, failure_class, n) VALUES (?, ?, ?) "
        "ON CONFLICT (strategy, failure_class) DO UPDATE SET n = n + excluded.n",
        [(*k, n) for k, n in fails.items()],
    )
    conn.executemany(
        "INSERT INTO improvements (stream, target, ordinal, seq, id, strategy, score, prev_score, basis) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        improvements,
    )

    conn.executemany(
        "INSERT INTO audit_checks (name, outcome, n) VALUES (?, ?, ?) "
        "ON CONFLICT (name, outcome) DO UPDATE SET n = n + excluded.n",
        [(*k, n) for k, n in b.audit.items()],
    )

    for seq, candidate in b.final_audits:
        totals["final_audits"] += _mark_final_audit(conn, seq, candidate)
    for c in b.calls:
        totals["llm_calls"] += 1
        if c["usd"] is None:
            totals["llm_unpriced_calls"] += 1
        totals["llm_usd"] += c["usd"] or 0.0
        totals["prompt_tokens"] += c["prompt_tokens"] or 0
        totals["completion_tokens"] += c["completion_tokens"] or 0
    conn.executemany(
        "INSERT INTO totals (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
        [(k, float(totals.get(k, 0))) for k in TOTAL_KEYS],
    )


def _mark_final_audit(conn: sqlite3.Connection, seq: int, candidate: str) -> int:
    """Flag the attempts a final_audit row (at `seq`) reports: the packets of the best candidate's
    evaluation logged after the last step before it. Returns how many it flagged."""
    last_step = conn.execute("SELECT coalesce(max(seq), -1) FROM steps WHERE seq < ?", [seq]).fetchone()[0]
    packet = conn.execute(
        "SELECT packet_id FROM steps WHERE candidate = ? AND seq < ? ORDER BY seq DESC LIMIT 1",
        [candidate, seq],
    ).fetchone()
    if packet is None or packet[0] is None:
        return 0
    evaluation = evaluation_id(packet[0])
    cur = conn.execute(
        "UPDATE attempts SET final_audit = 1 WHERE seq > ? AND seq < ? AND attempt_id >= ? AND attempt_id < ?",
        [
            last_step,
            seq,
            f"{evaluation}@",
            f"{evaluation}A",
        ],  # the ids `evaluation@...` (see evaluation_packets)
    )
    return cur.rowcount


def _cursor_of(db: sqlite_utils.Database) -> Cursor | None:
    if "_cursor" not in db.table_names():
        return None
    rows = list(db["_cursor"].rows_where("id = 1"))
    if not rows or rows[0]["schema"] != _SCHEMA_VERSION:
        return None
    r = rows[0]
    return Cursor(r["offset"], r["lineno"], r["next_seq"], r["prev_hash"])


def _still_valid(history: Path, cursor: Cursor) -> bool:
    """Whether the history still holds, unchanged, the rows the index was built from."""
    if cursor.offset == 0:
        return True
    if history.stat().st_size < cursor.offset:
        return False
    # The row just before the cursor must still hash to the recorded prev.
    with open(history, "rb") as f:
        start = max(0, cursor.offset - (1 << 20))
        f.seek(start)
        chunk = f.read(cursor.offset - start)
    if not chunk.endswith(b"\n"):
        return False
    begin = chunk.rfind(b"\n", 0, len(chunk) - 1) + 1
    return row_hash(chunk[begin:-1]) == cursor.prev_hash


def _batches(run_dir: Path, cursor: Cursor, state: _State) -> Iterator[tuple[_Batch, Cursor]]:
    b = _Batch()
    for line, cursor in iter_rows(run_dir, cursor):  # noqa: B020 (the cursor advances row by row)
        # Attempts are read as parsed JSON (see flatten_attempt); every other row as its model.
        is_attempt = kind_in(line, (ATTEMPT,))
        row = None if is_attempt else parse_row(line)
        head = AttemptEnvelope.model_validate(line.row) if is_attempt else row
        assert head is not None
        seq, ts, kind = head.seq, head.ts, head.kind
        # Attempt payloads live flattened in `attempts`; the full packet stays in the history.
        b.events.append(
            {
                "seq": seq,
                "ts": ts,
                "run": head.run,
                "kind": kind,
                "payload": None if row is None else row.payload.model_dump_json(),
            }
        )
        if isinstance(head, AttemptEnvelope):
            payload = head.payload
            flat = flatten_attempt(seq, ts, payload)
            flat["ordinal"], flat["offset"] = state.attempts, line.offset
            state.attempts += 1
            evaluation = evaluation_id(flat["attempt_id"])
            if evaluation is None or evaluation != state.last_eval:  # seconds counted once per evaluation
                flat["eval_s"] = _eval_seconds(payload)
                flat["gpu_s"] = flat["eval_s"] if flat["gpu"] else 0.0
            state.last_eval = evaluation
            b.attempts.append(flat)
            b.audit.update(audit_outcomes(payload))
            if flat["status"] != "pass":
                b.failures.append(
                    {
                        "seq": seq,
                        "attempt_id": flat["attempt_id"],
                        "failure_class": flat["failure_class"],
                        "message": flat["message"] or "",
                    }
                )
        elif isinstance(row, StepRow):
            flat = flatten_step(seq, ts, row.payload)
            flat["ordinal"] = state.steps
            state.steps += 1
            b.steps.append(flat)
        elif isinstance(row, ProposerCallRow):
            b.calls.append(flatten_call(seq, ts, row.payload))
        elif isinstance(row, FinalAuditRow):
            b.final_audits.append((seq, row.payload.candidate))
        if len(b.events) >= _BATCH:
            yield b, cursor
            b = _Batch()
    yield b, cursor


@contextmanager
def _index_lock(path: Path) -> Iterator[None]:
    """One indexer at a time per run (a search updating its memory, a user running `log stats`)."""
    fd = os.open(path.with_name(f".{DB}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def build_index(run_dir: Path, *, rebuild: bool = False) -> IndexReport:
    """Bring attempts.db up to date with history.jsonl, incrementally when it can."""
    run_dir = Path(run_dir)
    history = history_path(run_dir)
    with _index_lock(db_path(run_dir)):
        return _build_index(run_dir, history, rebuild)


def _build_index(run_dir: Path, history: Path, rebuild: bool) -> IndexReport:
    t0 = time.perf_counter()
    path = db_path(run_dir)
    cursor = None
    if not rebuild and path.exists():
        try:
            cursor = _cursor_of(sqlite_utils.Database(path))
        except sqlite3.DatabaseError:
            cursor = None  # a damaged index is rebuilt, never trusted
        if cursor is not None and not _still_valid(history, cursor):
            cursor = None
    rebuilt = cursor is None
    # A rebuild writes a fresh file and swaps it in, so readers never see half an index.
    target = path.with_name(f".{DB}.{os.getpid()}.tmp") if rebuilt else path
    if rebuilt:
        target.unlink(missing_ok=True)
    conn = sqlite3.connect(target, isolation_level=None)
    db = sqlite_utils.Database(conn)
    db.execute("PRAGMA journal_mode = WAL" if not rebuilt else "PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")  # the index can always be rebuilt from the history
    if cursor is None:
        _create(db)
        cursor = Cursor()
    added = 0
    try:
        state = _State.load(conn)
        for b, cursor in _batches(run_dir, cursor, state):  # noqa: B020
            with db.atomic():  # one transaction per batch, cursor included: a crash leaves it consistent
                _insert(conn, "events", EVENT_COLUMNS, b.events)
                _insert(conn, "attempts", ATTEMPT_COLUMNS, b.attempts)
                _insert(conn, "steps", STEP_COLUMNS, b.steps)
                _insert(conn, "proposer_calls", CALL_COLUMNS, b.calls)
                if b.failures:
                    _insert(conn, "failures", FAILURE_COLUMNS, b.failures)
                    conn.execute(
                        "INSERT INTO failures_fts (rowid, message, failure_class) "
                        "SELECT rowid, message, failure_class FROM failures WHERE seq >= ?",
                        [b.failures[0]["seq"]],
                    )
                _add_summaries(conn, state, b)
                db.table("_cursor").upsert(
                    {
                        "id": 1,
                        "offset": cursor.offset,
                        "lineno": cursor.lineno,
                        "next_seq": cursor.next_seq,
                        "prev_hash": cursor.prev_hash,
                        "history_size": history.stat().st_size,
                        "schema": _SCHEMA_VERSION,
                    },
                    pk="id",
                )
            added += len(b.events)
        total = db["events"].count
    finally:
        conn.close()
    if rebuilt:
        os.replace(target, path)
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return IndexReport(path, added, total, rebuilt, time.perf_counter() - t0)


def connect_readonly(run_dir: Path) -> sqlite3.Connection:
    """A read-only connection to an up-to-date index (built or updated first)."""
    build_index(run_dir)
    path = db_path(run_dir)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.execute("PRAGMA query_only = ON")
    return conn


# What a read-only SELECT needs from SQLite's authorizer; every other action (writes, ATTACH, DETACH,
# PRAGMA statements, transactions, schema changes) is denied.
_READ_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE}
# Pragmas that only read: FTS asks data_version; the rest back pragma_table_info('steps') and the like.
_READ_PRAGMAS = {
    "data_version",
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
}
_DENIED_FUNCTIONS = {"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"}
# A SELECT or WITH, after any whitespace and comments.
_READ_STATEMENT = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*(?:select|with)\b", re.I | re.S)


def _authorize(action: int, arg1: str | None, arg2: str | None, db: str | None, trigger: str | None) -> int:
    if action in _READ_ACTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() not in _DENIED_FUNCTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in _READ_PRAGMAS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_UPDATE and arg1 == "sqlite_master":
        # asked when a virtual table (failures_fts) is opened; the read-only connection cannot write it
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def query(run_dir: Path, sql: str, params: list | None = None) -> tuple[list[str], list[tuple]]:
    """Run one read-only SELECT (or WITH ... SELECT) against the run's index; anything else, or a
    bad statement, is a LogError and changes nothing, on disk or elsewhere."""
    if not _READ_STATEMENT.match(sql):
        # VACUUM INTO writes a file from a read-only connection and the authorizer never sees it
        raise LogError(f"log query runs one SELECT (or WITH ... SELECT) statement only; got {sql[:60]!r}")
    conn = connect_readonly(run_dir)
    conn.set_authorizer(_authorize)
    try:
        cur = conn.execute(sql, params or [])  # sqlite3 refuses a second statement before running any
        cols = [d[0] for d in cur.description or []]
        return cols, cur.fetchall()
    except (sqlite3.Error, sqlite3.Warning) as e:
        raise LogError(
            f"query failed: {e}; log query runs one read-only SELECT over the index's tables "
            "(`ksearch log query --help` lists them)"
        ) from e
    finally:
        conn.close()


def run_start(conn: sqlite3.Connection) -> RunStart | None:
    """The run's first run_start row (task, targets, primary, config); None if it has none."""
    row = conn.execute("SELECT payload FROM events WHERE kind = 'run_start' ORDER BY seq LIMIT 1").fetchone()
    return RunStart.model_validate_json(row[0]) if row and row[0] else None


def evaluation_packets(conn: sqlite3.Connection, evaluation: str) -> list[tuple[str, int, int]]:
    """(attempt_id, seq, offset) of the attempts named `evaluation` or `evaluation@<target>`, in log order.

    A range on the attempt_id index rather than LIKE, where `_` and `%` in an id would be wildcards:
    the ids starting with `evaluation@` are those from `evaluation@` up to `evaluationA` ('A' follows '@')."""
    return conn.execute(
        "SELECT attempt_id, seq, offset FROM attempts WHERE attempt_id = ? "
        "OR (attempt_id >= ? AND attempt_id < ?) ORDER BY seq",
        [evaluation, evaluation + "@", evaluation + "A"],
    ).fetchall()


def read_evaluation_packets(conn: sqlite3.Connection, run_dir: Path, evaluation: str) -> list[EvidencePacket]:
    """The packets of one evaluation (one per target), in log order, found through the index."""
    return [read_packet_at(run_dir, off, seq) for _, seq, off in evaluation_packets(conn, evaluation)]


def read_packet_at(run_dir: Path, offset: int, seq: int) -> EvidencePacket:
    """The packet of the attempt row starting at byte `offset`, checked to be row `seq`."""
    with open(history_path(Path(run_dir)), "rb") as f:
        f.seek(offset)
        data = f.readline().rstrip(b"\n")
    try:
        row = AttemptRow.model_validate_json(data)
    except ValidationError:
        row = None
    if row is None or row.seq != seq:
        raise LogError(
            f"the index of {run_dir} is stale (attempt row seq {seq} is not at byte {offset}); "
            f"rebuild it with `ksearch log index {run_dir} --rebuild`"
        )
    return row.payload
