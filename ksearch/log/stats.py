"""Summaries of a run's index: the rejection histogram first, then pass rate, drift, best scores,
cost and the strategies that moved the best.

Everything here reads the aggregate tables the indexer keeps (attempt_summary, attempt_buckets,
improvements, strategy_stats, totals) or, for a small log, a few thousand attempts rows: never a
scan of a million-row table, never the JSONL. On a 1M-attempt log with the index current,
`log_stats` took 0.23 s (median of 5; `python -m ksearch.selfbench.synthetic_log DIR --bench`,
docs/benchmarks.md).
"""

from __future__ import annotations

import csv
import json
import math
import sqlite3
from pathlib import Path

from ksearch.errors import LogError
from ksearch.log.index import BUCKET, connect_readonly

# Each reads the running totals the indexer keeps, or one end of the events table: O(1) in the log's size.
STATS_QUERIES = {
    "by_status": "SELECT status, sum(n) FROM attempt_summary GROUP BY status ORDER BY 2 DESC",
    "rejections": "SELECT failure_class, sum(n) FROM attempt_summary WHERE failure_class != '' "
    "GROUP BY failure_class ORDER BY 2 DESC",
    "events": "SELECT kind, n FROM kind_counts ORDER BY n DESC",
    "span": "SELECT (SELECT ts FROM events ORDER BY seq LIMIT 1), (SELECT ts FROM events ORDER BY seq DESC LIMIT 1)",
    "totals": "SELECT key, value FROM totals",
    "improvements": "SELECT stream, target, ordinal, id, strategy, score, basis FROM improvements "
    "ORDER BY stream, target, ordinal",
    "strategies": "SELECT strategy, template, action_id, n, passed, best_score, new_bests, gain FROM strategy_stats "
    "ORDER BY gain DESC, best_score DESC, n DESC",
}

HACK_PREFIX = "reward_hack:"
DRIFT_WINDOWS = 20  # windows over the run, unless a window size is given
DRIFT_MIN_WINDOW = 10  # attempts per window at least (smaller windows are noise)
DRIFT_Z = 3.0  # a jump is flagged when a two-proportion z-test says |z| >= this ...
DRIFT_MIN_DELTA = 0.15  # ... and the accept rate moved at least this much (absolute)
HACK_MIN_DELTA = 0.05  # ... or a reward-hack class's share rose at least this much
DRIFT_BASELINE = 3  # a window is compared with the pooled windows just before it (at most this many)


def log_stats(run_dir: Path, *, window: int | None = None, top: int = 10) -> dict:
    """Attempts, pass rate, rejection histogram by failure class, accept-rate drift, best score over
    evaluations per target, cost and top strategies by improvement, from the run's index.

    `window`: attempts per drift window (default: the run split in about DRIFT_WINDOWS windows, a
    multiple of the index's bucket size on big logs)."""
    conn = connect_readonly(run_dir)
    try:
        return stats_of(conn, Path(run_dir).name, window=window, top=top)
    finally:
        conn.close()


def stats_of(conn: sqlite3.Connection, run: str, *, window: int | None = None, top: int = 10) -> dict:
    """log_stats on an open index connection (the report reads its other tables through the same one)."""
    res = {name: conn.execute(sql).fetchall() for name, sql in STATS_QUERIES.items()}
    by_status = dict(res["by_status"])
    attempts = sum(by_status.values())
    totals = dict(res["totals"])
    return {
        "run": run,
        "attempts": attempts,
        # attempts are packets: one per target of each search evaluation (a `step`), plus the best
        # kernel's packets for the other targets at the end of the run (final audits)
        "search_evaluations": int(totals.get("steps", 0)),
        "final_audits": int(totals.get("final_audits", 0)),
        "by_status": by_status,
        "pass_rate": (by_status.get("pass", 0) / attempts) if attempts else None,
        "rejections": dict(res["rejections"]),
        "events": dict(res["events"]),
        "first_ts": res["span"][0][0],
        "last_ts": res["span"][0][1],
        "drift": _drift(conn, attempts, window),
        "best_per_target": _best_per_target(res["improvements"], totals),
        "cost": _cost(totals),
        "top_strategies": [_strategy(r) for r in res["strategies"][:top]],
    }


def _strategy(r: tuple) -> dict:
    strategy, template, action, n, passed, best, new_bests, gain = r
    return {
        "strategy": strategy,
        "template": template,
        "action_id": action,
        "attempts": n,
        "passed": passed,
        "pass_rate": passed / n if n else None,
        "best_score": best,
        "new_bests": new_bests,
        "gain": gain,
    }


