"""`ksearch mcp` end to end: the MCP SDK's own client talks to the server over stdio (the server a
subprocess, as an agent's client starts it) and over streamable HTTP on localhost, calls every tool,
reads every resource kind, submits an attempt into a real run that `log verify`, `log stats` and
`report` then see, and gets the same verdict for a cheat as `ksearch eval` does.

The run is a tiny CPU search (offline proposer, two evaluations, one target, one workload), copied
for each test so that submits do not meet."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from clitools import ksearch
from runconfigs import write_run_config

from ksearch.context import build_packet, load_corpus, select_skills, show_skill
from ksearch.log.history import iter_rows
from ksearch.task import load_task
from ksearch.task.describe import describe_task

mcp = pytest.importorskip("mcp", reason="needs the MCP SDK: pip install -e '.[mcp]'")
from mcp import ClientSession, StdioServerParameters, stdio_client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp.shared.exceptions import MCPError  # noqa: E402
from mcp.types import CallToolResult, Implementation, TextResourceContents  # noqa: E402

TESTS = Path(__file__).parent
HONEST = (TESTS / "honest" / "rmsnorm_row.py").read_text()
CHEAT = TESTS / "cheats" / "copy_input.py"  # dynamic: right-looking outputs, wrong values
WORKLOAD = "llama3_8b_decode_m1"
AGENT = "test-agent"
TOOLS = {
    "select_skills",
    "isa_packet",
    "isa_search",
    "compile",
    "evaluate",
    "submit",
    "log_stats",
    "log_query",
    "tree",
    "memory",
    "best",
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ksearch.search.run import start_run

    tmp = tmp_path_factory.mktemp("mcp-run")
    config = write_run_config(
        tmp,
        budget={"evaluations": 2, "wall_s": 600},
        eval={"seeds": [0], "workloads": [WORKLOAD], "targets": "best"},
    )
    return start_run(config, log_dir=tmp / "runs").run_dir


@pytest.fixture
def runs(tiny_run: Path, tmp_path: Path) -> Path:
    """A folder of runs holding a fresh copy of the tiny run (what `--run` is given)."""
    folder = tmp_path / "runs"
    shutil.copytree(tiny_run, folder / tiny_run.name)
    return folder


# ---------------------------------------------------------------- clients


@asynccontextmanager
async def stdio_session(*args: str) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "ksearch", "mcp", *args],
        env=dict(os.environ),
        cwd=str(TESTS.parent),
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write, client_info=Implementation(name=AGENT, version="1")) as session:
            await session.initialize()
            yield session


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def http_session(*args: str) -> AsyncIterator[ClientSession]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "ksearch", "mcp", "--transport", "http", "--port", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the HTTP server did not start listening"
                await anyio.sleep(0.1)
        async with streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (read, write, *_):
            async with ClientSession(
                read, write, client_info=Implementation(name=AGENT, version="1")
            ) as session:
                await session.initialize()
                yield session
    finally:
        server.terminate()
        server.wait(timeout=30)


def run_async(scenario: Callable[[], Awaitable[None]]) -> None:
    anyio.run(scenario)


async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, f"{tool}: {result.content}"
    assert result.structured_content is not None
    return result.structured_content


async def refused(session: ClientSession, tool: str, **arguments: Any) -> str:
    """The tool's error text: one line starting with `error:`, as the CLI prints it."""
    result: CallToolResult = await session.call_tool(tool, arguments)
    assert result.is_error, f"{tool} should have been refused: {result.structured_content}"
    (content,) = result.content
    text = getattr(content, "text", "")
    assert text.startswith("error: ") and "\n" not in text, text
    return text


async def read(session: ClientSession, uri: str) -> TextResourceContents:
    (content,) = (await session.read_resource(uri)).contents
    assert isinstance(content, TextResourceContents)
    return content


# ---------------------------------------------------------------- what both transports must do


