"""`ksearch mcp`: the MCP server agents use, built on the official SDK's MCPServer.

Resources (ksearch.mcp.resources) are the skills, ISA chapters and sections, task contracts and
target profiles. Tools (ksearch.mcp.tools, ksearch.mcp.submit) select skills and ISA packets,
compile and audit a source, evaluate it in the harness a search uses, submit it into a run's log,
and read runs' logs. The SDK speaks the protocol; this module only registers what ksearch offers,
keeps the limits (ksearch.mcp.limits) and the sandbox (ksearch.mcp.sandbox), and turns every
KsearchError into the one-line `error:` text the CLI prints for it, as the tool's error result.

No `from __future__ import annotations` here: the SDK reads the tools' signatures (closures in
build_server) to make their input schemas, so their annotations must be objects, not strings.
"""

import functools
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError
from mcp.server.mcpserver.resources import FunctionResource
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

import ksearch
from ksearch import settings
from ksearch.errors import KsearchError, error_line
from ksearch.mcp import resources, tools
from ksearch.mcp.limits import EvaluationLimits, EvaluatorKey
from ksearch.mcp.sandbox import Sandbox
from ksearch.mcp.submit import submit

if TYPE_CHECKING:
    from ksearch.harness.evaluate import Evaluator

NAME = "ksearch"
INSTRUCTIONS = (
    "ksearch searches GPU kernels. Read skills (skill://NAME) and ISA chapters (isa://ID, isa://ID#section) "
    "or ask select_skills / isa_packet for what fits a task and target under a token budget; write a "
    "candidate module (run(*inputs, *outputs), every output written in place); `compile` it for targets "
    "without a GPU, `evaluate` it in the correctness-gated harness, and `submit` it to a run's log; read "
    "runs with log_stats, log_query, tree, memory and best. Errors come back as one `error:` line."
)


@dataclass(frozen=True)
class ServerOptions:
    runs: tuple[Path, ...] = ()  # run directories, or folders of runs, the log tools may read
    concurrency: int = 1  # evaluations at once
    eval_budget: int = 50  # evaluations (evaluate and submit) per client session


def _tool_errors(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any] | CallToolResult]:
    """The tool, with a user error returned as the CLI's `error:` line (a tool error result), not as
    the SDK's 'Error executing tool ...' wrapping."""

    @functools.wraps(fn)  # the SDK reads the wrapped signature for the input schema
    def call(*args: Any, **kwargs: Any) -> dict[str, Any] | CallToolResult:
        try:
            return fn(*args, **kwargs)
        except (KsearchError, OSError) as e:
            return CallToolResult(content=[TextContent(type="text", text=error_line(e))], is_error=True)

    return call


def _resource_errors(read: Callable[..., str]) -> Callable[..., str]:
    @functools.wraps(read)
    def call(*args: Any, **kwargs: Any) -> str:
        try:
            return read(*args, **kwargs)
        except (KsearchError, OSError) as e:
            raise ResourceError(error_line(e)) from e

    return call


def session_of(ctx: Context) -> str:
    """Whose evaluation budget a call spends: the HTTP session's (its Mcp-Session-Id), else the
    process's (stdio serves one client)."""
    headers = ctx.headers
    return (headers.get("mcp-session-id") if headers else None) or "stdio"


def client_name(ctx: Context) -> str | None:
    params = ctx.session.client_params
    return params.client_info.name if params is not None else None


def _make_evaluator(key: EvaluatorKey) -> "Evaluator":
    from ksearch.harness.evaluate import Evaluator

    device, timeout_s, bench_budget_s = key
    return Evaluator(device, timeout_s=timeout_s, bench_budget_s=bench_budget_s)


# Argument types with the descriptions an agent reads in the tool's input schema.
Source = Annotated[str, Field(description="the candidate's complete source text (a Triton module, or HIP)")]
TaskRef = Annotated[str, Field(description="a built-in task name such as rmsnorm (see task:// resources)")]
RunRef = Annotated[
    str | None,
    Field(
        description="a run directory, or its name under a --run folder; may be omitted when the server has one run"
    ),
]
TARGETS = "target profile: b200, h100, h200, mi300x, mi355x"
Target = Annotated[str | None, Field(description=TARGETS)]
Budget = Annotated[int, Field(description="token budget (o200k_base tokens)", gt=0)]
Language = Annotated[
    str | None,
    Field(description="triton, tilelang or hip (default: recognised from the source)"),
]

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
JUDGE = ToolAnnotations(read_only_hint=True, open_world_hint=False, idempotent_hint=True)


