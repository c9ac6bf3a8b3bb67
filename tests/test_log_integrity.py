"""The record cannot be damaged by its own users: one writer per run, a strict verify, a read-only query.

Each test runs the command line as a user does (a subprocess, real exit codes), on copies of
tests/fixtures/logs/old_rmsnorm_run.tar.gz, a 4-candidate CPU quickstart run written by the code before
typed rows (so these also show that old logs still verify and index).
"""

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from clitools import ksearch

from ksearch.evidence import FailureClass
from ksearch.log import History, build_index, iter_rows
from ksearch.log.history import HISTORY, read_rows
from ksearch.log.index import db_path
from ksearch.log.lock import WRITER_LOCK, RunInUseError, writer_lock
from ksearch.log.rows import ProposerFailure
from ksearch.selfbench.log_bench import synthetic_packet

HOLD_LOCK = """
import sys, time
from ksearch.log.lock import writer_lock
with writer_lock(sys.argv[1]):
    print("holding", flush=True)
    time.sleep(120)
"""

# As a run with a compile pool does: the holder forks a child (no exec) that outlives it.
HOLD_LOCK_AND_FORK = """
import os, sys, time
from ksearch.log.lock import writer_lock
with writer_lock(sys.argv[1]):
    child = os.fork()
    if child == 0:
        time.sleep(120)
        os._exit(0)
    time.sleep(0.5)  # the child has closed its inherited copy: the lock must still be ours
    print(child, flush=True)
    time.sleep(120)
"""