async def resources_and_context(session: ClientSession) -> None:
    """Every resource kind is listed and reads as the CLI shows it; the context tools are the
    prompt builder's own functions."""
    corpus = load_corpus()
    chapter = corpus.get("cdna4/mfma-scale")
    section = next(s.slug for s in chapter.sections() if s.slug)
    listed = {r.uri for r in (await session.list_resources()).resources}
    skill_ref = next(u for u in listed if u.startswith("skill://") and u.count("/") == 3)
    expected = {
        "skill://hw-blackwell-b200": show_skill("hw-blackwell-b200"),
        skill_ref: show_skill(skill_ref.removeprefix("skill://")),
        "isa://cdna4/mfma-scale": corpus.show("cdna4/mfma-scale"),
        f"isa://cdna4/mfma-scale#{section}": corpus.show(f"cdna4/mfma-scale#{section}"),
    }
    assert set(expected) <= listed and {"task://rmsnorm", "target://b200"} <= listed
    for uri, text in expected.items():
        assert (await read(session, uri)).text == text
    task = json.loads((await read(session, "task://rmsnorm")).text)
    assert task == json.loads(json.dumps(describe_task(load_task("rmsnorm")), default=str))
    target = await read(session, "target://b200")
    assert target.mime_type == "application/json" and json.loads(target.text)["arch"] == "sm_100a"
    templates = {t.uri_template for t in (await session.list_resource_templates()).resource_templates}
    assert {"skill://{+ref}", "isa://{+chapter}", "task://{name}", "target://{name}"} <= templates
    with pytest.raises(MCPError, match=r"^error: unknown skill 'nosuch'"):
        await session.read_resource("skill://nosuch")

    assert {t.name for t in (await session.list_tools()).tools} == TOOLS
    picked = await call(session, "select_skills", task="rmsnorm", target="b200", budget_tokens=4000)
    own = select_skills("rmsnorm", "b200", 4000, strict=True)
    assert [p["name"] for p in picked["picked"]] == [p.name for p in own.picked]
    assert "hw-blackwell-b200" in picked["text"] and picked["text"] == own.text
    packet = await call(session, "isa_packet", topic="tcgen05", target="b200", budget_tokens=1500)
    assert packet["text"] == build_packet("tcgen05", "b200", 1500).text and packet["tokens"] <= 1500
    hits = await call(session, "isa_search", text="tcgen05.mma", target="b200", limit=3)
    assert [h["id"] for h in hits["hits"]] == [h.id for h in corpus.search("tcgen05.mma", "b200", limit=3)]
    assert await refused(session, "isa_packet", topic="nosuch") == f"error: {_context_error()}"


def _context_error() -> str:
    from ksearch.context import ContextError

    try:
        build_packet("nosuch")
    except ContextError as e:
        return str(e)
    raise AssertionError("build_packet accepted an unknown topic")


async def log_tools(session: ClientSession, run: Path) -> None:
    """The read-only log tools, the bounds of log_query, and what the sandbox refuses."""
    stats = await call(session, "log_stats", run=run.name)
    assert stats["search_evaluations"] == 2 and stats["run"] == run.name
    rows = await call(session, "log_query", run=run.name, sql="SELECT candidate FROM steps ORDER BY ordinal")
    assert rows["columns"] == ["candidate"] and rows["rows"] == [["c0000"], ["c0001"]]
    many = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 5000) SELECT i FROM n"
    bounded = await call(session, "log_query", run=run.name, sql=many, max_rows=7)
    assert len(bounded["rows"]) == 7 and bounded["truncated"]
    assert len((await call(session, "log_query", run=run.name, sql=many, max_rows=10**6))["rows"]) == 1000
    for sql, why in [
        (f"ATTACH DATABASE '{run / 'x.db'}' AS x", "SELECT (or WITH ... SELECT) statement only"),
        ("PRAGMA query_only = OFF", "SELECT (or WITH ... SELECT) statement only"),
        ("SELECT 1; PRAGMA query_only = OFF", "one statement at a time"),
        ("WITH x AS (SELECT 1) DELETE FROM steps", "not authorized"),
        ("SELECT * FROM pragma_table_info('steps') JOIN (SELECT load_extension('x'))", "not authorized"),
    ]:
        assert why in await refused(session, "log_query", run=run.name, sql=sql)
    assert not (run / "x.db").exists()
    tree = await call(session, "tree", run=run.name)
    assert tree["nodes"] > 1 and "row mapping" in tree["text"]
    memory = await call(session, "memory", run=run.name, budget_tokens=400)
    assert memory["text"].startswith("Run memory") and memory["evaluations"] >= 2
    best = await call(session, "best", run=run.name)
    assert best["candidate"] in ("c0000", "c0001") and best["packet"]["status"] == "pass"
    assert best["target"] == "h100" and best["source"].startswith("# ksearch template:")

    outside = await refused(session, "log_stats", run=str(TESTS))
    assert "outside the runs this MCP server reads" in outside
    assert "outside" in await refused(session, "tree", run="../..")
    assert "outside what this MCP server reads" in await refused(
        session, "compile", source=HONEST, task=str(TESTS / "fixtures"), targets=["b200"]
    )
    assert "outside" in await refused(session, "select_skills", task="/etc/passwd", target="b200")


