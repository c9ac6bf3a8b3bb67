"""What a first-time user runs into: bad bytes, typos, Ctrl-C, resumed budgets, defaults, exports."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clitools import assert_clean_error, ksearch

from ksearch.log.history import read_rows
from ksearch.log.rows import RunStop, Step
from ksearch.search.config import RunConfig, load_run_config

ROOT = Path(__file__).resolve().parents[1]
HONEST = ROOT / "tests" / "honest" / "rmsnorm_row.py"


def not_utf8(path: Path) -> Path:
    path.write_bytes(path.read_bytes() + b"\n# caf\xe9 in Latin-1\n")
    return path


# ------------------------------------------------------------------ files that are not UTF-8


def test_a_candidate_that_is_not_utf8_is_one_error_line_in_eval_and_compile(tmp_path):
    cand = not_utf8(Path(shutil.copy(HONEST, tmp_path / "cand.py")))
    for cmd in (
        ["eval", cand, "--task", "rmsnorm"],
        ["compile", cand, "--task", "rmsnorm", "--target", "h100"],
    ):
        assert_clean_error(ksearch(*cmd), "cand.py is not UTF-8", "byte 0xe9", code=2)


def test_a_task_yaml_and_a_run_config_that_are_not_utf8(tmp_path):
    task = Path(shutil.copytree(ROOT / "configs" / "tasks" / "rmsnorm", tmp_path / "mytask"))
    not_utf8(task / "task.yaml")
    assert_clean_error(ksearch("tasks", "show", task), "task.yaml is not UTF-8", code=2)
    config = not_utf8(Path(shutil.copy(ROOT / "configs" / "quickstart.yaml", tmp_path / "run.yaml")))
    assert_clean_error(ksearch("run", config, "--log-dir", tmp_path / "logs"), "run.yaml is not UTF-8")
    assert not (tmp_path / "logs").exists(), "nothing is written for a config that cannot be read"


def test_a_history_that_is_not_utf8_is_one_error_line_in_every_reader(old_run):
    lines = (old_run / "history.jsonl").read_bytes().split(b"\n")
    lines[5] = lines[5].replace(b'"kind"', b'"ki\xffnd"', 1)
    (old_run / "history.jsonl").write_bytes(b"\n".join(lines))
    for cmd in (
        ["log", "show", old_run],
        ["tree", old_run],
        ["log", "stats", old_run],
        ["run", "--resume", old_run],
    ):
        assert_clean_error(ksearch(*cmd), "line 6", "not a valid row")


# ------------------------------------------------------------------ parser errors and unknown names


@pytest.mark.parametrize(
    "args, needle",
    [
        (["run", "--seed", "x"], "--seed"),
        (["run", "--no-such-option"], "--no-such-option"),
        (["eval"], "Missing argument"),
    ],
)
def test_usage_errors_are_one_error_line_like_every_other_error(args, needle):
    res = ksearch(*args, columns=80)
    assert_clean_error(res, needle, "--help", code=2)
    assert "╭" not in res.stderr, "no boxed panel"


def test_eval_refuses_an_unknown_target_and_replays_with_its_timeout(tmp_path):
    assert_clean_error(
        ksearch("eval", HONEST, "--task", "rmsnorm", "--target", "bogus"), "unknown target 'bogus'", "h100"
    )
    task = Path(shutil.copytree(ROOT / "configs" / "tasks" / "rmsnorm", tmp_path / "mytask"))
    res = ksearch("eval", HONEST, "--task", task, "--workloads", "llama3_8b_decode_m1", "--json")
    assert res.returncode == 0, res.stderr
    replay = json.loads(res.stdout)["environment"]["replay_command"]
    # the run's default timeout (not 600 s), and the task directory the user gave (not a name that
    # would load the built-in task instead)
    assert "--timeout 300" in replay and f"--task {task}" in replay, replay


# ------------------------------------------------------------------ exit codes scripts can gate on


def test_compile_strict_exits_3_on_a_failed_audit_check(tmp_path):
    naive = ROOT / "tests" / "candidates" / "triton" / "matmul_naive.py"  # no tensor-core path
    plain = ksearch("compile", naive, "--task", "matmul", "--target", "h100", "--json")
    assert plain.returncode == 0, plain.stderr
    verdicts = json.loads(plain.stdout)[0]["audit"]["verdicts"]
    assert any(not v["ok"] and v["severity"] == "fail" for v in verdicts)
    strict = ksearch("compile", naive, "--task", "matmul", "--target", "h100", "--strict")
    assert strict.returncode == 3, strict.stdout + strict.stderr
    good = ksearch("compile", HONEST, "--task", "rmsnorm", "--target", "h100", "--strict")
    assert good.returncode == 0, good.stdout + good.stderr


def test_ctrl_c_stops_cleanly_with_exit_130_the_real_time_and_the_run_dir_first(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "ksearch", "run", "--log-dir", tmp_path, "--device", "cpu"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # before any evaluation: where the run is, and how to resume it
    started = time.monotonic()
    (run_dir,) = list(tmp_path.iterdir())
    assert first.startswith(f"run: {run_dir}") and f"ksearch run --resume {run_dir}" in first, first
    history, deadline = run_dir / "history.jsonl", started + 240

    def stepped() -> bool:
        return history.exists() and '"kind":"step"' in history.read_text()

    while not stepped() and time.monotonic() < deadline:
        time.sleep(0.5)  # interrupt a search under way, one candidate in
    ran = time.monotonic() - started
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err
    seconds = next(float(line.split()[1]) for line in out.splitlines() if line.startswith("time"))
    assert seconds >= ran - 2, (ran, out)  # the time it ran, not 0
    (stop,) = list(read_rows(run_dir, RunStop.KIND))
    assert "interrupted" in stop.payload.reason and stop.payload.elapsed_s >= ran - 2


def steps(run_dir: Path) -> int:
    return len(list(read_rows(run_dir, Step.KIND)))


def test_resume_budget_counts_from_where_the_run_stopped(old_run):
    assert steps(old_run) == 4 and load_run_config(None).budget.evaluations > 4
    (stop,) = list(read_rows(old_run, RunStop.KIND))
    assert "budget spent (4)" in stop.payload.reason
    # its budget is spent: a bare resume is refused up front, naming the way to go on
    before = (old_run / "history.jsonl").read_bytes()
    assert_clean_error(ksearch("run", "--resume", old_run), "--budget-evals N evaluates N more")
    assert (old_run / "history.jsonl").read_bytes() == before
    res = ksearch("run", "--resume", old_run, "--budget-evals", "1", "--device", "cpu")
    assert res.returncode == 0, res.stdout + res.stderr
    assert steps(old_run) == 5 and re.search(r"evaluations\s+5 / 5", res.stdout), res.stdout


# ------------------------------------------------------------------ defaults and formats


def test_an_empty_config_is_the_quickstart_config(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    quick = load_run_config(ROOT / "configs" / "quickstart.yaml")
    assert load_run_config(empty) == RunConfig() == load_run_config(None).model_copy(update={"dtype": None})
    # quickstart spells the defaults out; the one field it adds is the task's default dtype
    assert quick.model_copy(update={"dtype": None}) == RunConfig()
    assert (RunConfig().budget.wall_s, RunConfig().eval.targets) == (270, "best")


def test_export_takes_the_format_from_the_extension(old_run, tmp_path):
    for name in ("a.csv", "a.jsonl"):
        assert ksearch("log", "export", old_run, "--out", tmp_path / name).returncode == 0
    assert (tmp_path / "a.csv").read_text().startswith("seq,")
    json.loads((tmp_path / "a.jsonl").read_text().splitlines()[0])
    res = ksearch("log", "export", old_run, "--out", tmp_path / "a.parquet")
    if res.returncode == 0:  # with pyarrow: real Parquet (magic bytes), not JSON lines
        assert (tmp_path / "a.parquet").read_bytes()[:4] == b"PAR1"
    else:
        assert_clean_error(res, "pyarrow")
    assert_clean_error(
        ksearch("log", "export", old_run, "--out", tmp_path / "b.parquet", "--format", "jsonl"), "contradicts"
    )
    assert_clean_error(ksearch("log", "export", old_run, "--out", tmp_path / "b.txt"), "--format")


# ------------------------------------------------------------------ output at 80 columns


def test_a_wide_query_at_80_columns_is_records_with_every_value_visible(old_run):
    res = ksearch("log", "query", old_run, "select * from attempts", columns=80)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert max(map(len, lines)) <= 80, max(lines, key=len)
    ids = [line.split("|", 1)[1].strip() for line in lines if line.split("|")[0].strip() == "attempt_id"]
    assert len(ids) == 6 and all(i.startswith("att-") and "@" in i for i in ids), ids
    narrow = ksearch("log", "query", old_run, "select attempt_id, status from attempts", columns=80)
    assert "┃ attempt_id" in narrow.stdout, "columns that fit stay a table"


def test_log_show_is_one_line_a_row_at_80_columns(old_run):
    res = ksearch("log", "show", old_run, "--last", "100", columns=80)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()[1:]
    assert len(lines) == 28 and max(map(len, lines)) <= 80, res.stdout
    assert not any("{'" in line for line in lines), "no dict reprs"
    step = next(line for line in lines if " step " in line)
    assert "c0000: score 0.01066 (static-estimate:h100)" in step, step
    attempt = next(line for line in lines if " attempt " in line)
    assert "@h100: pass" in attempt, attempt


def test_log_curve_compares_runs_on_a_common_reference_and_plots_them(old_run, tmp_path):
    baseline = Path(shutil.copytree(old_run, tmp_path / "baseline"))
    plot = tmp_path / "curves.svg"
    res = ksearch("log", "curve", old_run, baseline, "--plot", plot, "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    best = max(r["best"] for r in data["runs"])
    assert data["reference"] == pytest.approx(0.9 * best)
    assert [r["evals_to_reference"] for r in data["runs"]] == [4, 4]  # c0003 first reached 90%
    assert plot.read_text().lstrip().startswith(("<?xml", "<svg"))
    assert [r["strategy"] for r in data["runs"]] == ["worldmodel", "worldmodel"]
    assert data["strategies"][0]["median_evals_to_reference"] == 4
    table = ksearch("log", "curve", old_run, baseline, columns=80)
    assert "90% of the best any run reached" in table.stdout and "baseline" in table.stdout
    assert "to 100%" in table.stdout and "median over runs" in table.stdout
    assert max(map(len, table.stdout.splitlines())) <= 80, table.stdout
