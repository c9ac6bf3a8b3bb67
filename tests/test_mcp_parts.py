"""The MCP server's parts without a server: the sandbox, the evaluation limits, candidate ids, the
bounded read-only query and the `ksearch mcp` options. (tests/test_mcp.py drives the server itself.)"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
from clitools import assert_clean_error, ksearch

from ksearch.errors import LogError, NotALogError, TaskError
from ksearch.mcp import tools
from ksearch.mcp.limits import EvaluationBudgetError, EvaluationLimits, EvaluatorKey
from ksearch.mcp.sandbox import Sandbox, SandboxError
from ksearch.mcp.submit import agent_label, next_candidate_id
from ksearch.paths import configs_dir

MINING_RUN = Path(__file__).parent / "fixtures" / "mining_run"


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """A folder holding a copy of a real quickstart run (81 rows, 16 candidates)."""
    shutil.copytree(MINING_RUN, tmp_path / "runs" / "r1")
    return tmp_path / "runs"


def services(sandbox: Sandbox, tmp_path: Path) -> tools.Services:
    return tools.Services(sandbox, EvaluationLimits(1, 0, lambda key: _Fake()), tmp_path / "scratch")


# ---------------------------------------------------------------- sandbox


def test_runs_resolve_inside_what_the_server_was_given_and_nowhere_else(runs: Path, tmp_path: Path):
    folder = Sandbox([runs])
    assert folder.run("r1") == (runs / "r1").resolve()  # a name under the --run folder
    assert folder.run(str(runs / "r1")) == (runs / "r1").resolve()  # or its path
    with pytest.raises(SandboxError, match="name a run: .* r1$"):
        folder.run(None)  # a folder of runs: which one must be said
    assert Sandbox([runs / "r1"]).run(None) == (runs / "r1").resolve()  # one run: the default

    for outside in (str(tmp_path), "../..", "/etc", "r1/../../.."):
        with pytest.raises(SandboxError, match="outside the runs this MCP server reads"):
            folder.run(outside)
    (runs / "escape").symlink_to(tmp_path, target_is_directory=True)  # a link inside pointing out
    with pytest.raises(SandboxError, match="outside"):
        folder.run("escape")
    with pytest.raises(SandboxError, match="reads no run"):
        Sandbox([]).run("r1")
    # a missing run inside the sandbox gets the log's own error, as the CLI prints it
    with pytest.raises(NotALogError, match="is not a directory"):
        tools.log_stats(services(folder, tmp_path), "nosuch")


def test_tasks_are_built_in_names_or_paths_inside_the_configuration_tree(runs: Path, tmp_path: Path):
    sandbox = Sandbox([runs])
    assert sandbox.task("rmsnorm") == "rmsnorm"
    inside = configs_dir() / "tasks" / "softmax"
    assert sandbox.task(str(inside)) == str(inside.resolve())
    (tmp_path / "mine").mkdir()
    with pytest.raises(SandboxError, match="outside what this MCP server reads"):
        sandbox.task(str(tmp_path / "mine"))
    with pytest.raises(TaskError, match="unknown task 'nosuch'; built-in tasks"):
        sandbox.task("nosuch")
    assert sandbox.task_text("mxfp4 gemm") == "mxfp4 gemm"  # free text selects skills as it is
    with pytest.raises(SandboxError):
        sandbox.task_text("/etc/passwd")


# ---------------------------------------------------------------- limits


class _Fake:
    """Stands in for an Evaluator where only holding and closing matter."""

    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_evaluations_wait_for_a_slot_and_evaluators_are_reused_then_closed():
    made: list[_Fake] = []
    running, most = 0, 0
    lock = threading.Lock()

    def make(key: EvaluatorKey) -> _Fake:
        made.append(_Fake())
        return made[-1]

    limits = EvaluationLimits(2, 100, make)

    def evaluate() -> None:
        nonlocal running, most
        with limits.evaluator(("cpu", 300.0, 1.0)):
            with lock:
                running += 1
                most = max(most, running)
            time.sleep(0.05)
            with lock:
                running -= 1

    threads = [threading.Thread(target=evaluate) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most == 2 and len(made) == 2  # two at a time, on two warm evaluators
    with limits.evaluator(("cuda", 300.0, 1.0)):
        pass
    assert len(made) == 3  # another setting, another evaluator
    limits.close()
    assert all(ev.closed for ev in made)


def test_each_session_has_its_own_evaluation_budget():
    limits = EvaluationLimits(1, 2, lambda key: _Fake())
    assert [limits.charge("a"), limits.charge("a"), limits.charge("b")] == [1, 2, 1]
    with pytest.raises(EvaluationBudgetError, match=r"evaluation budget \(2 of 2\)"):
        limits.charge("a")
    assert limits.spent("a") == 2 and limits.spent("c") == 0
    with pytest.raises(Exception, match="--concurrency must be at least 1"):
        EvaluationLimits(0, 1, lambda key: _Fake())


# ---------------------------------------------------------------- submit's naming


def test_an_agents_candidate_takes_the_next_id_the_search_would_and_no_taken_one():
    assert next_candidate_id([]) == "c0000"
    assert next_candidate_id(["c0000", "c0001"]) == "c0002"
    assert next_candidate_id(["c0000", "c0005"]) == "c0006"  # past every number in use
    assert next_candidate_id(["x", "y", "c0002"]) == "c0003"
    assert agent_label("Claude Code") == "agent:Claude-Code"
    assert agent_label(None) == "agent:unknown" and agent_label("a\nb;c") == "agent:a-b-c"


# ---------------------------------------------------------------- the log tools in process


def test_log_query_is_read_only_and_bounded(runs: Path, tmp_path: Path):
    bench = services(Sandbox([runs]), tmp_path)
    res = tools.log_query(bench, "r1", "-- comment first\nselect candidate from steps order by ordinal", 3)
    assert res["rows"] == [["c0000"], ["c0001"], ["c0002"]] and res["truncated"] and res["max_rows"] == 3
    wide = tools.log_query(bench, "r1", "SELECT printf('%.9000c', 'x') AS long", 5)
    (cell,) = wide["rows"][0]
    assert cell == "x" * tools.MAX_CELL_CHARS + "... (5000 more characters)"
    for sql in (
        "ATTACH DATABASE 'x.db' AS x",
        f"VACUUM INTO '{tmp_path / 'copy.db'}'",
        "PRAGMA writable_schema = ON",
        "WITH t AS (SELECT 1) INSERT INTO steps (seq) SELECT * FROM t",
        "SELECT 1; DROP TABLE steps",
    ):
        with pytest.raises(LogError):
            tools.log_query(bench, "r1", sql, 10)
    assert not (tmp_path / "copy.db").exists()
    assert len(tools.log_query(bench, "r1", "SELECT * FROM steps", 10**9)["rows"]) == 16


def test_best_memory_and_tree_of_a_real_run(runs: Path, tmp_path: Path):
    bench = services(Sandbox([runs / "r1"]), tmp_path)
    best = tools.best(bench, None, None)
    top = tools.log_query(bench, None, "SELECT candidate FROM steps ORDER BY score DESC, ordinal LIMIT 1", 1)
    assert best["candidate"] == top["rows"][0][0] and best["target"] == "h100"
    assert best["packet"]["status"] == "pass" and "def run(" in best["source"]
    with pytest.raises(LogError, match="no passing, scored kernel on b200"):
        tools.best(bench, None, "b200")  # final audits were not reached in these 81 rows
    mem = tools.memory(bench, None, 300)
    assert mem["text"].startswith("Run memory") and (runs / "r1" / "memory.json").is_file()
    assert tools.tree(bench, None, 300)["nodes"] > 5


def test_the_error_line_is_the_one_the_cli_prints():
    from ksearch.errors import error_line

    assert error_line(TaskError("unknown task 'x'")) == "error: unknown task 'x'"
    assert (
        error_line(FileNotFoundError(2, "No such file or directory", "/x"))
        == "error: No such file or directory: /x"
    )


# ---------------------------------------------------------------- the command


def test_the_command_refuses_bad_options_in_one_line(tmp_path: Path):
    assert_clean_error(ksearch("mcp", "--transport", "pigeon"), "unknown --transport 'pigeon'")
    assert_clean_error(ksearch("mcp", "--run", tmp_path / "nosuch"), "not a directory")
    assert_clean_error(ksearch("mcp", "--concurrency", "0"), "--concurrency must be at least 1")
