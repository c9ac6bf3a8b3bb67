"""Mining the attempt log: stats (with drift), memory and frontier, the HTML report in a real browser,
Datasette's canned queries, and replaying an attempt.

`tests/fixtures/mining_run` is the first 81 rows of a real quickstart run (16 candidates on CPU, one
of them failing with output_not_written) with their source blobs; synthetic logs come from
ksearch.selfbench.synthetic_log."""

import json
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from chromium import needs_chromium, probe_in_chromium
from clitools import ksearch

from ksearch.context.tokens import count_tokens
from ksearch.evidence import FailureClass
from ksearch.log import History, build_index, iter_rows, log_stats
from ksearch.log.index import BUCKET, connect_readonly, db_path
from ksearch.log.rows import Step
from ksearch.propose.memory import (
    FRONTIER,
    MEMORY,
    distill,
    load_memory,
    memory_text,
    read_frontier,
)
from ksearch.selfbench.synthetic_log import write_synthetic_run

FIXTURE = Path(__file__).parent / "fixtures" / "mining_run"


@pytest.fixture
def real_run(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    return run


def rows_of(run, kind):
    return [line.row["payload"] for line, _ in iter_rows(run) if line.row["kind"] == kind]


AGGREGATES = (
    "kind_counts",
    "attempt_summary",
    "attempt_buckets",
    "improvements",
    "strategy_stats",
    "strategy_failures",
    "template_settings",
    "audit_checks",
    "totals",
)


def aggregates(run: Path) -> dict[str, list[tuple]]:
    """Every aggregate table of the run's index, rows sorted."""
    conn = sqlite3.connect(db_path(run))
    try:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in AGGREGATES}
    finally:
        conn.close()


def assert_same_aggregates(inc: dict, full: dict) -> None:
    """Equal tables; floats within rounding (sums in another order)."""
    for table in AGGREGATES:
        assert inc[table] == [
            tuple(pytest.approx(v) if isinstance(v, float) else v for v in row) for row in full[table]
        ], table


# ---------------------------------------------------------------- stats


def test_stats_on_a_real_run_agree_with_the_history(real_run):
    s = log_stats(real_run)
    attempts, steps = rows_of(real_run, "attempt"), rows_of(real_run, "step")
    assert s["attempts"] == len(attempts) == 16
    assert s["rejections"] == dict(Counter(a["failure_class"] for a in attempts if a["status"] != "pass"))
    assert s["rejections"] == {"output_not_written": 1, "audit:register_spill": 1}
    # best score over evaluations: the same curve the search module draws
    from ksearch.analysis.curve import best_curve

    curve = best_curve(real_run)
    h100 = s["best_per_target"]["h100"]["score"]
    assert h100["best"] == curve.best and h100["improvements"] == [list(i) for i in curve.improvements]
    assert h100["basis"] == "static-estimate:h100" and h100["evaluations"] == len(steps)
    # top strategies: the one that set the best is credited
    best_step = max((st for st in steps if st["score"] is not None), key=lambda st: st["score"])
    top = {t["strategy"]: t for t in s["top_strategies"]}
    assert top[best_step["template"]]["best_score"] == best_step["score"]
    assert sum(t["attempts"] for t in s["top_strategies"]) == len(steps)
    assert sum(t["new_bests"] for t in s["top_strategies"]) == len(curve.improvements)
    # cost: compile seconds per packet, evaluation seconds once per evaluation, no GPU on this run
    assert s["cost"]["compile_s"] == pytest.approx(sum(a["durations_s"]["compile"] for a in attempts))
    assert s["cost"]["eval_s"] == pytest.approx(sum(a["durations_s"].get("verify", 0) for a in attempts))
    assert s["cost"]["gpu_s"] == 0 and s["cost"]["llm_calls"] == len(rows_of(real_run, "proposer_call"))


