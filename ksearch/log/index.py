"""attempts.db: a SQLite index of history.jsonl, built with sqlite-utils. Never the source of truth.

Tables: `events` (every row), `attempts` (attempt rows flattened from their EvidencePacket, with
their ordinal and the byte offset of their row), `failures` (non-passing attempts with their error
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
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import sqlite_utils

from ksearch.errors import LogError
from ksearch.log.history import Cursor, history_path, iter_rows, parse_line, row_hash

DB = "attempts.db"
ATTEMPT = "attempt"
_BATCH = 20_000
# 4: no best_reward in attempt_summary (improvements holds the best rewards); 5: audit_checks, template_settings
_SCHEMA_VERSION = 5
BUCKET = 64  # attempts per row of attempt_buckets; drift windows over big logs are multiples of it
STEP = "step"
PROPOSER_CALL = "proposer_call"

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
    """The evaluation an attempt belongs to: its packet id less the `@target` suffix. The packets of one
    candidate for several targets share one evaluation (one verification, one timing)."""
    return attempt_id.rsplit("@", 1)[0] if attempt_id else attempt_id


def flatten_attempt(seq: int, ts: str, packet: dict) -> dict:
    """The attempts-table row of one attempt event; tolerant of partial packets. The indexer adds
    ordinal, offset, eval_s and gpu_s."""
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
        "reward": packet.get("reward"),
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
    }


def flatten_step(seq: int, ts: str, step: dict) -> dict:
    """The steps-table row of one `step` event (ordinal added by the indexer)."""
    basis = step.get("score_basis") or ""
    knobs = step.get("knobs")
    return {
        "seq": seq,
        "ts": ts,
        "ordinal": None,
        "candidate": step.get("candidate"),
        "visit": step.get("visit"),
        "island": step.get("island"),
        "action_id": step.get("action_id"),
        "template": step.get("template"),
        "strategy": step.get("template") or step.get("action_id") or "(none)",
        "knobs": None if knobs is None else json.dumps(knobs, sort_keys=True, separators=(",", ":")),
        "passed": None if step.get("passed") is None else int(bool(step.get("passed"))),
        "score": step.get("score"),
        "score_basis": step.get("score_basis"),
        "target": basis.split(":", 1)[1] if ":" in basis else None,
        "failure_class": step.get("failure_class"),
        "packet_id": step.get("packet_id"),
        "blob": step.get("blob"),
        "message": step.get("message"),
    }


def flatten_call(seq: int, ts: str, call: dict) -> dict:
    return {
        "seq": seq,
        "ts": ts,
        "kind": call.get("kind"),
        "model": call.get("model"),
        "prompt_tokens": call.get("prompt_tokens"),
        "completion_tokens": call.get("completion_tokens"),
        "cached_tokens": call.get("cached_tokens"),
        "usd": call.get("usd"),
        "latency_s": call.get("latency_s"),
        "failure": call.get("failure"),
    }


def _create(db: sqlite_utils.Database) -> None:
    db["events"].create(EVENT_COLUMNS, pk="seq")
    db["attempts"].create(ATTEMPT_COLUMNS, pk="seq")
    db["failures"].create(FAILURE_COLUMNS, pk="seq")
    db["_cursor"].create(
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
        db["attempts"].create_index(cols)
    db["failures"].create_index(["failure_class"])
    db["failures"].enable_fts(["message", "failure_class"], create_triggers=False)
    # Running totals kept as rows are indexed, so `log stats` reads a few rows, not a million.
    db["kind_counts"].create({"kind": str, "n": int}, pk="kind")
    db["attempt_summary"].create(
        {"target": str, "status": str, "failure_class": str, "n": int},
        pk=("target", "status", "failure_class"),
    )
    db["steps"].create(STEP_COLUMNS, pk="seq")
    for cols in STEP_INDEXES:
        db["steps"].create_index(cols)
    db["proposer_calls"].create(CALL_COLUMNS, pk="seq")
    db["attempt_buckets"].create(
        {"bucket": int, "status": str, "failure_class": str, "n": int},
        pk=("bucket", "status", "failure_class"),
    )
    db["improvements"].create(
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
    db["strategy_stats"].create(
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
    db["strategy_failures"].create(
        {"strategy": str, "failure_class": str, "n": int}, pk=("strategy", "failure_class")
    )
    db["template_settings"].create(
        {"template": str, "knobs": str, "n": int, "passed": int, "best_score": float},
        pk=("template", "knobs"),
    )
    db["audit_checks"].create({"name": str, "outcome": str, "n": int}, pk=("name", "outcome"))
    db["totals"].create({"key": str, "value": float}, pk="key")


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
    totals: Counter = Counter()
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
        row = line.row
        seq, ts, kind, payload = row["seq"], row["ts"], row.get("kind"), row.get("payload") or {}
        is_attempt = kind == ATTEMPT
        # Attempt payloads live flattened in `attempts`; the full packet stays in the history.
        b.events.append(
            {
                "seq": seq,
                "ts": ts,
                "run": row.get("run"),
                "kind": kind,
                "payload": None if is_attempt else json.dumps(payload, separators=(",", ":")),
            }
        )
        if is_attempt:
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
        elif kind == STEP:
            flat = flatten_step(seq, ts, payload)
            flat["ordinal"] = state.steps
            state.steps += 1
            b.steps.append(flat)
        elif kind == PROPOSER_CALL:
            b.calls.append(flatten_call(seq, ts, payload))
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
    if rebuilt:
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
                db["_cursor"].upsert(
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


def query(run_dir: Path, sql: str, params: list | None = None) -> tuple[list[str], list[tuple]]:
    """Run one read-only SQL statement against the run's index; a bad statement is a LogError."""
    conn = connect_readonly(run_dir)
    try:
        cur = conn.execute(sql, params or [])
        cols = [d[0] for d in cur.description or []]
        return cols, cur.fetchall()
    except sqlite3.Error as e:
        raise LogError(
            f"query failed: {e}; tables are events, attempts, failures, failures_fts, steps, "
            "proposer_calls and the aggregates (attempt_summary, attempt_buckets, improvements, "
            "strategy_stats, strategy_failures, template_settings, audit_checks, totals)"
        ) from e
    finally:
        conn.close()


