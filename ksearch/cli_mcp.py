"""`ksearch mcp`: serve skills, ISA chapters, the harness and run logs to agents over MCP.

Thin, like the rest of the CLI: it checks the options and calls ksearch.mcp.server.serve. The SDK is
imported only when the command runs, so the CLI starts without the `mcp` extra installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ksearch.errors import ConfigError, KsearchError


def mcp_cmd(
    run: Annotated[
        list[Path] | None,
        typer.Option(
            "--run",
            metavar="RUN_DIR",
            help="a run directory, or a folder of runs (experiment_log/), that the log tools and submit may "
            "use; repeatable. Nothing else on disk is read but the skills, the ISA corpus and configs/",
        ),
    ] = None,
    transport: Annotated[str, typer.Option(help="stdio (a client starts the server) or http")] = "stdio",
    host: Annotated[str, typer.Option(help="http: address to bind (loopback by default)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="http: port; the endpoint is http://HOST:PORT/mcp")] = 8765,
    concurrency: Annotated[int, typer.Option(help="evaluations run at once; more calls wait")] = 1,
    eval_budget: Annotated[
        int, typer.Option(help="evaluations (evaluate and submit) one client session may start")
    ] = 50,
) -> None:
    """Serve ksearch to agents over MCP: skills, ISA chapters, task contracts and targets as resources;
    select_skills, isa_packet, isa_search, compile, evaluate, submit, log_stats, log_query, tree, memory
    and best as tools. Every tool error is the one-line `error:` text the CLI prints."""
    if transport not in ("stdio", "http"):
        raise ConfigError(f"unknown --transport {transport!r}; use stdio or http")
    for path in run or []:
        if not path.is_dir():
            raise ConfigError(f"--run {path}: not a directory; pass a run directory or a folder of runs")
    try:
        from ksearch.mcp.server import ServerOptions, serve
    except ModuleNotFoundError as e:
        if e.name is None or e.name.split(".")[0] != "mcp":
            raise
        raise KsearchError(
            "`ksearch mcp` needs the MCP Python SDK 2.x (its MCPServer): pip install 'mcp>=2.3' or -e '.[mcp]'"
        ) from None
    options = ServerOptions(runs=tuple(run or ()), concurrency=concurrency, eval_budget=eval_budget)
    serve(options, "stdio" if transport == "stdio" else "http", host=host, port=port)


def register(app: typer.Typer) -> None:
    app.command("mcp")(mcp_cmd)
