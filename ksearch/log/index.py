"""attempts.db: a SQLite index of history.jsonl, built with sqlite-utils. Never the source of truth.

Tables: `events` (every row), `attempts` (attempt rows flattened from their EvidencePacket),
`failures` (non-passing attempts with their error text, full-text searchable as `failures_fts`),
and `_cursor` (where indexing stopped and the chain state there). Indexing is incremental: it
resumes at the cursor after checking that the row before it still has the recorded hash, and
starts from scratch when the history was rewritten or the index is missing or damaged.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from ksearch.errors import LogError
from ksearch.log.history import Cursor, history_path, iter_rows, row_hash

DB = "attempts.db"
ATTEMPT = "attempt"
_BATCH = 20_000
_SCHEMA_VERSION = 2

EVENT_COLUMNS = {"seq": int, "ts": str, "run": str, "kind": str, "payload": str}
ATTEMPT_COLUMNS = {
    "seq": int, "ts": str, "attempt_id": str, "task": str, "target": str, "language": str, "dtype": str,
    "source_hash": str, "parent_id": str, "action_id": str, "status": str, "failure_class": str,
    "reward": float, "speedup": float, "sol_score": float, "unmeasured": str, "gpu": str,
    "compile_s": float, "verify_s": float, "benchmark_s": float, "message": str,
}
FAILURE_COLUMNS = {"seq": int, "attempt_id": str, "failure_class": str, "message": str}
ATTEMPT_INDEXES = [["status", "target"], ["failure_class"], ["target", "reward"], ["action_id"], ["ts"]]


@dataclass
class IndexReport:
    db: Path
    added: int
    total: int
    rebuilt: bool
    seconds: float


def db_path(run_dir: Path) -> Path:
    return Path(run_dir) / DB


def flatten_attempt(seq: int, ts: str, packet: dict) -> dict:
    """The attempts-table row of one attempt event; tolerant of partial packets."""
    cand = packet.get("candidate") or {}
    perf = packet.get("performance") or {}
    unmeasured = packet.get("unmeasured") or {}
    durations = packet.get("durations_s") or {}
    return {
        "seq": seq, "ts": ts, "attempt_id": packet.get("packet_id"), "task": packet.get("task"),
        "target": cand.get("target"), "language": cand.get("language"), "dtype": cand.get("dtype"),
        "source_hash": cand.get("source_hash"), "parent_id": cand.get("parent_id"),
        "action_id": cand.get("action_id"), "status": packet.get("status"),
        "failure_class": packet.get("failure_class"), "reward": packet.get("reward"),
        "speedup": perf.get("speedup_geomean"), "sol_score": perf.get("sol_score"),
        "unmeasured": unmeasured.get("reason"), "gpu": (packet.get("environment") or {}).get("gpu_name"),
        "compile_s": durations.get("compile"), "verify_s": durations.get("verify"),
        "benchmark_s": durations.get("benchmark"), "message": packet.get("message"),
    }


def _create(db: sqlite_utils.Database) -> None:
    db["events"].create(EVENT_COLUMNS, pk="seq")
    db["attempts"].create(ATTEMPT_COLUMNS, pk="seq")
    db["failures"].create(FAILURE_COLUMNS, pk="seq")
    db["_cursor"].create({"id": int, "offset": int, "lineno": int, "next_seq": int, "prev_hash": str,
                          "history_size": int, "schema": int}, pk="id")
    for cols in ATTEMPT_INDEXES:
        db["attempts"].create_index(cols)
    db["failures"].create_index(["failure_class"])
    db["failures"].enable_fts(["message", "failure_class"], create_triggers=False)
    # Running totals kept as rows are indexed, so `log stats` reads a few rows, not a million.
    db["kind_counts"].create({"kind": str, "n": int}, pk="kind")
    db["attempt_summary"].create({"target": str, "status": str, "failure_class": str, "n": int,
                                  "best_reward": float}, pk=("target", "status", "failure_class"))


def _insert(conn: sqlite3.Connection, table: str, columns: dict, rows: list[dict]) -> None:
    # sqlite-utils made the schema; rows here are already flat scalars in column order, and its
    # per-value insert path is 3x slower than executemany on a million-row rebuild.
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    conn.executemany(sql, [tuple(r[c] for c in columns) for r in rows])


def _add_summaries(conn: sqlite3.Connection, events: list[dict], attempts: list[dict]) -> None:
    kinds = Counter(e["kind"] for e in events)
    conn.executemany("INSERT INTO kind_counts (kind, n) VALUES (?, ?) "
                     "ON CONFLICT (kind) DO UPDATE SET n = n + excluded.n", list(kinds.items()))
    groups: dict[tuple, list] = {}
    for a in attempts:
        # '' rather than NULL in key columns: NULLs never conflict, so they would not accumulate.
        key = (a["target"] or "", a["status"] or "", a["failure_class"] or "")
        g = groups.setdefault(key, [0, None])
        g[0] += 1
        if a["reward"] is not None and (g[1] is None or a["reward"] > g[1]):
            g[1] = a["reward"]
    conn.executemany(
        "INSERT INTO attempt_summary (target, status, failure_class, n, best_reward) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (target, status, failure_class) DO UPDATE SET n = n + excluded.n, "
        "best_reward = CASE WHEN best_reward IS NULL OR excluded.best_reward > best_reward "
        "THEN coalesce(excluded.best_reward, best_reward) ELSE best_reward END",
        [(*k, n, best) for k, (n, best) in groups.items()])


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


def _batches(run_dir: Path, cursor: Cursor) -> Iterator[tuple[list[dict], list[dict], list[dict], Cursor]]:
    events: list[dict] = []
    attempts: list[dict] = []
    failures: list[dict] = []
    for line, cursor in iter_rows(run_dir, cursor):
        row = line.row
        seq, ts, payload = row["seq"], row["ts"], row.get("payload") or {}
        is_attempt = row.get("kind") == ATTEMPT
        # Attempt payloads live flattened in `attempts`; the full packet stays in the history.
        events.append({"seq": seq, "ts": ts, "run": row.get("run"), "kind": row.get("kind"),
                       "payload": None if is_attempt else json.dumps(payload, separators=(",", ":"))})
        if is_attempt:
            flat = flatten_attempt(seq, ts, payload)
            attempts.append(flat)
            if flat["status"] != "pass":
                failures.append({"seq": seq, "attempt_id": flat["attempt_id"],
                                 "failure_class": flat["failure_class"], "message": flat["message"] or ""})
        if len(events) >= _BATCH:
            yield events, attempts, failures, cursor
            events, attempts, failures = [], [], []
    yield events, attempts, failures, cursor


def build_index(run_dir: Path, *, rebuild: bool = False) -> IndexReport:
    """Bring attempts.db up to date with history.jsonl, incrementally when it can."""
    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    history = history_path(run_dir)
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
        for events, attempts, failures, cursor in _batches(run_dir, cursor):
            with db.atomic():  # one transaction per batch, cursor included: a crash leaves it consistent
                _insert(conn, "events", EVENT_COLUMNS, events)
                _insert(conn, "attempts", ATTEMPT_COLUMNS, attempts)
                if failures:
                    _insert(conn, "failures", FAILURE_COLUMNS, failures)
                    conn.execute(
                        "INSERT INTO failures_fts (rowid, message, failure_class) "
                        "SELECT rowid, message, failure_class FROM failures WHERE seq >= ?", [failures[0]["seq"]])
                _add_summaries(conn, events, attempts)
                db["_cursor"].upsert({"id": 1, "offset": cursor.offset, "lineno": cursor.lineno,
                                      "next_seq": cursor.next_seq, "prev_hash": cursor.prev_hash,
                                      "history_size": history.stat().st_size, "schema": _SCHEMA_VERSION}, pk="id")
            added += len(events)
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
        raise LogError(f"query failed: {e}; tables are events, attempts, failures, failures_fts") from e
    finally:
        conn.close()