def test_stats_cli_over_several_runs(real_run, tmp_path):
    syn = write_synthetic_run(tmp_path / "syn", 500, seed=3)
    one = ksearch("log", "stats", real_run)
    assert one.returncode == 0, one.stderr
    assert "audit:register_spill" in one.stdout and "top strategies by improvement" in one.stdout
    both = ksearch("log", "stats", real_run, syn, "--json")
    assert both.returncode == 0, both.stderr
    res = json.loads(both.stdout)
    a, b = log_stats(real_run), log_stats(syn)
    c = res["combined"]
    assert c["runs"] == 2 and c["attempts"] == a["attempts"] + b["attempts"]
    for cls in set(a["rejections"]) | set(b["rejections"]):
        assert c["rejections"][cls] == a["rejections"].get(cls, 0) + b["rejections"].get(cls, 0)
    assert c["cost"]["llm_usd"] == pytest.approx(50 * 0.002)  # synthetic: one priced call per 10 candidates
    assert c["best_per_target"]["h100"]["reward"]["run"] == "syn"  # only the synthetic run was timed
    assert c["best_per_target"]["h100"]["score"]["best"] == max(
        a["best_per_target"]["h100"]["score"]["best"], b["best_per_target"]["h100"]["score"]["best"]
    )
    assert [r["run"] for r in res["runs"]] == ["run", "syn"]


def test_drift_flags_an_accept_rate_jump_halfway(tmp_path):
    jump = write_synthetic_run(tmp_path / "jump", 3000, accept=0.7, jump_at=1500, accept_after=0.3, seed=1)
    d = log_stats(jump)["drift"]
    assert d["window"] % BUCKET == 0  # a big log: windows made of the index's buckets
    events = [e for e in d["events"] if e["metric"] == "accept_rate"]
    assert len(events) == 1 and d["flagged"]
    assert abs(events[0]["start_attempt"] - 1500) <= d["window"]
    assert events[0]["before"] > 0.6 and events[0]["after"] < 0.4
    # the bucketed windows are exactly what a scan of the attempts table gives
    conn = sqlite3.connect(db_path(jump))
    direct = conn.execute(
        "SELECT ordinal / ?, count(*), sum(status = 'pass') FROM attempts GROUP BY 1 ORDER BY 1",
        [d["window"]],
    ).fetchall()
    conn.close()
    assert [(w["n"], round(w["accept_rate"] * w["n"])) for w in d["windows"]] == [
        (n, k) for _, n, k in direct
    ]

    steady = write_synthetic_run(tmp_path / "steady", 3000, accept=0.5, seed=1)
    assert log_stats(steady)["drift"]["events"] == []
    assert log_stats(steady, window=100)["drift"]["events"] == []  # an odd window reads the attempts table


def test_drift_flags_a_reward_hack_class_appearing(tmp_path):
    run = write_synthetic_run(tmp_path / "hack", 2000, accept=0.6, hack_from=1200, hack_rate=0.25, seed=2)
    d = log_stats(run, window=100)["drift"]
    events = [e for e in d["events"] if e["metric"] == FailureClass.REWARD_HACK_STREAM.value]
    assert len(events) == 1 and events[0]["start_attempt"] == 1200 and events[0]["before"] == 0.0


def test_incremental_aggregates_equal_a_rebuild(tmp_path):
    run = tmp_path / "inc"
    write_synthetic_run(run, 700, seed=4)
    build_index(run)
    write_synthetic_run(run, 900, seed=5)  # appended: a second part of the same log
    inc = log_stats(run)
    inc_tables = aggregates(run)
    build_index(run, rebuild=True)
    full = log_stats(run)
    assert_same_aggregates(inc_tables, aggregates(run))  # knob settings recur across the parts here
    for key in ("attempts", "by_status", "rejections", "drift", "best_per_target"):
        assert inc[key] == full[key], key
    assert inc["cost"] == pytest.approx(full["cost"])  # sums in another order
    assert len(inc["top_strategies"]) == len(full["top_strategies"])
    for a, b in zip(inc["top_strategies"], full["top_strategies"]):
        assert a == {k: pytest.approx(v) if isinstance(v, float) else v for k, v in b.items()}
    assert inc["attempts"] == 1600


def _tables_read(conn: sqlite3.Connection, call) -> set[str]:
    """The tables SQLite is asked to read from while `call()` runs (its authorizer sees every column read)."""
    seen: set[str] = set()

    def authorize(action, table, column, db, trigger):
        if action == sqlite3.SQLITE_READ and table:
            seen.add(table)
        return sqlite3.SQLITE_OK

    conn.set_authorizer(authorize)
    try:
        call()
    finally:
        conn.set_authorizer(None)
    return seen