async def compile_for_b200(session: ClientSession) -> None:
    compiled = await call(session, "compile", source=HONEST, task="rmsnorm", targets=["b200"])
    (b200,) = compiled["targets"]
    assert compiled["ok"] and b200["target"] == "b200" and b200["compile"]["arch"] == "sm_100a"
    assert b200["audit"]["registers"] and b200["audit"]["spills"] == 0 and b200["audit"]["verdicts"]


async def worked_example(session: ClientSession, run: Path) -> None:
    """The README's example: an honest kernel evaluated on the CPU, then submitted to the run."""
    honest = await call(
        session,
        "evaluate",
        source=HONEST,
        task="rmsnorm",
        device="cpu",
        workloads=[WORKLOAD],
        dtype="float16",
    )
    assert honest["status"] == "pass" and honest["performance"] is None
    good = await call(
        session, "submit", source=HONEST, run=run.name, parent="c0000", rationale="one row per program"
    )
    assert good["passed"] and good["candidate"] == "c0002" and good["proposer"] == f"agent:{AGENT}"
    assert (
        good["score_basis"] == "static-estimate:h100" and good["packet"]["candidate"]["parent_id"] == "c0000"
    )
    assert "no candidate" in await refused(session, "submit", source=HONEST, run=run.name, parent="c9999")
    assert "searches task rmsnorm" in await refused(
        session, "submit", source=HONEST, run=run.name, task="softmax"
    )


async def cheat_through_evaluate_and_submit(
    session: ClientSession, run: Path, candidate: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The cheat's packet from evaluate (the run's workload and seed) and its submit answer."""
    cheat = await call(
        session,
        "evaluate",
        source=CHEAT.read_text(),
        task="rmsnorm",
        device="cpu",
        workloads=[WORKLOAD],
        seeds=[0],
    )
    assert cheat["status"] == "fail"
    bad = await call(session, "submit", source=CHEAT.read_text(), run=run.name, rationale="copy the input")
    assert bad["candidate"] == candidate and not bad["passed"] and bad["proposer"] == f"agent:{AGENT}"
    return cheat, bad


def check_the_log_sees_the_submits(run: Path, submits: int) -> None:
    """`log verify`, `log stats` and `report` count the agent's attempts, named as its proposer."""
    assert ksearch("log", "verify", run).returncode == 0
    stats = json.loads(ksearch("log", "stats", run, "--json").stdout)
    assert stats["search_evaluations"] == 2 + submits and stats["rejections"] == {"numerical_mismatch": 1}
    calls = [r.row["payload"] for r, _ in iter_rows(run) if r.row and r.row["kind"] == "proposer_call"]
    agent = [c for c in calls if c["model"] == f"agent:{AGENT}"]
    assert [c["kind"] for c in agent] == ["implement"] * submits
    assert agent[-1]["summary"].endswith(": copy the input")
    query = ksearch(
        "log", "query", run, "SELECT count(*) AS n FROM proposer_calls WHERE model LIKE 'agent:%'"
    )
    assert query.returncode == 0 and f" {submits} " in query.stdout
    report = ksearch("report", run, "--out", run / "r.html")
    html = (run / "r.html").read_text()
    assert (
        report.returncode == 0
        and f"{2 + submits} search evaluations" in html
        and "numerical_mismatch" in html
    )


# ---------------------------------------------------------------- the tests