def run_start(conn: sqlite3.Connection) -> dict:
    """The payload of the run's first run_start event (task, targets, primary, config); {} if it has none."""
    row = conn.execute("SELECT payload FROM events WHERE kind = 'run_start' ORDER BY seq LIMIT 1").fetchone()
    return json.loads(row[0]) if row and row[0] else {}


def evaluation_packets(conn: sqlite3.Connection, evaluation: str) -> list[tuple[str, int, int]]:
    """(attempt_id, seq, offset) of the attempts named `evaluation` or `evaluation@<target>`, in log order.

    A range on the attempt_id index rather than LIKE, where `_` and `%` in an id would be wildcards:
    the ids starting with `evaluation@` are those from `evaluation@` up to `evaluationA` ('A' follows '@')."""
    return conn.execute(
        "SELECT attempt_id, seq, offset FROM attempts WHERE attempt_id = ? "
        "OR (attempt_id >= ? AND attempt_id < ?) ORDER BY seq",
        [evaluation, evaluation + "@", evaluation + "A"],
    ).fetchall()


def read_row_at(run_dir: Path, offset: int, seq: int) -> dict:
    """The history row starting at byte `offset`, checked to be row `seq`."""
    with open(history_path(Path(run_dir)), "rb") as f:
        f.seek(offset)
        row = parse_line(f.readline().rstrip(b"\n"))
    if row is None or row.get("seq") != seq:
        raise LogError(
            f"the index of {run_dir} is stale (row seq {seq} is not at byte {offset}); "
            f"rebuild it with `ksearch log index {run_dir} --rebuild`"
        )
    return row
