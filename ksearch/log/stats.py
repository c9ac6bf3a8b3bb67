"""Summaries of a run's index: the rejection histogram first, then pass rate and best scores."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ksearch.errors import LogError
from ksearch.log.index import connect_readonly

# Each reads the running totals the indexer keeps, or one end of the events table: O(1) in the log's size.
STATS_QUERIES = {
    "by_status": "SELECT status, sum(n) FROM attempt_summary GROUP BY status ORDER BY 2 DESC",
    "rejections": "SELECT failure_class, sum(n) FROM attempt_summary WHERE failure_class != '' "
                  "GROUP BY failure_class ORDER BY 2 DESC",
    "best_per_target": "SELECT target, max(best_reward) FROM attempt_summary WHERE status = 'pass' GROUP BY target",
    "events": "SELECT kind, n FROM kind_counts ORDER BY n DESC",
    "span": "SELECT (SELECT ts FROM events ORDER BY seq LIMIT 1), (SELECT ts FROM events ORDER BY seq DESC LIMIT 1)",
}


def log_stats(run_dir: Path) -> dict:
    """Attempts, pass rate, rejection histogram by failure class, best reward per target, event counts."""
    conn = connect_readonly(run_dir)
    try:
        res = {name: conn.execute(sql).fetchall() for name, sql in STATS_QUERIES.items()}
    finally:
        conn.close()
    by_status = dict(res["by_status"])
    attempts = sum(by_status.values())
    return {
        "attempts": attempts,
        "by_status": by_status,
        "pass_rate": (by_status.get("pass", 0) / attempts) if attempts else None,
        "rejections": dict(res["rejections"]),
        "best_reward_per_target": dict(res["best_per_target"]),
        "events": dict(res["events"]),
        "first_ts": res["span"][0][0],
        "last_ts": res["span"][0][1],
    }


EXPORT_FORMATS = ("jsonl", "csv", "parquet")
EXPORT_TABLES = ("attempts", "events", "failures")


def export_table(run_dir: Path, out: Path, fmt: str = "jsonl", table: str = "attempts") -> int:
    """Write one index table to JSONL, CSV or Parquet (Parquet needs pyarrow); returns rows written."""
    if fmt not in EXPORT_FORMATS:
        raise LogError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    if table not in EXPORT_TABLES:
        raise LogError(f"unknown table {table!r}; use one of {', '.join(EXPORT_TABLES)}")
    if fmt == "parquet":
        try:
            import pyarrow
            import pyarrow.parquet
        except ImportError as e:
            raise LogError("Parquet export needs pyarrow: pip install 'ksearch[parquet]'") from e
    conn = connect_readonly(run_dir)
    try:
        cur = conn.execute(f"SELECT * FROM {table} ORDER BY seq")  # table is one of EXPORT_TABLES
        cols = [d[0] for d in cur.description]
        out = Path(out)
        n = 0
        if fmt == "parquet":
            rows = cur.fetchall()
            n = len(rows)
            data = {c: [r[i] for r in rows] for i, c in enumerate(cols)}
            pyarrow.parquet.write_table(pyarrow.table(data), out)
            return n
        with open(out, "w", newline="") as f:
            writer = csv.writer(f) if fmt == "csv" else None
            if writer:
                writer.writerow(cols)
            for r in cur:
                if writer:
                    writer.writerow(r)
                else:
                    f.write(json.dumps(dict(zip(cols, r))) + "\n")
                n += 1
        return n
    finally:
        conn.close()