def test_stdio_serves_every_tool_and_resource_and_submits_into_a_run(runs: Path):
    (run,) = runs.iterdir()
    # `ksearch eval` on the cheat, at the run's workload and seed, alongside the server's evaluation
    eval_args = [
        "eval",
        CHEAT,
        "--task",
        "rmsnorm",
        "--device",
        "cpu",
        "--workloads",
        WORKLOAD,
        "--seeds",
        "0",
    ]
    cli_eval = subprocess.Popen(
        [sys.executable, "-m", "ksearch", *map(str, eval_args), "--json"], stdout=subprocess.PIPE, text=True
    )

    async def scenario() -> None:
        async with stdio_session("--run", str(runs)) as session:
            await resources_and_context(session)
            await log_tools(session, run)
            await compile_for_b200(session)
            cheat, submitted = await cheat_through_evaluate_and_submit(session, run, "c0002")
            # the same verdict as `ksearch eval`, through evaluate and through submit
            cli = json.loads(cli_eval.communicate(timeout=600)[0])
            assert cheat["failure_class"] == cli["failure_class"] == submitted["failure_class"]
            assert cheat["message"] == cli["message"] == submitted["message"]
            # tool errors are the CLI's lines
            for args, tool, arguments in [
                (
                    ("skills", "select", "--task", "rmsnorm", "--target", "nosuch"),
                    "select_skills",
                    {"task": "rmsnorm", "target": "nosuch"},
                ),
                (
                    ("log", "query", run, "ATTACH 'x.db' AS x"),
                    "log_query",
                    {"run": run.name, "sql": "ATTACH 'x.db' AS x"},
                ),
                (("tasks", "show", "nosuch"), "compile", {"source": HONEST, "task": "nosuch"}),
            ]:
                assert await refused(session, tool, **arguments) == ksearch(*args).stderr.strip()

    try:
        run_async(scenario)
    finally:
        cli_eval.kill()
        cli_eval.wait()
    check_the_log_sees_the_submits(run, submits=1)


def test_http_on_localhost_serves_every_resource_and_the_log_tools(runs: Path):
    (run,) = runs.iterdir()

    async def scenario() -> None:
        async with http_session("--run", str(runs), "--eval-budget", "0") as session:
            await resources_and_context(session)
            await log_tools(session, run)
            # no evaluation allowed: refused at once, before any harness starts
            assert "evaluation budget (0 of 0)" in await refused(
                session, "evaluate", source=HONEST, task="rmsnorm", device="cpu"
            )

    run_async(scenario)


def test_http_on_localhost_compiles_judges_and_submits_within_a_session_budget(runs: Path):
    (run,) = runs.iterdir()

    async def scenario() -> None:
        async with http_session("--run", str(runs), "--eval-budget", "2") as session:
            await compile_for_b200(session)
            cheat, submitted = await cheat_through_evaluate_and_submit(session, run, "c0002")
            assert cheat["failure_class"] == submitted["failure_class"] == "numerical_mismatch"
            # two evaluations were the session's budget: the next is refused before anything runs
            spent = await refused(session, "submit", source=HONEST, run=run.name)
            assert "evaluation budget (2 of 2)" in spent

    run_async(scenario)
    check_the_log_sees_the_submits(run, submits=1)


def test_the_readme_worked_example_evaluates_and_submits_an_honest_kernel(runs: Path):
    (run,) = runs.iterdir()

    async def scenario() -> None:
        async with stdio_session("--run", str(runs)) as session:
            await compile_for_b200(session)
            await worked_example(session, run)

    run_async(scenario)
    assert ksearch("log", "verify", run).returncode == 0
    stats = json.loads(ksearch("log", "stats", run, "--json").stdout)
    assert stats["search_evaluations"] == 3 and stats["by_status"] == {"pass": 3}


def test_a_submit_is_refused_while_a_search_writes_the_run(runs: Path):
    from ksearch.log.lock import writer_lock

    (run,) = runs.iterdir()

    async def scenario() -> None:
        async with stdio_session("--run", str(run)) as session:
            with writer_lock(run):  # as a running `ksearch run --resume` holds it
                error = await refused(session, "submit", source=HONEST)
            assert "is being written by" in error and f"pid {os.getpid()}" in error
            assert (await call(session, "log_stats"))["search_evaluations"] == 2  # the one run, by default

    run_async(scenario)
    assert [r.row["kind"] for r, _ in iter_rows(run) if r.row].count("step") == 2  # nothing was appended