def build_server(options: ServerOptions) -> MCPServer:
    """The server with every resource and tool registered; evaluators start on first use and stop
    with the server."""
    limits = EvaluationLimits(options.concurrency, options.eval_budget, _make_evaluator)
    sandbox = Sandbox(options.runs)
    scratch = Path(tempfile.mkdtemp(prefix="ksearch-mcp-"))
    services = tools.Services(sandbox, limits, scratch)

    @asynccontextmanager
    async def lifespan(app: MCPServer) -> AsyncIterator[None]:
        try:
            yield
        finally:
            limits.close()
            shutil.rmtree(scratch, ignore_errors=True)

    app = MCPServer(
        NAME,
        title="ksearch: GPU kernel search",
        instructions=INSTRUCTIONS,
        version=ksearch.__version__,
        log_level="WARNING",
        lifespan=lifespan,
    )
    _add_resources(app)

    # ---------------------------------------------------------------- context

    @_tool_errors
    def select_skills(
        task: TaskRef, target: Annotated[str, Field(description=TARGETS)], budget_tokens: Budget = 4000
    ) -> dict[str, Any]:
        """Skills for a task on a target, best first, as many whole skills as fit the budget (the proposer's
        own selection); `text` holds them. `task` may also be free text such as 'mxfp4 gemm'."""
        return tools.select_skills(services, task, target, budget_tokens)

    @_tool_errors
    def isa_packet(
        topic: Annotated[str, Field(description="an ISA topic, e.g. mfma_scale, tcgen05, wgmma")],
        target: Target = None,
        budget_tokens: Budget = 1500,
    ) -> dict[str, Any]:
        """The topic's facts and chapters that fit the budget, with ids (isa://ID) to read more."""
        return tools.isa_packet(topic, target, budget_tokens)

    @_tool_errors
    def isa_search(
        text: Annotated[str, Field(description="words to look for; mnemonics work (v_mfma_scale)")],
        target: Target = None,
        limit: Annotated[int, Field(description="hits to return", gt=0)] = 10,
    ) -> dict[str, Any]:
        """Full-text search over ISA sections; each hit's id reads as isa://ID."""
        return tools.isa_search(text, target, limit)

    # ---------------------------------------------------------------- compile and evaluate

    @_tool_errors
    def compile_candidate(
        source: Source,
        task: TaskRef,
        targets: Annotated[
            list[str] | None, Field(description="target profiles (default: h100, b200, mi355x)")
        ] = None,
        dtype: Annotated[str | None, Field(description="dtype variant (default: the task's first)")] = None,
        language: Language = None,
    ) -> dict[str, Any]:
        """Compile the source for each target without a GPU and audit the emitted code: instruction
        families found vs expected, registers, spills, shared memory/LDS, occupancy, verdicts."""
        return tools.compile_source(
            services, source, task, targets or list(settings.DEFAULT_TARGETS), dtype, language
        )

    @_tool_errors
    def evaluate(
        source: Source,
        task: TaskRef,
        ctx: Context,
        device: Annotated[str, Field(description="auto, cpu (Triton interpreter) or cuda")] = "auto",
        workloads: Annotated[
            list[str] | None, Field(description="workload names (default: the task's suite)")
        ] = None,
        dtype: Annotated[str | None, Field(description="dtype variant (default: the task's first)")] = None,
        target: Target = None,
        seeds: Annotated[list[int] | None, Field(description="input seeds (default: 0, 1)")] = None,
        language: Language = None,
    ) -> dict[str, Any]:
        """Verify (and on a GPU, time) the source in the sandboxed, correctness-gated harness a search
        uses, as `ksearch eval` does; returns the EvidencePacket. Counts against the session's budget."""
        return tools.evaluate_source(
            services, session_of(ctx), source, task, device, workloads, dtype, target, seeds, language
        )

    @_tool_errors
    def submit_candidate(
        source: Source,
        ctx: Context,
        run: RunRef = None,
        task: Annotated[str | None, Field(description="the run's task (checked when given)")] = None,
        parent: Annotated[
            str | None, Field(description="the run's candidate this one derives from (c0012)")
        ] = None,
        rationale: Annotated[str, Field(description="why this candidate: logged with the attempt")] = "",
    ) -> dict[str, Any]:
        """Evaluate the source with the run's settings and append it to the run's log as an attempt of
        its own, proposed by agent:<client name>; the run's mining, memory and reports then include it.
        Refused while a search writes the run. Counts against the session's budget."""
        return submit(
            sandbox, limits, session_of(ctx), client_name(ctx), source, run, task, parent, rationale
        )

    # ---------------------------------------------------------------- the log

    @_tool_errors
    def log_stats(run: RunRef = None) -> dict[str, Any]:
        """`ksearch log stats`: attempts, pass rate, rejections by failure class, drift, best score per
        target, cost, top strategies."""
        return tools.log_stats(services, run)

    @_tool_errors
    def log_query(
        sql: Annotated[str, Field(description="one SELECT (or WITH ... SELECT) over the run's index")],
        run: RunRef = None,
        max_rows: Annotated[
            int, Field(description=f"rows to return, at most {tools.MAX_QUERY_ROWS}", gt=0)
        ] = 100,
    ) -> dict[str, Any]:
        """`ksearch log query`, read-only: tables events, attempts, steps, failures, failures_fts,
        proposer_calls and their aggregates; writes, ATTACH and PRAGMA changes are refused."""
        return tools.log_query(services, run, sql, max_rows)

    @_tool_errors
    def tree(run: RunRef = None, budget_tokens: Budget = 2000) -> dict[str, Any]:
        """The run's world model (strategy tree), rebuilt from its log, as text within the budget."""
        return tools.tree(services, run, budget_tokens)

    @_tool_errors
    def memory(run: RunRef = None, budget_tokens: Budget = 800) -> dict[str, Any]:
        """What the run has learned: proven strategies with evidence, dead ends with their failure class."""
        return tools.memory(services, run, budget_tokens)

    @_tool_errors
    def best(run: RunRef = None, target: Target = None) -> dict[str, Any]:
        """The run's best passing kernel on a target (default: its primary): source, score and packet."""
        return tools.best(services, run, target)

    for fn, name, hints in [
        (select_skills, "select_skills", READ_ONLY),
        (isa_packet, "isa_packet", READ_ONLY),
        (isa_search, "isa_search", READ_ONLY),
        (compile_candidate, "compile", JUDGE),
        (evaluate, "evaluate", JUDGE),
        (submit_candidate, "submit", ToolAnnotations(read_only_hint=False, destructive_hint=False)),
        (log_stats, "log_stats", READ_ONLY),
        (log_query, "log_query", READ_ONLY),
        (tree, "tree", READ_ONLY),
        (memory, "memory", READ_ONLY),
        (best, "best", READ_ONLY),
    ]:
        app.add_tool(fn, name=name, annotations=hints, structured_output=True)
    return app