def _cost(totals: dict) -> dict:
    return {
        "llm_usd": totals.get("llm_usd", 0.0),
        "llm_calls": int(totals.get("llm_calls", 0)),
        "llm_unpriced_calls": int(totals.get("llm_unpriced_calls", 0)),
        "prompt_tokens": int(totals.get("prompt_tokens", 0)),
        "completion_tokens": int(totals.get("completion_tokens", 0)),
        "gpu_s": totals.get("gpu_s", 0.0),
        "eval_s": totals.get("eval_s", 0.0),
        "compile_s": totals.get("compile_s", 0.0),
    }


def _best_per_target(rows: list[tuple], totals: dict) -> dict:
    """Per target, the curve of new bests: the steps' scores (what the search ranks by, measured or
    estimated) and, where timed, the attempts' measured rewards."""
    out: dict = {}
    evaluations = {"step": int(totals.get("steps", 0)), "attempt": int(totals.get("attempts", 0))}
    for stream, target, ordinal, ident, strategy, score, basis in rows:
        key = "score" if stream == "step" else "reward"
        t = out.setdefault(target or "?", {})
        curve = t.setdefault(
            key,
            {
                "evaluations": evaluations[stream],
                "best": None,
                "basis": basis,
                "by": None,
                "strategy": None,
                "improvements": [],
            },
        )
        curve["improvements"].append([ordinal + 1, score])
        curve.update(best=score, basis=basis, by=ident, strategy=strategy, evals_to_best=ordinal + 1)
    return out


# ---------------------------------------------------------------- drift


