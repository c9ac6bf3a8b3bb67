"""`ksearch log serve RUN_DIR`: browse a run's attempts.db in Datasette (the `browse` extra).

The metadata describes every table and the main columns, and adds canned queries: failures by
class, best per target, attempts of one strategy (`:strategy`), slowest compiles. Each canned
query also answers as JSON at /attempts/<name>.json (add `?_shape=array` for a plain list).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from ksearch.errors import KsearchError
from ksearch.log.index import build_index, db_path

DATABASE = "attempts"  # datasette names a database after its file

TABLES = {
    "events": (
        "Every row of history.jsonl (attempt payloads are in `attempts`).",
        {
            "seq": "row number in the hash-chained history",
            "kind": "run_start, attempt, step, wm_edit, ...",
            "payload": "the row's payload as JSON (NULL for attempts)",
        },
    ),
    "attempts": (
        "One row per evaluated attempt (an EvidencePacket for one target), flattened.",
        {
            "attempt_id": "packet id: <evaluation>@<target>",
            "ordinal": "attempt number in the run, from 0",
            "status": "pass, fail, error or skipped",
            "failure_class": "catalog class (ksearch failures)",
            "reward": "reward of a timed, passing attempt",
            "speedup": "geomean speedup vs the baseline",
            "sol_score": "geomean fraction of speed of light",
            "compile_s": "compile seconds for this target",
            "eval_s": "verify + benchmark seconds, counted once per evaluation",
            "gpu_s": "eval_s when evaluated on a GPU",
            "offset": "byte offset of the row in history.jsonl",
            "action_id": "world-model action the candidate implements",
        },
    ),
    "failures": ("Attempts that did not pass, with their error text (full-text search: failures_fts).", {}),
    "steps": (
        "One row per candidate as the search loop saw it.",
        {
            "strategy": "the template, else the world-model action",
            "score": "what the search ranks by",
            "score_basis": "reward:<target> (measured) or static-estimate:<target> (a model)",
            "knobs": "the template's knob setting (JSON)",
            "blob": "source, content-addressed under blobs/",
        },
    ),
    "proposer_calls": (
        "Proposer calls: tokens, dollars, latency.",
        {"usd": "NULL when the model has no price"},
    ),
    "attempt_summary": ("Running totals per (target, status, failure class).", {}),
    "attempt_buckets": ("Running totals per 64 consecutive attempts: the accept-rate drift series.", {}),
    "improvements": (
        "Every new best score: stream 'step' (search scores) or 'attempt' (measured rewards).",
        {},
    ),
    "strategy_stats": (
        "Per strategy: attempts, passes, best score, new bests and the gain they brought.",
        {},
    ),
    "strategy_failures": ("Per strategy and failure class: how often it failed that way.", {}),
    "template_settings": (
        "Per template and knob setting tried: steps, passes, best score (the frontier).",
        {},
    ),
    "audit_checks": ('Per audit or anti-hack check: attempts by outcome, "ok" or "failed (<severity>)".', {}),
    "totals": ("Run totals: attempts, steps, compile/eval/GPU seconds, LLM calls, dollars and tokens.", {}),
    "kind_counts": ("Rows per kind.", {}),
}

QUERIES = {
    "failures_by_class": {
        "title": "Failures by class",
        "description": "The rejection histogram: non-passing attempts per failure class, with an example.",
        "sql": "SELECT failure_class, count(*) AS attempts, min(attempt_id) AS example_attempt, "
        "substr(min(message), 1, 200) AS example_message FROM attempts WHERE status != 'pass' "
        "GROUP BY failure_class ORDER BY attempts DESC",
    },
    "best_per_target": {
        "title": "Best per target",
        "description": "Per target: the best search score (steps) and the best measured reward (attempts).",
        "sql": "SELECT target, stream, max(score) AS best, "
        "(SELECT id FROM improvements j WHERE j.stream = i.stream AND j.target = i.target "
        "ORDER BY score DESC LIMIT 1) AS by_id, max(basis) AS basis, count(*) AS new_bests "
        "FROM improvements i GROUP BY target, stream ORDER BY target, stream",
    },
    "attempts_of_strategy": {
        "title": "Attempts of one strategy",
        "description": "Every candidate of one strategy (a template id such as rmsnorm/persistent, or an action id).",
        "sql": "SELECT ordinal + 1 AS evaluation, candidate, knobs, passed, score, score_basis, failure_class, "
        "packet_id, message FROM steps WHERE strategy = :strategy ORDER BY ordinal",
    },
    "slowest_compiles": {
        "title": "Slowest compiles",
        "description": "The 50 attempts that took longest to compile, with their target and verdict.",
        "sql": "SELECT attempt_id, target, compile_s, status, failure_class, action_id FROM attempts "
        "WHERE compile_s IS NOT NULL ORDER BY compile_s DESC LIMIT 50",
    },
}


def datasette_metadata(run_dir: Path) -> dict:
    """The metadata.json Datasette is started with: table descriptions and the canned queries."""
    tables = {
        name: {"description": desc, **({"columns": cols} if cols else {})}
        for name, (desc, cols) in TABLES.items()
    }
    return {
        "title": f"ksearch run {Path(run_dir).name}",
        "description": "The attempt index of one ksearch run (attempts.db, rebuilt from history.jsonl).",
        "databases": {DATABASE: {"tables": tables, "queries": QUERIES}},
    }


def serve_args(run_dir: Path, metadata: Path, port: int, host: str) -> list[str]:
    return ["serve", str(db_path(run_dir)), "--metadata", str(metadata), "--host", host, "--port", str(port)]


def serve(run_dir: Path, port: int = 8001, host: str = "127.0.0.1") -> None:
    """Index the run, then serve it with Datasette until interrupted (blocks)."""
    try:
        from datasette.cli import cli as datasette_cli
    except ImportError as e:
        raise KsearchError("ksearch log serve needs Datasette: pip install 'ksearch[browse]'") from e
    build_index(run_dir)
    with tempfile.TemporaryDirectory(prefix="ksearch-serve-") as tmp:
        meta = Path(tmp) / "metadata.json"
        meta.write_text(json.dumps(datasette_metadata(run_dir), indent=2))
        print(
            f"serving {db_path(run_dir)} at http://{host}:{port}/{DATABASE} (Ctrl-C stops)", file=sys.stderr
        )
        datasette_cli.main(
            args=serve_args(run_dir, meta, port, host), prog_name="datasette", standalone_mode=False
        )
