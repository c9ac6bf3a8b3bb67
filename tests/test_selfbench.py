"""The tools that measure ksearch itself (ksearch/selfbench): reachable from the CLI, and the cheap
ones run end to end on a tiny input."""

from __future__ import annotations

import ast
from pathlib import Path

from typer.testing import CliRunner

from ksearch.cli import app
from ksearch.selfbench.compile_bench import write_variants
from ksearch.selfbench.log_bench import bench_log


def test_bench_commands_are_listed() -> None:
    result = CliRunner().invoke(app, ["bench", "--help"])
    assert result.exit_code == 0, result.output
    for command in ("log", "compile", "harness"):
        assert command in result.output


def test_log_bench_measures_a_tiny_log(tmp_path: Path) -> None:
    res = bench_log(tmp_path, rows=300, single=5, batch=100, query_repeats=1)
    assert res["rows"] == 300
    assert res["single_rows_per_s"] > 0 and res["batched_rows_per_s"] > 0
    assert res["history_mib"] > 0 and res["index_build_s"] > 0
    queries = [k for k in res if k.startswith("query_")]
    assert queries and all(res[k] >= 0 for k in queries)


def test_compile_bench_variants_are_distinct_python(tmp_path: Path) -> None:
    paths = write_variants(tmp_path, count=12)
    sources = [p.read_text() for p in paths]
    assert len(paths) == 12 and len(set(sources)) == 12
    for source in sources:
        ast.parse(source)