def test_stats_read_aggregates_not_the_log(tmp_path):
    from ksearch.log.stats import stats_of

    run = write_synthetic_run(tmp_path / "big", 20_000, seed=6)
    build_index(run)
    t = time.perf_counter()
    s = log_stats(run)
    elapsed = time.perf_counter() - t
    assert s["attempts"] == 20_000
    assert elapsed < 1.0, f"log_stats took {elapsed:.2f} s on 20k attempts; it should read aggregate tables"
    # what it reads, not only how fast: no per-attempt, per-step or per-call table on a big log
    # (events only for its first and last timestamp, through the primary key)
    row_tables = {"attempts", "steps", "proposer_calls", "failures"}
    conn = connect_readonly(run)
    try:
        assert not _tables_read(conn, lambda: stats_of(conn, run.name)) & row_tables
        # the check sees a per-attempt read: a window that is no multiple of BUCKET reads `attempts`
        assert "attempts" in _tables_read(conn, lambda: stats_of(conn, run.name, window=BUCKET + 1))
    finally:
        conn.close()


# ---------------------------------------------------------------- memory


def test_distill_memory_and_frontier_of_a_real_run(real_run):
    proc = ksearch("log", "distill", real_run)
    assert proc.returncode == 0, proc.stderr
    m = load_memory(real_run)
    assert m is not None and m.task == "rmsnorm" and m.primary == "h100"
    steps = rows_of(real_run, "step")
    assert m.evaluations == len(steps) and m.passed == sum(st["passed"] for st in steps)
    best = max((st for st in steps if st["score"] is not None), key=lambda st: st["score"])
    assert m.best.candidate == best["candidate"] and m.best.packet_id == best["packet_id"]
    # every new best is evidence of a proven strategy, with its packet id
    evidence = {e.candidate: (f.strategy, e) for f in m.proven for e in f.evidence}
    assert best["candidate"] in evidence
    step_by_cand = {st["candidate"]: st for st in steps}
    for cand, (strategy, e) in evidence.items():
        assert step_by_cand[cand]["template"] == strategy and step_by_cand[cand]["packet_id"] == e.packet_id
    # frontier: every rmsnorm template, tried settings counted from the steps
    from ksearch.propose.templates import templates_for

    frontier = read_frontier(real_run)
    rows = {r["template"]: r for r in frontier if not r["knob"]}
    assert set(rows) == {t.id for t in templates_for("rmsnorm")}
    for t in templates_for("rmsnorm"):
        tried = {json.dumps(st["knobs"], sort_keys=True) for st in steps if st["template"] == t.id}
        assert int(rows[t.id]["tried"]) == len(tried)
        assert int(rows[t.id]["tried"]) + int(rows[t.id]["untried"]) == len(t.settings())
        assert rows[t.id]["status"] == ("untried" if not tried else "open")
    assert rows["rmsnorm/multi_row"]["status"] == "untried"
    knob_rows = [r for r in frontier if r["template"] == "rmsnorm/row_block" and r["knob"] == "num_warps"]
    assert {r["value"] for r in knob_rows} == {json.dumps(v) for v in ("auto", 1, 2, 4, 8, 16)}


def test_dead_ends_and_updates(tmp_path):
    run = write_synthetic_run(
        tmp_path / "dead", 400, seed=7, dead={"synth/t1": FailureClass.NUMERICAL_MISMATCH}
    )
    m = distill(run)
    dead = {d.strategy: d for d in m.dead_ends}
    assert "synth/t1" in dead
    assert (
        dead["synth/t1"].dominant_failure_class == "numerical_mismatch"
        and dead["synth/t1"].dominant_share == 1.0
    )
    assert dead["synth/t1"].failures == dead["synth/t1"].attempts >= 3
    assert "synth/t1" not in {f.strategy for f in m.proven}
    assert (run / MEMORY).is_file() and (run / FRONTIER).is_file()
    # a search calls distill after each visit: new rows show up
    History(run).append(
        Step(
            candidate="cX",
            template="synth/t1",
            knobs={},
            passed=False,
            score=None,
            failure_class="numerical_mismatch",
            packet_id=None,
        )
    )
    m2 = distill(run)
    assert m2.evaluations == m.evaluations + 1
    assert {d.strategy: d for d in m2.dead_ends}["synth/t1"].failures == dead["synth/t1"].failures + 1
    assert load_memory(run) == m2