@pytest.fixture
def lock_holder(old_run):
    """A second, real process holding the run's writer lock, as a running `ksearch run` does."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(old_run)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
    yield proc
    proc.kill()
    proc.wait()


def test_a_second_resume_is_refused_at_once_naming_the_holder(old_run, lock_holder):
    before = (old_run / HISTORY).read_bytes()
    t0 = time.monotonic()
    second = ksearch("run", "--resume", old_run, "--budget-evals", "5", "--device", "cpu")
    assert second.returncode != 0
    assert f"pid {lock_holder.pid}" in second.stderr and "since" in second.stderr, second.stderr
    assert "one writer" in second.stderr
    assert time.monotonic() - t0 < 60, "refused at once, not after evaluating anything"
    assert (old_run / HISTORY).read_bytes() == before, "the refused run wrote nothing"


def test_the_writer_lock_dies_with_its_process(old_run, lock_holder):
    with pytest.raises(RunInUseError, match=f"pid {lock_holder.pid} on host"):
        with writer_lock(old_run):
            pass
    lock_holder.send_signal(signal.SIGKILL)  # no cleanup runs: the kernel drops the flock
    lock_holder.wait()
    with writer_lock(old_run):
        assert json.loads((old_run / WRITER_LOCK).read_text())["pid"] == os.getpid()
    assert (old_run / WRITER_LOCK).read_text() == "", "a released lock names no holder"


def test_a_forked_child_neither_holds_nor_frees_the_lock(old_run):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK_AND_FORK, str(old_run)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    child = int(holder.stdout.readline())
    try:
        with pytest.raises(RunInUseError, match=f"pid {holder.pid} on host"):
            with writer_lock(old_run):
                pass
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        os.kill(child, 0)  # the orphaned child still lives...
        with writer_lock(old_run):  # ...and does not keep a killed run from resuming
            pass
    finally:
        holder.kill()
        holder.wait()
        os.kill(child, signal.SIGKILL)


def test_the_old_log_verifies(old_run):
    ok = ksearch("log", "verify", old_run)
    assert ok.returncode == 0 and "ok, 28 rows intact" in ok.stdout, ok.stdout + ok.stderr


@pytest.mark.parametrize(
    "tail",
    [b"junk\n", b'{"not": "a row"}\n', b"junk\n" + b'{"seq":28,"ts"', b"\n"],
    ids=["junk-line", "json-non-row-line", "junk-line-then-torn", "empty-line"],
)
def test_complete_junk_lines_after_the_last_row_fail_verify(old_run, tail):
    with open(old_run / HISTORY, "ab") as f:
        f.write(tail)
    res = ksearch("log", "verify", old_run)
    assert res.returncode == 3, res.stdout + res.stderr
    assert "line 29" in res.stderr and "FAILED" in res.stderr


def test_one_torn_last_line_is_a_warning_and_is_sealed(old_run):
    with open(old_run / HISTORY, "ab") as f:
        f.write(b'{"seq":28,"ts":"2026-')
    res = ksearch("log", "verify", old_run)
    assert res.returncode == 0 and "torn line" in res.stdout, res.stdout + res.stderr
    History(old_run).append(ProposerFailure(call="note", error="after the torn line"))
    kinds = [line.row["kind"] for line, _ in iter_rows(old_run)]
    assert kinds[-2:] == ["seal", "proposer_failure"]
    assert ksearch("log", "verify", old_run).returncode == 0


@pytest.mark.parametrize("newlines", [True, False], ids=["random-lines", "random-no-newline"])
def test_random_bytes_are_no_log(tmp_path, newlines):
    run = tmp_path / "random"
    run.mkdir()
    data = bytes(b % 250 + 1 for b in os.urandom(4096))  # no NUL, so a text-ish file
    data = data.replace(b"\n", b"") if not newlines else data + b"\n"
    (run / HISTORY).write_bytes(data)
    res = ksearch("log", "verify", run)
    assert res.returncode == 3, res.stdout + res.stderr
    assert "line 1" in res.stderr


def test_a_non_row_first_line_fails_verify(old_run):
    data = (old_run / HISTORY).read_bytes()
    (old_run / HISTORY).write_bytes(b"# a comment someone added\n" + data)
    res = ksearch("log", "verify", old_run)
    assert res.returncode == 3 and "line 1" in res.stderr, res.stderr


def test_a_world_model_that_does_not_replay_fails_verify(old_run):
    # What two interleaved writers leave: every row chained and intact, but the plan's inserts
    # applied twice, so the replay assigns other node ids than the log records.
    plan = next(row for row in read_rows(old_run, "wm_edit") if row.seq == 2)
    History(old_run).append(plan.payload)
    res = ksearch("log", "verify", old_run)
    assert res.returncode == 3, res.stdout + res.stderr
    assert "world model does not replay" in res.stderr and "seq 28" in res.stderr
    assert ksearch("tree", old_run).returncode != 0  # what verify now predicts


@pytest.mark.parametrize(
    "sql",
    [
        "ATTACH DATABASE '{d}/attached.db' AS x",
        "VACUUM INTO '{d}/vacuumed.db'",
        "PRAGMA writable_schema=1",
        "  -- a comment first\n ATTACH DATABASE '{d}/attached.db' AS x",
        "SELECT 1; ATTACH DATABASE '{d}/attached.db' AS x",
        "WITH x AS (SELECT 1) DELETE FROM attempts",
        "SELECT load_extension('{d}/ext')",
        "DELETE FROM attempts",
    ],
)
def test_query_refuses_anything_but_one_select_and_creates_no_file(old_run, tmp_path, sql):
    build_index(old_run)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    schema = "SELECT type, name, sql FROM sqlite_master ORDER BY name"
    with sqlite3.connect(db_path(old_run)) as conn:
        schema_before = conn.execute(schema).fetchall()
    res = ksearch("log", "query", old_run, sql.format(d=scratch), cwd=scratch)
    assert res.returncode != 0 and res.stderr.startswith("error:"), res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    assert list(scratch.iterdir()) == [], "a refused query created a file"
    with sqlite3.connect(db_path(old_run)) as conn:
        assert conn.execute(schema).fetchall() == schema_before
        assert conn.execute("SELECT count(*) FROM attempts").fetchone() == (6,)
        assert conn.execute("PRAGMA writable_schema").fetchone() == (0,)


def test_query_runs_selects_and_ctes(old_run):
    res = ksearch(
        "log",
        "query",
        old_run,
        "/* best first */ WITH s AS (SELECT candidate, score FROM steps) SELECT candidate FROM s "
        "ORDER BY score DESC LIMIT 1",
        "--format",
        "json",
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == [{"candidate": "c0003"}]


def test_attempts_are_told_apart_from_search_evaluations_and_untimed_rewards_are_null(old_run, tmp_path):
    # The old run: 4 search evaluations (one packet each) and the best kernel's 2 final audits.
    stats = ksearch("log", "stats", old_run)
    assert "attempts: 6 (4 search evaluations + 2 final audits)" in stats.stdout, stats.stdout
    with sqlite3.connect(db_path(old_run)) as conn:
        rows = conn.execute("SELECT attempt_id, reward, final_audit FROM attempts ORDER BY seq").fetchall()
    assert [r[2] for r in rows] == [0, 0, 0, 0, 1, 1]
    assert {r[0].split("@")[1] for r in rows if r[2]} == {"b200", "mi355x"}
    assert all(r[1] is None for r in rows), "nothing was timed on CPU: no reward, not 0.0"
    report = tmp_path / "report.html"
    assert ksearch("report", old_run, "--out", report).returncode == 0
    # per target: attempts, passed, timed, best speedup, best SOL score, best reward
    assert (
        "<td>h100</td><td>4</td><td>4</td><td>0</td><td>–</td><td>–</td><td>unmeasured</td>"
        in report.read_text()
    )


def test_a_failed_untimed_attempt_has_a_null_reward_in_the_index(tmp_path):
    run = tmp_path / "failed"
    # the harness gives a rejected candidate reward 0.0; it was never timed
    failed = synthetic_packet(0, random.Random(0), passed=False, failure=FailureClass.NUMERICAL_MISMATCH)
    assert failed.performance is None
    History(run).append(failed.model_copy(update={"reward": 0.0}))
    build_index(run)
    with sqlite3.connect(db_path(run)) as conn:
        assert conn.execute("SELECT reward FROM attempts").fetchall() == [(None,)]


def test_steps_are_exported_and_documented(old_run, tmp_path):
    out = tmp_path / "steps.jsonl"
    res = ksearch("log", "export", old_run, "--table", "steps", "--out", out)
    assert res.returncode == 0, res.stderr
    steps = [json.loads(line) for line in out.read_text().splitlines()]
    assert [s["candidate"] for s in steps] == ["c0000", "c0001", "c0002", "c0003"]
    assert {"strategy", "knobs", "score"} <= set(steps[0])
    helptext = ksearch("log", "query", "--help").stdout
    assert "steps: one per search evaluation" in helptext and "knobs JSON" in helptext