def _add_resources(app: MCPServer) -> None:
    for entry in resources.catalog():
        app.add_resource(
            FunctionResource.from_function(
                _resource_errors(entry.read),
                uri=entry.uri,
                name=entry.name,
                description=entry.description,
                mime_type=entry.mime_type,
            )
        )
    # the same kinds by name: what was added since start, and unknown names' `error:` lines
    templates: Sequence[tuple[str, str, Callable[..., str]]] = [
        ("skill://{+ref}", resources.MARKDOWN, lambda ref: resources.read_skill(ref)),
        ("isa://{family}/{name}{#section}", resources.MARKDOWN, _isa_section),
        ("isa://{+chapter}", resources.MARKDOWN, lambda chapter: resources.read_isa(chapter)),
        ("task://{name}", resources.JSON, lambda name: resources.read_task(name)),
        ("target://{name}", resources.JSON, lambda name: resources.read_target(name)),
    ]
    for uri, mime, read in templates:
        app.resource(uri, name=uri.split(":")[0], mime_type=mime)(_resource_errors(read))


def _isa_section(family: str, name: str, section: str) -> str:
    return resources.read_isa(f"{family}/{name}#{section}")


def serve(
    options: ServerOptions,
    transport: Literal["stdio", "http"] = "stdio",
    host: str = "127.0.0.1",
    port: int = 8765,
) -> None:
    """Serve until the client goes (stdio) or the process is stopped (http, at http://HOST:PORT/mcp)."""
    app = build_server(options)
    if transport == "stdio":
        app.run("stdio")
    else:
        app.run("streamable-http", host=host, port=port)