def test_memory_text_fits_its_budget(real_run, tmp_path):
    run = write_synthetic_run(tmp_path / "t", 300, seed=8, dead={"synth/t2": FailureClass.COMPILE_ERROR})
    for r in (real_run, run):
        m = distill(r)
        full = memory_text(m, 10_000)
        assert "Proven" in full and full.splitlines()[0].startswith("Run memory")
        for budget in (20, 60, 150, 400):
            text = memory_text(m, budget)
            assert count_tokens(text) <= budget
            if budget >= 150:  # room for the header and facts: a cut that dropped everything would pass above
                assert text.startswith("Run memory") and "Proven" in text
        assert memory_text(m, 0) == "" and memory_text(None, 500) == ""
    assert "Dead ends" in full and "synth/t2" in full  # the synthetic one has a dead end
    assert "Frontier" in memory_text(distill(real_run), 10_000)


# ---------------------------------------------------------------- report

_PROBE = """<script>
window.__errs = [];
window.addEventListener('error', function (e) { __errs.push(String(e.message || e.type)); }, true);
var _ce = console.error; console.error = function () { __errs.push(Array.from(arguments).join(' ')); };
window.addEventListener('load', function () {
  var imgs = Array.from(document.images).map(function (i) {
    return {alt: i.alt, w: i.naturalWidth, h: i.naturalHeight, complete: i.complete}; });
  var pre = document.createElement('pre'); pre.id = 'ksearch-probe';
  pre.textContent = JSON.stringify({imgs: imgs, errors: __errs}); document.body.appendChild(pre);
});
</script>"""


@needs_chromium
def test_report_renders_in_headless_chromium(real_run, tmp_path):
    out = tmp_path / "report.html"
    proc = ksearch("report", real_run, "--out", out)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text(encoding="utf-8")
    assert 'src="http' not in text and "<link" not in text  # self-contained
    for needle in (
        "Best score so far",
        "Rejections",
        "World model",
        "Top kernels",
        "Audit verdicts",
        "Cost",
        "output_not_written",
        "Speedups and SOL fractions per target",
    ):
        assert needle in text, needle
    probe, console = probe_in_chromium(out, tmp_path, _PROBE)
    assert probe["errors"] == [] and console == []
    alts = {i["alt"]: i for i in probe["imgs"]}
    assert {"best-so-far curve", "rejection histogram", "accept rate per window"} <= set(alts)
    assert "world-model tree" not in alts, "the tree is inline SVG (tests/test_report_page.py), not an image"
    for img in probe["imgs"]:
        assert img["complete"] and img["w"] > 100 and img["h"] > 50, img
    # the probe does see a figure that fails to decode
    broken = tmp_path / "broken.html"
    broken.write_text(
        re.sub(r'(alt="rejection histogram" src="data:image/png;base64,)[^"]{200}', r"\1AAAA", text, count=1),
        encoding="utf-8",
    )
    probe, _ = probe_in_chromium(broken, tmp_path, _PROBE)
    assert {i["alt"]: i["w"] for i in probe["imgs"]}["rejection histogram"] == 0


def _indexed_in_two_parts(run: Path, tmp_path: Path, split: int = 40) -> Path:
    """A copy of `run`'s history indexed after its first `split` lines, then again after the rest."""
    lines = (run / "history.jsonl").read_bytes().splitlines(keepends=True)
    part = tmp_path / f"{run.name}-in-parts"
    part.mkdir()
    (part / "history.jsonl").write_bytes(b"".join(lines[:split]))
    assert 0 < len(rows_of(part, "attempt")) < len(rows_of(run, "attempt"))
    assert 0 < len(rows_of(part, "step")) < len(rows_of(run, "step"))
    build_index(part)
    with open(part / "history.jsonl", "ab") as f:
        f.write(b"".join(lines[split:]))
    assert not build_index(part).rebuilt
    return part


def test_every_aggregate_of_a_real_run_indexed_in_parts_equals_one_build(real_run, tmp_path):
    inc = aggregates(_indexed_in_two_parts(real_run, tmp_path))
    build_index(real_run, rebuild=True)
    assert all(inc.values())  # the real run fills every aggregate
    assert_same_aggregates(inc, aggregates(real_run))


