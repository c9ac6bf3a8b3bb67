"""The command line as a user runs it: a subprocess per call, real exit codes, stderr checked."""

import json
import random
from pathlib import Path

from clitools import assert_clean_error, ksearch

from ksearch.evidence import FailureClass
from ksearch.log import History
from ksearch.log.history import HISTORY
from ksearch.log.rows import ProposerFailure
from ksearch.selfbench.log_bench import synthetic_packet

ROOT = Path(__file__).resolve().parents[1]


def test_version_and_help():
    v = ksearch("--version")
    assert v.returncode == 0 and v.stdout.strip() == "ksearch 0.1.0"
    h = ksearch("--help")
    assert h.returncode == 0
    for cmd in ("run", "tasks", "targets", "log", "env-info", "failures", "schema"):
        assert cmd in h.stdout


def test_tasks_list_and_show():
    listed = json.loads(ksearch("tasks", "list", "--json").stdout)
    names = {t["name"] for t in listed}
    assert {
        "rmsnorm",
        "softmax",
        "matmul",
        "fused_add_rmsnorm",
        "silu_and_mul",
        "gqa_decode_attention",
        "moe_topk_routing",
    } <= names
    shown = ksearch("tasks", "show", "matmul", "--json")
    assert shown.returncode == 0
    data = json.loads(shown.stdout)
    assert data["name"] == "matmul"
    table = ksearch("tasks", "show", "rmsnorm")
    assert table.returncode == 0 and "run(x, weight, out)" in table.stdout


def test_targets_list_show_and_env_info():
    listed = ksearch("targets", "list")
    assert listed.returncode == 0
    for name in ("b200", "mi355x", "h100", "h200", "mi300x"):
        assert name in listed.stdout
    show = ksearch("targets", "show", "b200")
    assert show.returncode == 0 and "sm_100a" in show.stdout
    env = ksearch("env-info", "--json")
    assert env.returncode == 0
    snap = json.loads(env.stdout)
    import triton

    assert triton.__version__ in json.dumps(snap)


def test_failures_and_schema(tmp_path):
    f = json.loads(ksearch("failures", "--json").stdout)
    assert {"class": "compile_error", "status": "error"}.items() <= f[0].items()
    assert any(r["class"] == "reward_hack:stream" for r in f)
    out = tmp_path / "s.json"
    assert ksearch("schema", "--out", out).returncode == 0
    assert out.read_text() == (ROOT / "docs" / "evidence.schema.json").read_text()


def test_run_searches_and_leaves_a_verifiable_log_and_tree(tmp_path):
    proc = ksearch("run", "--log-dir", tmp_path, "--budget-evals", "2", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = list(tmp_path.iterdir())
    rows = [json.loads(line) for line in (run_dir / HISTORY).read_text().splitlines()]
    kinds = [r["kind"] for r in rows]
    assert kinds[0] == "run_start" and kinds[-1] == "run_stop" and kinds.count("step") == 2
    assert rows[0]["payload"]["task"] == "rmsnorm"
    assert "evaluation budget spent" in rows[-1]["payload"]["reason"]
    assert "best kernel" in proc.stdout or "no candidate passed" in proc.stdout
    assert ksearch("log", "verify", run_dir).returncode == 0
    tree = ksearch("tree", run_dir, "--svg", tmp_path / "t.svg")
    assert tree.returncode == 0 and "row mapping" in tree.stdout and (tmp_path / "t.svg").exists()


def test_log_commands_on_a_run(tmp_path):
    run = tmp_path / "r"
    log = History(run)
    for i in range(6):
        p = synthetic_packet(i, random.Random(i), passed=bool(i % 2), failure=FailureClass.COMPILE_ERROR)
        log.append(
            p.model_copy(
                update={
                    "packet_id": f"a{i}",
                    "message": f"m{i}",
                    "reward": float(i) if i % 2 else None,
                    "candidate": p.candidate.model_copy(update={"target": "b200"}),
                }
            )
        )
    assert "6 rows intact" in ksearch("log", "verify", run).stdout
    assert "added" in ksearch("log", "index", run, "--rebuild").stdout
    stats = json.loads(ksearch("log", "stats", run, "--json").stdout)
    assert stats["attempts"] == 6 and stats["rejections"] == {"compile_error": 3}
    q = json.loads(
        ksearch(
            "log", "query", run, "SELECT attempt_id FROM attempts WHERE status='pass'", "--format", "json"
        ).stdout
    )
    assert [r["attempt_id"] for r in q] == ["a1", "a3", "a5"]
    one = json.loads(ksearch("log", "show", run, "--seq", "2").stdout)
    assert one["payload"]["packet_id"] == "a2"
    exp = tmp_path / "x.csv"
    assert ksearch("log", "export", run, "--out", exp, "--format", "csv").returncode == 0
    assert exp.read_text().count("\n") == 7


# ---- bad input: one clear line and a non-zero exit, never a traceback


def test_task_file_with_a_missing_field(tmp_path):
    src = (ROOT / "configs" / "tasks" / "softmax" / "task.yaml").read_text()
    bad = tmp_path / "broken"
    bad.mkdir()
    (bad / "task.yaml").write_text(
        "\n".join(l for l in src.splitlines() if not l.startswith("outputs:") and not l.startswith("  out:"))
    )
    (bad / "reference.py").write_text((ROOT / "configs" / "tasks" / "softmax" / "reference.py").read_text())
    assert_clean_error(ksearch("tasks", "show", bad), "outputs")


def test_unknown_task_and_unknown_target():
    assert_clean_error(ksearch("tasks", "show", "no_such_task"), "no_such_task")
    assert_clean_error(ksearch("targets", "show", "b300"), "b300", "b200")


def test_run_with_an_unknown_target(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("task: rmsnorm\ntargets: [h100, b300]\n")
    assert_clean_error(ksearch("run", cfg, "--log-dir", tmp_path / "logs"), "b300")
    cfg.write_text("task: rmsnorm\nbudgett: {}\n")
    assert_clean_error(ksearch("run", cfg, "--log-dir", tmp_path / "logs"), "budgett")
    # --dtype and --workloads are checked against the task before a run directory exists
    assert_clean_error(
        ksearch("run", "--workloads", "nosuch", "--log-dir", tmp_path / "logs"), "nosuch", "gpt_oss_m7_n2880"
    )
    assert_clean_error(ksearch("run", "--dtype", "int4", "--log-dir", tmp_path / "logs"), "int4", "bfloat16")
    assert not (tmp_path / "logs").exists()


def test_a_directory_that_is_not_a_log(tmp_path):
    for cmd in ("verify", "show", "stats", "index"):
        assert_clean_error(ksearch("log", cmd, tmp_path), "not a ksearch run log")
    assert_clean_error(ksearch("log", "query", tmp_path / "nope", "SELECT 1"), "not a directory")


def test_corrupt_line_in_the_middle_of_a_history(tmp_path):
    run = tmp_path / "r"
    log = History(run)
    for i in range(5):
        log.append(ProposerFailure(call="note", error=str(i)))
    lines = (run / HISTORY).read_bytes().splitlines(keepends=True)
    lines[2] = b"not json at all\n"
    (run / HISTORY).write_bytes(b"".join(lines))
    for cmd in ("show", "stats", "index"):
        assert_clean_error(ksearch("log", cmd, run), "line 3")
    verify = ksearch("log", "verify", run)
    assert verify.returncode == 3 and "line 3" in verify.stderr and "Traceback" not in verify.stderr