def _windows(conn: sqlite3.Connection, attempts: int, window: int | None) -> tuple[int, list[dict]]:
    """(window size, per window: first attempt, n, passed, reward-hack counts by class)."""
    if attempts == 0:
        return 0, []
    small = attempts <= BUCKET * DRIFT_WINDOWS
    if window is None:
        window = max(DRIFT_MIN_WINDOW, math.ceil(attempts / DRIFT_WINDOWS))
        if not small:
            window = BUCKET * math.ceil(window / BUCKET)
    if window < 1:
        raise LogError(f"a drift window needs at least 1 attempt, got {window}")
    if small or window % BUCKET:
        # A few thousand attempts at most here (or an odd window asked for): read them by ordinal.
        sql = (
            "SELECT ordinal / ? AS w, coalesce(status, ''), coalesce(failure_class, ''), count(*) "
            "FROM attempts GROUP BY w, 2, 3 ORDER BY w"
        )
        rows = conn.execute(sql, [window]).fetchall()
    else:
        sql = (
            "SELECT bucket / ? AS w, status, failure_class, sum(n) FROM attempt_buckets "
            "GROUP BY w, status, failure_class ORDER BY w"
        )
        rows = conn.execute(sql, [window // BUCKET]).fetchall()
    wins: dict[int, dict] = {}
    for w, status, failure, n in rows:
        d = wins.setdefault(w, {"start": w * window, "n": 0, "passed": 0, "hacks": {}})
        d["n"] += n
        if status == "pass":
            d["passed"] += n
        if failure.startswith(HACK_PREFIX):
            d["hacks"][failure] = d["hacks"].get(failure, 0) + n
    return window, [wins[w] for w in sorted(wins)]


def _z(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-proportion z statistic of k2/n2 against k1/n1 (0 where it is undefined)."""
    if not n1 or not n2:
        return 0.0
    p = (k1 + k2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    return 0.0 if se == 0 else (k2 / n2 - k1 / n1) / se


def _drift(conn: sqlite3.Connection, attempts: int, window: int | None) -> dict:
    size, wins = _windows(conn, attempts, window)
    classes = sorted({c for w in wins for c in w["hacks"]})
    events: list[dict] = []
    open_events: dict[str, dict] = {}
    for i, w in enumerate(wins):
        base = wins[max(0, i - DRIFT_BASELINE) : i]
        bn = sum(b["n"] for b in base)
        metrics = [("accept_rate", sum(b["passed"] for b in base), w["passed"], DRIFT_MIN_DELTA, False)]
        metrics += [
            (c, sum(b["hacks"].get(c, 0) for b in base), w["hacks"].get(c, 0), HACK_MIN_DELTA, True)
            for c in classes
        ]
        for name, bk, k, min_delta, rises_only in metrics:
            before, after = (bk / bn if bn else None), k / w["n"]
            z = _z(bk, bn, k, w["n"])
            delta = 0.0 if before is None else after - before
            jumped = (
                before is not None
                and abs(z) >= DRIFT_Z
                and abs(delta) >= min_delta
                and (delta > 0 or not rises_only)
            )
            if not jumped:
                open_events.pop(name, None)
                continue
            if name in open_events:  # the same jump seen from the next window: one event
                open_events[name]["windows"] += 1
                continue
            ev = {
                "metric": name,
                "window": i,
                "start_attempt": w["start"],
                "before": before,
                "after": after,
                "z": round(z, 2),
                "windows": 1,
            }
            events.append(ev)
            open_events[name] = ev
    return {
        "window": size,
        "windows": [
            {
                "start": w["start"],
                "n": w["n"],
                "accept_rate": w["passed"] / w["n"],
                "reward_hacks": {c: w["hacks"][c] / w["n"] for c in w["hacks"]},
            }
            for w in wins
        ],
        "events": events,
        "flagged": bool(events),
    }


# ---------------------------------------------------------------- several runs


def runs_stats(run_dirs: list[Path], *, window: int | None = None, top: int = 10) -> dict:
    """Each run's stats and their combination: counts summed, histograms merged, best per target the
    best of the runs, strategies merged by name. Drift stays per run (windows of different runs do
    not line up)."""
    runs = [log_stats(d, window=window, top=1_000_000) for d in run_dirs]
    combined: dict = {
        "runs": len(runs),
        "attempts": sum(r["attempts"] for r in runs),
        "search_evaluations": sum(r["search_evaluations"] for r in runs),
        "final_audits": sum(r["final_audits"] for r in runs),
        "by_status": {},
        "rejections": {},
        "best_per_target": {},
        "cost": {},
        "top_strategies": [],
    }
    for r in runs:
        for key in ("by_status", "rejections"):
            for k, v in r[key].items():
                combined[key][k] = combined[key].get(k, 0) + v
        for k, v in r["cost"].items():
            combined["cost"][k] = combined["cost"].get(k, 0) + v
        for target, curves in r["best_per_target"].items():
            for kind, c in curves.items():
                mine = combined["best_per_target"].setdefault(target, {}).get(kind)
                if mine is None or (c["best"] is not None and c["best"] > mine["best"]):
                    combined["best_per_target"][target][kind] = {
                        "best": c["best"],
                        "basis": c["basis"],
                        "by": c["by"],
                        "run": r["run"],
                    }
    combined["pass_rate"] = (
        combined["by_status"].get("pass", 0) / combined["attempts"] if combined["attempts"] else None
    )
    combined["rejections"] = dict(sorted(combined["rejections"].items(), key=lambda kv: -kv[1]))
    merged: dict[str, dict] = {}
    for r in runs:
        for s in r["top_strategies"]:
            m = merged.setdefault(
                s["strategy"],
                {
                    "strategy": s["strategy"],
                    "attempts": 0,
                    "passed": 0,
                    "best_score": None,
                    "new_bests": 0,
                    "gain": 0.0,
                    "runs": 0,
                },
            )
            m["attempts"] += s["attempts"]
            m["passed"] += s["passed"]
            m["new_bests"] += s["new_bests"]
            m["gain"] += s["gain"]
            m["runs"] += 1
            if s["best_score"] is not None and (m["best_score"] is None or s["best_score"] > m["best_score"]):
                m["best_score"] = s["best_score"]
    combined["top_strategies"] = sorted(merged.values(), key=lambda m: (-m["gain"], -(m["best_score"] or 0)))[
        :top
    ]
    for r in runs:
        r["top_strategies"] = r["top_strategies"][:top]
    return {"runs": runs, "combined": combined}


EXPORT_FORMATS = ("jsonl", "csv", "parquet")
EXPORT_TABLES = ("attempts", "events", "failures", "steps", "proposer_calls")


_FORMAT_OF_SUFFIX = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}


def export_format(out: Path, fmt: str | None) -> str:
    """The format to write `out` in: `fmt` when given, else the one its extension names. A format
    that contradicts the extension (JSON lines into x.parquet) is refused, not written."""
    implied = _FORMAT_OF_SUFFIX.get(Path(out).suffix.lower())
    if fmt is None:
        if implied is None:
            raise LogError(
                f"cannot tell the format of {out} from its extension; name the file .jsonl, .csv or "
                f".parquet, or pass --format ({', '.join(EXPORT_FORMATS)})"
            )
        return implied
    if implied is not None and implied != fmt:
        raise LogError(f"--format {fmt} contradicts {out}'s extension ({implied}); drop --format or rename")
    return fmt


def export_table(run_dir: Path, out: Path, fmt: str | None = None, table: str = "attempts") -> int:
    """Write one index table to JSONL, CSV or Parquet (Parquet needs pyarrow); returns rows written.
    Without `fmt`, the format is taken from `out`'s extension."""
    fmt = export_format(out, fmt)
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