def test_the_reports_audit_table_comes_from_the_index_and_matches_the_history(real_run, tmp_path):
    from ksearch.analysis.report import _audit_summary

    attempts = rows_of(real_run, "attempt")
    verdicts = [v for a in attempts for v in a["audit"]["verdicts"] + a["audit"]["anti_hack"]]
    passed = Counter(v["check"] for v in verdicts if v["ok"])
    failed = Counter((v["check"], v["severity"]) for v in verdicts if not v["ok"])
    assert failed == {("register_spill", "fail"): 1, ("expected:ld.global*.v4.*|ld.global*.v2.*", "warn"): 1}
    for run in (real_run, _indexed_in_two_parts(real_run, tmp_path)):
        conn = connect_readonly(run)
        try:
            rows, unmeasured = _audit_summary(conn)
        finally:
            conn.close()
        assert {check: ok for check, ok, _ in rows} == {c: passed[c] for c in {v["check"] for v in verdicts}}
        assert {check: f for check, _, f in rows if f != "0"} == {c: f"1 failed ({sev})" for c, sev in failed}
        assert {r[0] for r in rows[:2]} == {c for c, _ in failed}  # failed checks first
        assert unmeasured == Counter(a["unmeasured"]["reason"] for a in attempts if a.get("unmeasured"))


# ---------------------------------------------------------------- Datasette


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def test_datasette_serves_canned_queries(real_run):
    pytest.importorskip("datasette", reason="the `browse` extra (datasette) is not installed")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ksearch", "log", "serve", str(real_run), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(f"{base}/-/versions.json")
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "datasette did not answer within 60 s"
                time.sleep(0.3)
        stats = log_stats(real_run)
        fails = _get(f"{base}/attempts/failures_by_class.json?_shape=array")
        assert {r["failure_class"]: r["attempts"] for r in fails} == stats["rejections"]
        best = _get(f"{base}/attempts/best_per_target.json?_shape=array")
        assert {(r["target"], r["stream"]): r["best"] for r in best} == {
            ("h100", "step"): stats["best_per_target"]["h100"]["score"]["best"]
        }
        rows = _get(f"{base}/attempts/attempts_of_strategy.json?_shape=array&strategy=rmsnorm/row_block")
        n = next(t["attempts"] for t in stats["top_strategies"] if t["strategy"] == "rmsnorm/row_block")
        assert len(rows) == n and [r["evaluation"] for r in rows] == sorted(r["evaluation"] for r in rows)
        slow = _get(f"{base}/attempts/slowest_compiles.json?_shape=array")
        secs = [r["compile_s"] for r in slow]
        assert len(slow) == stats["attempts"] and secs == sorted(secs, reverse=True)
        meta = _get(f"{base}/-/metadata.json")
        tables = meta["databases"]["attempts"]["tables"]
        assert "steps" in tables and tables["attempts"]["columns"]["ordinal"]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- replay


def test_replay_reproduces_a_logged_failure(real_run):
    step = next(
        st
        for st in rows_of(real_run, "step")
        if not st["passed"] and st["failure_class"] == "output_not_written"
    )
    proc = ksearch("replay", real_run, step["candidate"], "--device", "cpu", "--json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["agrees"] and res["attempt_id"] == step["packet_id"]
    rows = {r["what"]: r for r in res["rows"]}
    assert rows["status"]["logged"] == rows["status"]["new"] == "fail"
    assert rows["failure_class"]["new"] == "output_not_written"
    # the interpreter is deterministic; distributions the task gained since the run have no logged value
    errs = [r for w, r in rows.items() if w.endswith("max_abs_err") and r["logged"] is not None]
    assert errs and all(r["same"] for r in errs)
    assert res["new"]["candidate"]["source_hash"] == step["blob"].split("/")[-1].split(".")[0]
    missing = ksearch("replay", real_run, "c9999")
    assert missing.returncode == 2 and missing.stderr.startswith("error:") and "c9999" in missing.stderr


def test_the_prompt_builders_memory_section_carries_the_distilled_memory(real_run):
    from ksearch.propose.base import SearchState, Tried
    from ksearch.propose.prompt import PromptBuilder
    from ksearch.propose.settings import PromptBudget
    from ksearch.task import load_task
    from ksearch.worldmodel import WorldModel

    memory = distill(real_run)
    fact = memory.proven[0]  # the fixture's first 16 candidates prove a strategy
    state = SearchState(load_task("rmsnorm"), WorldModel.new("rmsnorm"), Tried(), None, run_dir=real_run)
    builder = PromptBuilder(load_task("rmsnorm"), "float16", ["h100"], PromptBudget(memory=400))
    section = builder._memory(state)
    assert section.startswith("# Memory") and fact.strategy in section
