"""The `ksearch` command line. Thin: each command parses, calls one function, prints.

Every user error is a KsearchError; `main` prints its message on one line and exits non-zero, so
bad input never shows a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

import ksearch
from ksearch import settings
from ksearch.cli_common import AsJson, RunDir, out, print_rows
from ksearch.cli_common import print_json as _print_json
from ksearch.cli_common import table as _table
from ksearch.cli_context import isa_app, skills_app
from ksearch.cli_log import register as register_log_mining
from ksearch.cli_mcp import register as register_mcp
from ksearch.errors import KsearchError, error_line
from ksearch.propose.registry import SPEC_HELP as PROPOSER_SPECS
from ksearch.settings import DEFAULT_TARGETS

if TYPE_CHECKING:
    from ksearch.registry.select import Manifest

app = typer.Typer(
    help="ksearch: evolutionary, agentic search for GPU kernels.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
tasks_app = typer.Typer(help="Built-in and imported task contracts.", no_args_is_help=True)
targets_app = typer.Typer(
    help="Target GPU profiles (B200, MI355X, H100, H200, MI300X).", no_args_is_help=True
)
log_app = typer.Typer(help="Read, check, index and export a run's experiment log.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")
app.add_typer(targets_app, name="targets")
bench_app = typer.Typer(help="Measure ksearch's own machinery on this machine.", no_args_is_help=True)
app.add_typer(log_app, name="log")
app.add_typer(bench_app, name="bench")
app.add_typer(skills_app, name="skills")
app.add_typer(isa_app, name="isa")
register_log_mining(app, log_app)  # log distill, log serve, report, replay (ksearch/cli_log.py)
register_mcp(app)  # mcp: the server agents use (ksearch/cli_mcp.py)


def _version(value: bool) -> None:
    if value:
        out.print(f"ksearch {ksearch.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool | None,
        typer.Option("--version", "-V", callback=_version, is_eager=True, help="print the version and exit"),
    ] = None,
) -> None:
    pass


# ---------------------------------------------------------------- run


@app.command()
def run(
    config: Annotated[
        Path | None, typer.Argument(help="run config YAML; the embedded defaults when omitted")
    ] = None,
    budget_evals: Annotated[
        int | None, typer.Option(help="candidates to evaluate (overrides the config; with --resume: N more)")
    ] = None,
    budget_seconds: Annotated[
        float | None, typer.Option(help="wall-clock limit in seconds (with --resume: S more)")
    ] = None,
    log_dir: Annotated[
        Path | None, typer.Option(help="where run directories go (default experiment_log/)")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="search seed")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu (Triton interpreter) or cuda")] = None,
    task: Annotated[str | None, typer.Option(help="override the config's task (name or path)")] = None,
    dtype: Annotated[
        str | None, typer.Option(help="override the config's dtype (a variant of the task)")
    ] = None,
    workloads: Annotated[
        str | None,
        typer.Option(help="comma-separated workloads to verify and time (overrides eval.workloads)"),
    ] = None,
    resume: Annotated[
        Path | None, typer.Option(help="continue the run in this directory where it stopped")
    ] = None,
    proposer: Annotated[
        str | None,
        typer.Option(
            help=PROPOSER_SPECS + " | an installed plugin's name "
            "(overrides the config's proposer backend and model)"
        ),
    ] = None,
    replay_from: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="with --proposer replay: the run whose "
            "recorded responses are served (its config "
            "is used when CONFIG is omitted)",
        ),
    ] = None,
    budget_usd: Annotated[
        float | None, typer.Option(help="LLM spend limit in dollars (0: none; with --resume: D more)")
    ] = None,
    strategy: Annotated[
        str | None,
        typer.Option(
            help="worldmodel | random (uniform sampling of the same template space: the baseline a search "
            "curve is compared with)"
        ),
    ] = None,
    reuse: Annotated[
        list[Path] | None,
        typer.Option(
            metavar="<path>",
            help="a run whose evaluations of identical candidates (same source, settings and GPU) are "
            "reused, not measured again; repeatable (replaces the config's eval.reuse)",
        ),
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            help="local (default): evaluate in this process | ray: on Ray actors, one per GPU, of a "
            "local Ray instance (or the cluster this machine joined) | ray://HOST:PORT: of that cluster "
            "(overrides the config's cluster backend and address; needs the ray extra)"
        ),
    ] = None,
) -> None:
    """Search for fast kernels: plan in a world model, try candidates, learn from every verdict.

    Exits 1 when the run evaluated no candidate, 130 when stopped by Ctrl-C (resumable)."""
    if resume is None and replay_from is None:
        # a dead LLM endpoint or a missing SDK is reported in a second, before torch and the search load
        from ksearch.propose.registry import preflight
        from ksearch.search.config import proposer_of

        preflight(proposer_of(config, proposer))
    from ksearch.search.progress import live_progress, render_summary
    from ksearch.search.run import start_run

    overrides = {
        "budget.evaluations": budget_evals,
        "budget.wall_s": budget_seconds,
        "seed": seed,
        "device": device,
        "task": task,
        "dtype": dtype,
        "eval.workloads": _split_commas([workloads]) if workloads else None,
        "budget.llm_usd": budget_usd,
        "proposer": proposer,
        "replay_from": str(replay_from) if replay_from else None,
        "search.strategy": strategy,
        "eval.reuse": [str(r) for r in reuse] if reuse else None,
        "cluster": cluster,
    }

    def started(run_dir: Path) -> None:  # first, so that a killed run's directory is on screen
        out.print(f"run: {run_dir}   resume: ksearch run --resume {run_dir}", highlight=False)

    from ksearch.cluster import open_pool  # Ray itself is imported only for a ray cluster

    with live_progress(out) as on_progress:
        result = start_run(
            config,
            log_dir=log_dir,
            overrides=overrides,
            resume=resume,
            on_progress=on_progress,
            on_start=started,
            open_pool=open_pool,
        )
    out.print(render_summary(result))
    if result.interrupted:
        raise typer.Exit(130)
    if result.evaluated == 0:
        typer.echo(f"error: the run evaluated no candidate: {result.stop_reason}", err=True)
        raise typer.Exit(1)


@app.command()
def tree(
    run_dir: RunDir,
    svg: Annotated[Path | None, typer.Option(help="also write the tree as SVG here")] = None,
    dot: Annotated[Path | None, typer.Option(help="also write the tree as Graphviz DOT here")] = None,
    png: Annotated[Path | None, typer.Option(help="also write a PNG (needs graphviz's dot)")] = None,
) -> None:
    """Show a run's world model, rebuilt from its log."""
    from ksearch.worldmodel import WorldModel, render_rich, to_dot, write_png, write_svg

    wm = WorldModel.from_log(run_dir)
    out.print(render_rich(wm, run_dir=run_dir))
    if svg:
        write_svg(wm, svg)
        out.print(f"wrote {svg}")
    if dot:
        dot.write_text(to_dot(wm))
        out.print(f"wrote {dot}")
    if png:
        write_png(wm, png)
        out.print(f"wrote {png}")


# ---------------------------------------------------------------- tasks and targets


@tasks_app.command("list")
def tasks_list(as_json: AsJson = False) -> None:
    """List the built-in tasks."""
    from ksearch.task.describe import list_task_summaries, render_task_list

    rows = list_task_summaries()
    _print_json(rows) if as_json else out.print(render_task_list(rows))


@tasks_app.command("show")
def tasks_show(
    name: Annotated[str, typer.Argument(help="task name or path to a task directory / task.yaml")],
    dtype: Annotated[str | None, typer.Option(help="dtype variant for FLOP/byte figures")] = None,
    as_json: AsJson = False,
) -> None:
    """Show a task's contract, shapes, and FLOPs/bytes per workload."""
    from ksearch.task import load_task
    from ksearch.task.describe import describe_task, render_task

    task = load_task(name)
    _print_json(describe_task(task, dtype)) if as_json else out.print(render_task(task, dtype))


@tasks_app.command("import")
def tasks_import(
    path: Annotated[
        Path,
        typer.Argument(
            help="a KernelBench problem .py, a FlashInfer-Bench definition .json "
            "or a GPU MODE problem directory; or a folder of them (a KernelBench "
            "level, a GPU MODE problems/ tree, a FlashInfer-Bench dataset)"
        ),
    ],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="the problem's format: a built-in importer's name or a plugin's; an unknown one lists "
            "them (default: recognised from the files)",
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="task name (default: from the file name)")] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="where the task directory goes (default: configs/tasks/)")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="write a problem that fails the honesty checks, flags recorded")
    ] = False,
    memory_mb: Annotated[
        int,
        typer.Option("--memory-mb", help="a folder: kill a problem's import over this resident memory (MiB)"),
    ] = 2048,
    timeout: Annotated[
        float, typer.Option(help="a folder: kill a problem's import after this many seconds")
    ] = 60.0,
    jobs: Annotated[int, typer.Option(help="a folder: problems imported at once")] = 1,
    as_json: AsJson = False,
) -> None:
    """Turn a problem in a public format into a task that `ksearch run` and `ksearch eval` accept;
    a folder of problems is imported one by one, each in its own process, and closes with a table."""
    from ksearch.task.importers import import_task
    from ksearch.task.importers.bulk import is_collection

    if is_collection(path, fmt):
        _tasks_import_folder(path, fmt, name, out_dir, force, memory_mb, timeout, jobs, as_json)
        return
    imported = import_task(path, fmt=fmt, name=name, out=out_dir, force=force)
    if as_json:
        _print_json(
            {
                "name": imported.name,
                "directory": str(imported.directory),
                "inferred": imported.inferred,
                "flags": imported.flags,
            }
        )
        return
    out.print(f"imported {path} as task [bold]{imported.name}[/bold] in {imported.directory}")
    for line in imported.inferred:
        out.print(f"  inferred: {line}")
    for flag in imported.flags:
        out.print(f"  [red]flagged[/red]: {flag}")
    out.print(
        f"next: ksearch tasks show {imported.directory}   ksearch eval CANDIDATE --task {imported.directory}"
    )


def _tasks_import_folder(
    path: Path,
    fmt: str | None,
    name: str | None,
    out_dir: Path | None,
    force: bool,
    memory_mb: int,
    timeout: float,
    jobs: int,
    as_json: bool,
) -> None:
    """`tasks import FOLDER`: every problem under it, a progress bar (on stderr with --json), the closing table."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ksearch.errors import TaskError
    from ksearch.task.importers.bulk import import_all, render_report

    if name is not None:
        raise TaskError(
            f"--name names one task, but {path} is a folder of problems; import a problem alone to name it"
        )
    console = Console(stderr=True) if as_json else out
    columns = (
        TextColumn("{task.description}", style="bold"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[current]}", style="dim"),
    )
    # the bar is drawn on a terminal only: a log gets the closing table alone
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        bar_id = bar.add_task("importing", total=None, current="")

        def progress(done: int, total: int, current: str | None) -> None:
            shown = current if current is None or len(current) <= 28 else "..." + current[-25:]
            bar.update(bar_id, completed=done, total=total, current=shown or "")

        report = import_all(
            path,
            fmt=fmt,
            out=out_dir,
            force=force,
            memory_mb=memory_mb,
            timeout_s=timeout,
            jobs=jobs,
            on_progress=progress,
        )
    _print_json(report.model_dump(mode="json")) if as_json else out.print(render_report(report))


@targets_app.command("list")
def targets_list(as_json: AsJson = False) -> None:
    """List the target profiles."""
    from ksearch.target import describe_target, list_targets, load_target, render_target_list

    profiles = [load_target(n) for n in list_targets()]
    _print_json([describe_target(p) for p in profiles]) if as_json else out.print(
        render_target_list(profiles)
    )


@targets_app.command("show")
def targets_show(
    name: Annotated[str, typer.Argument(help="target name, e.g. b200")], as_json: AsJson = False
) -> None:
    """Show a target profile with the source of every figure."""
    from ksearch.target import describe_target, load_target, render_target

    profile = load_target(name)
    _print_json(describe_target(profile)) if as_json else out.print(render_target(profile))


@app.command("env-info")
def env_info(as_json: AsJson = False) -> None:
    """Snapshot of this machine: GPUs, driver, clocks, toolchain versions, CPU, host."""
    from ksearch.target import environment_snapshot, render_snapshot

    snap = environment_snapshot()
    if as_json:
        sys.stdout.write(snap.model_dump_json(indent=2) + "\n")
    else:
        out.print(render_snapshot(snap))


# ---------------------------------------------------------------- compile and audit


@app.command("compile")
def compile_cmd(
    candidate: Annotated[Path, typer.Argument(help="candidate source: Triton/TileLang module or .hip file")],
    task: Annotated[str, typer.Option(help="task name or path; gives shapes, dtypes and the op class")],
    target: Annotated[
        list[str], typer.Option(help="target profile; repeat or comma-separate for several")
    ] = list(DEFAULT_TARGETS),
    dtype: Annotated[str | None, typer.Option(help="dtype variant (default: the task's first)")] = None,
    jobs: Annotated[int | None, typer.Option(help="parallel compiles (default: CPU count)")] = None,
    timeout: Annotated[float, typer.Option(help="seconds before a compile is killed")] = 180.0,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="compile even where the cache has a result")
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="exit 3 when an audit check fails (warnings do not count)")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Compile one candidate for each target, then audit the emitted code against the target.

    Exits 1 when a compile fails; with --strict, 3 when every compile passed but an audit check failed."""
    from ksearch.audit import audit_compile, max_intensity
    from ksearch.compile import CompileRequest, compile_many
    from ksearch.target import load_target
    from ksearch.task import load_task

    spec = load_task(task)
    dtype = dtype or spec.default_dtype
    profiles = [load_target(t) for t in _split_commas(target)]
    requests = [
        CompileRequest(source_path=str(candidate), task=task, target=p.name, dtype=dtype) for p in profiles
    ]
    with out.status(f"compiling {candidate.name} for {', '.join(p.name for p in profiles)} ..."):
        results = compile_many(requests, jobs=jobs, timeout_s=timeout, use_cache=not no_cache)
    intensity = max_intensity(spec, dtype)
    audits = [audit_compile(r, p, spec.spec.op_family, dtype, intensity) for r, p in zip(results, profiles)]
    if as_json:
        _print_json(
            [
                {"compile": r.model_dump(mode="json"), "audit": a.model_dump(mode="json")}
                for r, a in zip(results, audits)
            ]
        )
    else:
        for r, a in zip(results, audits):
            status = "ok" if r.ok else (r.failure_class.value if r.failure_class else "failed")
            rows = [
                ("compile", f"{status}, {r.seconds:.1f} s" + (" (cached)" if r.cached else "")),
                ("kernels", ", ".join(k.name for k in r.kernels)),
                ("registers", a.registers),
                ("spills", a.spills),
                ("smem/LDS bytes", a.smem_bytes),
                ("occupancy", None if a.occupancy is None else f"{a.occupancy:.0%} (estimate)"),
                ("families found", ", ".join(a.families_found)),
                ("expected", ", ".join(a.families_expected)),
            ]
            rows += [
                (
                    f"verdict {v.check}",
                    ("ok" if v.ok else f"{v.severity.upper()}: ")
                    + ("" if v.ok else v.detail)
                    + ("" if v.ok or v.failure_class is None else f" [{v.failure_class.value}]"),
                )
                for v in a.verdicts
            ]
            out.print(_table(f"{candidate.name} on {r.target} ({r.arch}), {task} {dtype}", ["", ""], rows))
            for d in r.diagnostics:
                where = ":".join(str(x) for x in (d.file, d.line, d.column) if x is not None)
                out.print(f"[red]{r.target}[/] {where}: {d.severity}: {d.message}")
    if not all(r.ok for r in results):
        raise typer.Exit(1)
    if strict and any(not v.ok and v.severity == "fail" for a in audits for v in a.verdicts):
        raise typer.Exit(3)


# ---------------------------------------------------------------- evaluate


@app.command("eval")
def eval_cmd(
    candidate: Annotated[
        Path, typer.Argument(help="candidate module (Triton) implementing the task's entry")
    ],
    task: Annotated[str, typer.Option(help="task name or path")],
    target: Annotated[
        str | None, typer.Option(help="target profile the packet is for (default: this device)")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu (Triton interpreter) or cuda")] = "auto",
    dtype: Annotated[str | None, typer.Option(help="dtype variant (default: the task's first)")] = None,
    seeds: Annotated[str, typer.Option(help="comma-separated input seeds")] = "0,1",
    workloads: Annotated[
        str | None, typer.Option(help="comma-separated workload names (default: the suite)")
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="seconds before the evaluation is killed")
    ] = settings.DEFAULT_EVAL_TIMEOUT_S,
    artifacts: Annotated[
        Path | None, typer.Option(help="where timing samples go (default: none kept)")
    ] = None,
    rel_ci: Annotated[
        float, typer.Option(help="timing stops when the median's 95% CI is within this fraction")
    ] = 0.01,
    bench_budget: Annotated[float, typer.Option(help="seconds of timing per workload at most")] = 1.0,
    ncu: Annotated[
        bool, typer.Option(help="also time each workload under Nsight Compute (GPU, ncu on PATH)")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Verify (and on a GPU, time) one candidate in the sandbox; print its EvidencePacket.

    Exits 0 whenever the evaluation ran, whatever the verdict."""
    from ksearch.harness.evaluate import Evaluator
    from ksearch.task import load_task

    spec = load_task(task)
    try:
        seed_list = tuple(int(s) for s in seeds.split(",") if s.strip())
    except ValueError as e:
        raise KsearchError(f"--seeds takes comma-separated integers, got {seeds!r}") from e
    names = [w for w in (workloads or "").split(",") if w.strip()] or None
    with (
        Evaluator(
            device,
            timeout_s=timeout,
            artifacts_dir=artifacts,
            rel_ci=rel_ci,
            bench_budget_s=bench_budget,
            ncu=ncu,
        ) as ev,
        out.status(f"evaluating {candidate.name} on {ev.device} ..."),
    ):
        packet = ev.evaluate(candidate, spec, target=target, dtype=dtype, seeds=seed_list, workloads=names)
    if as_json:
        sys.stdout.write(packet.model_dump_json(indent=2) + "\n")
        return
    colour = {"pass": "green", "fail": "red", "error": "red", "skipped": "yellow"}[packet.status.value]
    head = f"[{colour}]{packet.status.value.upper()}[/]"
    if packet.failure_class:
        head += f" {packet.failure_class.value}"
    out.print(f"{head}: {packet.message}")
    if packet.validation:
        v = packet.validation
        out.print(
            f"checked {len(v.outputs)} outputs on {', '.join(v.workloads_checked)} x "
            f"{', '.join(v.distributions)} x seeds {v.seeds} ({v.backend})"
        )
    for verdict in packet.audit.anti_hack:
        if not verdict.ok:
            out.print(f"  [red]{verdict.check}[/]: {verdict.detail}")
    for d in packet.diagnostics:
        where = ":".join(str(x) for x in (d.file, d.line) if x is not None)
        out.print(f"  {where + ': ' if where else ''}{d.message}")
    if packet.performance is None and packet.unmeasured:
        out.print(f"performance: {packet.unmeasured.reason.value} ({packet.unmeasured.detail})")
    elif packet.performance is not None:
        rows = [
            (
                t.workload,
                f"{t.median_us:.2f}",
                f"{t.cv:.3f}",
                t.baseline,
                None if t.baseline_median_us is None else f"{t.baseline_median_us:.2f}",
                None if t.speedup is None else f"{t.speedup:.2f}x",
                None if t.sol_fraction is None else f"{t.sol_fraction:.0%}",
            )
            for t in packet.performance.workloads
        ]
        out.print(
            _table(
                f"timing on {packet.performance.device}",
                ["workload", "median us", "cv", "baseline", "baseline us", "speedup", "SOL"],
                rows,
            )
        )
        out.print(
            f"reward {packet.reward:.3f} = {packet.reward_formula}" if packet.reward is not None else ""
        )
    out.print(f"replay: {packet.environment.replay_command}")


# ---------------------------------------------------------------- evidence


@app.command()
def failures(as_json: AsJson = False) -> None:
    """The failure catalog: every failure class with its meaning."""
    from ksearch.evidence import FailureClass, status_for

    rows = [(f.value, status_for(f).value, f.meaning) for f in FailureClass]
    if as_json:
        _print_json([{"class": c, "status": s, "meaning": m} for c, s, m in rows])
    else:
        out.print(_table("failure classes", ["class", "status", "meaning"], rows))


@app.command()
def schema(
    out_path: Annotated[Path | None, typer.Option("--out", help="write here instead of stdout")] = None,
) -> None:
    """The EvidencePacket JSON Schema (docs/evidence.schema.json is generated by this)."""
    from ksearch.evidence import packet_json_schema

    text = packet_json_schema()
    if out_path:
        out_path.write_text(text)
        out.print(f"wrote {out_path}")
    else:
        sys.stdout.write(text)


# ---------------------------------------------------------------- log


@log_app.command("verify")
def log_verify(run_dir: RunDir) -> None:
    """Check the hash chain and replay the world model: exit 0 if intact, 3 naming the first bad row otherwise."""
    from ksearch.analysis.check import check_run

    report = check_run(run_dir)
    for w in report.warnings:
        out.print(f"[yellow]warning:[/] {w}")
    if not report.ok:
        typer.echo(f"log verify: FAILED: {report.problem}", err=True)
        raise typer.Exit(3)
    out.print(f"log verify: ok, {report.rows} rows intact")


@log_app.command("index")
def log_index(
    run_dir: RunDir,
    rebuild: Annotated[bool, typer.Option(help="drop the index and build it from scratch")] = False,
) -> None:
    """Bring attempts.db up to date with history.jsonl (incremental unless --rebuild)."""
    from ksearch.log import build_index

    r = build_index(run_dir, rebuild=rebuild)
    how = "rebuilt" if r.rebuilt else "updated"
    out.print(f"{how} {r.db}: {r.added} rows added, {r.total} in all, {r.seconds:.2f} s")


@log_app.command("show")
def log_show(
    run_dir: RunDir,
    last: Annotated[int, typer.Option(help="how many of the latest rows")] = 20,
    kind: Annotated[str | None, typer.Option(help="only rows of this kind (attempt, run_start, ...)")] = None,
    seq: Annotated[int | None, typer.Option(help="print this one row in full")] = None,
    as_json: AsJson = False,
) -> None:
    """Print the latest rows of a run's history, or one row in full."""
    from collections import deque

    from rich.text import Text

    from ksearch.log.history import iter_rows, kind_in, parse_row
    from ksearch.log.rows import row_line

    lines = (line for line, _ in iter_rows(run_dir) if kind is None or kind_in(line, (kind,)))
    if seq is not None:
        match = next((r for line in lines if (r := parse_row(line)).seq == seq), None)
        if match is None:
            raise KsearchError(f"no row with seq {seq} in {run_dir}" + (f" of kind {kind}" if kind else ""))
        _print_json(match.model_dump(mode="json"))
        return
    # the last lines are kept raw and parsed alone: a million-row log stays out of memory
    rows = [parse_row(line) for line in deque(lines, maxlen=last if last > 0 else None)]
    if as_json:
        _print_json([r.model_dump(mode="json") for r in rows])
        return
    # one line a row, cut with an ellipsis at the terminal's width; one row in full: --seq N or --json
    out.print(Text(f"{run_dir} (last {len(rows)}; one row in full: --seq N)", style="italic"))
    kind_width = max((len(r.kind) for r in rows), default=0)
    for r in rows:
        line = Text(f"{r.seq:>5} {r.ts[11:19]} {r.kind:<{kind_width}} {row_line(r)}", no_wrap=True)
        line.truncate(out.width, overflow="ellipsis")
        out.print(line, soft_wrap=True)


@log_app.command("stats")
def log_stats_cmd(
    run_dirs: Annotated[list[Path], typer.Argument(help="one or more run directories")],
    as_json: AsJson = False,
    window: Annotated[
        int | None, typer.Option(help="attempts per drift window (default: about 20 windows)")
    ] = None,
) -> None:
    """Attempts, pass rate, rejection histogram, accept-rate drift, best score per target, cost, top strategies."""
    from ksearch.cli_log import print_stats

    print_stats(run_dirs, as_json, window)


@log_app.command("curve")
def log_curve_cmd(
    run_dirs: Annotated[list[Path], typer.Argument(help="one run directory, or several to compare")],
    plot: Annotated[Path | None, typer.Option(help="also plot the curves here (.svg, .png or .pdf)")] = None,
    as_json: AsJson = False,
) -> None:
    """Best score after each evaluation. One run: evaluations to 50/90/100% of its best. Several
    (world-model runs and their random baselines): evaluations each took to 90% and to 100% of the
    best any reached, and the median over the runs of each search strategy."""
    from ksearch.analysis.curve import compare_runs, plot_comparison

    cmp = compare_runs(run_dirs)
    if plot is not None:
        plot_comparison(cmp, plot)
    if as_json:
        _print_json(
            {
                "reference": cmp.reference,
                "fraction": cmp.fraction,
                "runs": [
                    {
                        "run": r.name,
                        "evaluations": r.curve.evaluations,
                        "best": r.curve.best,
                        "basis": r.curve.basis,
                        "evals_to": {f"{int(f * 100)}%": r.curve.evals_to(f) for f in (0.5, 0.9, 1.0)},
                        "evals_to_reference": r.evals_to_reference,
                        "evals_to_top": r.evals_to_top,
                        "strategy": r.group,
                        "improvements": r.curve.improvements,
                    }
                    for r in cmp.runs
                ],
                "strategies": [
                    {
                        "strategy": g.group,
                        "runs": g.runs,
                        "median_evals_to_reference": g.median_to_reference,
                        "median_evals_to_top": g.median_to_top,
                        "median_best": g.median_best,
                    }
                    for g in cmp.groups()
                ],
            }
        )
        return
    if len(cmp.runs) == 1:
        c = cmp.runs[0].curve
        out.print(f"evaluations: {c.evaluations}   best: {c.best}   ({c.basis or 'no candidate passed'})")
        reach = ", ".join(f"{int(f * 100)}%: {c.evals_to(f)}" for f in (0.5, 0.9, 1.0))
        out.print(f"evaluations to reach the final best: {reach}")
        out.print(
            _table("improvements", ["evaluation", "score"], ((n, f"{s:.4g}") for n, s in c.improvements))
        )
    else:
        ref = "none (no run passed)" if cmp.reference is None else f"{cmp.reference:.4g}"
        out.print(f"reference: {ref} = {cmp.fraction:.0%} of the best any run reached")

        def never(n: float | None) -> str:
            return "never" if n is None else f"{n:g}"

        rows = [
            (
                r.name,
                r.group,
                r.curve.evaluations,
                "-" if r.curve.best is None else f"{r.curve.best:.4g}",
                never(r.evals_to_reference),
                never(r.evals_to_top),
            )
            for r in cmp.runs
        ]
        cols = ["run", "strategy", "evals", "best", f"to {cmp.fraction:.0%}", "to 100%"]
        out.print(_table("evaluations to the reference and to the best", cols, rows))
        groups = cmp.groups()
        if len(groups) > 1 or groups[0].runs > 1:
            medians = [
                (
                    g.group,
                    g.runs,
                    "-" if g.median_best is None else f"{g.median_best:.4g}",
                    never(g.median_to_reference),
                    never(g.median_to_top),
                )
                for g in groups
            ]
            out.print(_table("median over runs", ["strategy", "runs", "best", cols[4], cols[5]], medians))
        if len(cmp.bases) == 1:
            out.print(f"scores: {cmp.bases[0]}")
        if not cmp.comparable:
            out.print(
                f"[yellow]the runs' scores are on different bases ({', '.join(cmp.bases)}): they do not compare[/]"
            )
    if plot is not None:
        out.print(f"wrote {plot}")


@log_app.command("query")
def log_query(
    run_dir: RunDir,
    sql: Annotated[str, typer.Argument(help="one SELECT (or WITH ... SELECT) statement")],
    fmt: Annotated[str, typer.Option("--format", help="table, json or csv")] = "table",
) -> None:
    """Run one read-only SELECT against the run's index (built or updated first).

    Anything that writes (ATTACH, VACUUM, PRAGMA, INSERT, ...) is refused.

    events: every row (seq, ts, run, kind, payload JSON)

    attempts: one per packet (attempt_id, target, status,
    failure_class, reward: NULL unless timed, speedup, sol_score,
    final_audit: 1 for the best kernel's packets on other targets)

    steps: one per search evaluation (candidate, visit, island,
    action_id, template, strategy, knobs JSON, passed, score,
    score_basis, target, failure_class, packet_id, blob, message)

    failures, failures_fts (full-text), proposer_calls; aggregates:
    attempt_summary, attempt_buckets, improvements, strategy_stats,
    strategy_failures, template_settings, audit_checks, totals

    Example: ksearch log query RUN
    "SELECT strategy, knobs, score FROM steps ORDER BY score DESC LIMIT 5"
    """
    from ksearch.log import query

    cols, rows = query(run_dir, sql)
    if fmt == "json":
        _print_json([dict(zip(cols, r)) for r in rows])
    elif fmt == "csv":
        import csv

        w = csv.writer(sys.stdout)
        w.writerow(cols)
        w.writerows(rows)
    elif fmt == "table":
        print_rows(sql, cols, rows)
    else:
        raise KsearchError(f"unknown --format {fmt!r}; use table, json or csv")


@log_app.command("export")
def log_export(
    run_dir: RunDir,
    out_path: Annotated[Path, typer.Option("--out", help="file to write")],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", help="jsonl, csv or parquet (needs pyarrow); default: from --out's extension"
        ),
    ] = None,
    table: Annotated[str, typer.Option(help="attempts|events|failures|steps|proposer_calls")] = "attempts",
) -> None:
    """Export one index table to JSONL, CSV or Parquet."""
    from ksearch.log import export_table

    n = export_table(run_dir, out_path, fmt, table)
    out.print(f"wrote {n} rows of {table} to {out_path}")


@bench_app.command("log")
def bench_log_cmd(
    workdir: Annotated[Path, typer.Option(help="scratch directory (needs ~4 GB for 1M rows)")] = Path(
        "/tmp/ksearch-log-bench"
    ),
    rows: Annotated[int, typer.Option(help="synthetic attempt rows")] = 1_000_000,
) -> None:
    """Append rates, index build time and stats query latency of the experiment log on this disk."""
    from ksearch.selfbench.log_bench import bench_log

    _print_bench("log benchmark", bench_log(_fresh(workdir), rows=rows))


@bench_app.command("compile")
def bench_compile_cmd(
    workdir: Annotated[Path, typer.Option(help="scratch directory")] = Path("/tmp/ksearch-compile-bench"),
    variants: Annotated[int, typer.Option(help="Triton variants of one RMSNorm kernel")] = 100,
    target: Annotated[list[str], typer.Option(help="targets; repeat")] = list(DEFAULT_TARGETS),
    jobs: Annotated[int | None, typer.Option(help="parallel compiles (default: CPU count)")] = None,
) -> None:
    """Compiles per minute, cold and with a warm cache."""
    from ksearch.selfbench.compile_bench import bench_compile

    _print_bench(
        "compile benchmark", bench_compile(_fresh(workdir), _split_commas(target), count=variants, jobs=jobs)
    )


@bench_app.command("static-model")
def bench_static_model_cmd(
    run_dirs: Annotated[list[Path], typer.Argument(help="runs timed on a GPU", metavar="RUN_DIR...")],
    jobs: Annotated[int | None, typer.Option(help="parallel compiles (default: CPU count)")] = None,
    out_json: Annotated[
        Path | None, typer.Option("--out", help="write every candidate's modelled and measured times here")
    ] = None,
) -> None:
    """How well the static estimate ranks measured kernels: Spearman rho, modelled against measured
    time per workload (and score against reward), over the distinct timed candidates of the runs."""
    from ksearch.selfbench.static_model import agreement

    results = agreement(run_dirs, jobs=jobs)
    if not results:
        raise KsearchError("these runs hold no timed, passing attempt: run them on a GPU first")
    rows = []
    for r in results:
        for what, (n, rho) in [*r.per_workload.items(), ("score vs reward", r.score)]:
            rows.append((f"{r.task} on {r.target}", what, n, "-" if rho is None else f"{rho:.3f}"))
    print_rows("static estimate against measurement (Spearman rho)", ["task", "workload", "n", "rho"], rows)
    if out_json:
        out_json.write_text(json.dumps([dataclasses.asdict(r) for r in results], indent=1))
        out.print(f"wrote {out_json}")


@bench_app.command("harness")
def bench_harness_cmd(
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    repeats: Annotated[int, typer.Option(help="evaluations of the stability kernel")] = 10,
    rel_ci: Annotated[
        float, typer.Option(help="timing stops when the median's 95% CI is within this fraction")
    ] = 0.01,
    corpus: Annotated[
        Path, typer.Option(help="folder holding honest/ and cheats/ (ksearch's tests/)")
    ] = Path("tests"),
    parts: Annotated[
        str, typer.Option(help="comma-separated: stability, ncu, overhead, corpora")
    ] = "stability,ncu,overhead,corpora",
    out_json: Annotated[Path | None, typer.Option("--out", help="write every figure here as JSON")] = None,
    kernels: Annotated[
        str, typer.Option(help="corpora: only files matching these comma-separated globs")
    ] = "*",
) -> None:
    """Trust and cost of this machine's measurements: CV of repeated medians, agreement with ncu,
    harness overhead per candidate, and the honest/cheat corpora."""
    from fnmatch import fnmatch

    from ksearch.harness.evaluate import Evaluator
    from ksearch.selfbench import harness_bench as bench

    honest, cheats = sorted((corpus / "honest").glob("*.py")), sorted((corpus / "cheats").glob("*.py"))
    globs = kernels.split(",")
    picked_honest, picked_cheats = (
        [p for p in group if any(fnmatch(p.name, g) for g in globs)] for group in (honest, cheats)
    )
    if not honest:
        raise KsearchError(f"{corpus}/honest holds no candidates; pass --corpus pointing at ksearch's tests/")
    by_name = {p.stem: p for p in honest}
    wanted = set(parts.split(","))
    res: dict = {}
    with Evaluator(device, rel_ci=rel_ci) as ev:
        gpu = ev.device == "cuda"
        if "stability" in wanted and gpu:
            res["stability"] = bench.stability(ev, by_name["rmsnorm_row"], repeats)
            out.print(f"stability: CV of {repeats} medians {res['stability']['cv_of_medians']:.3%}")
        if "overhead" in wanted:
            res["overhead"] = bench.overhead(ev, by_name["rmsnorm_row"])
            out.print(
                _table(
                    "overhead (s), warm",
                    ["suite", "durations"],
                    [(k, str(v)) for k, v in res["overhead"].items()],
                )
            )
    if "corpora" in wanted:  # verdicts only: no baselines to time
        with Evaluator(device, rel_ci=rel_ci, baselines=False, bench_budget_s=0.2, timeout_s=120) as ev:
            res["corpora"] = bench.corpora(
                ev,
                picked_honest,
                picked_cheats,
                on_row=lambda r: out.print(
                    f"{'ok ' if r['ok'] else 'BAD'} {r['kernel']}: expected {r['expected']}, got {r['got']} "
                    f"({r['seconds']:.1f} s){' vs twin ' + str(r['vs_twin']) if 'vs_twin' in r else ''}"
                ),
            )
            bad = [r for r in res["corpora"] if not r["ok"]]
            out.print(
                _table(
                    f"corpora: {len(res['corpora']) - len(bad)}/{len(res['corpora'])} as expected",
                    ["kernel", "expected", "got"],
                    [(r["kernel"], r["expected"], r["got"]) for r in bad],
                )
            )
    if "ncu" in wanted and gpu:
        res["ncu"] = bench.ncu_agreement(
            device, [by_name[n] for n in ("rmsnorm_row", "softmax_online", "matmul_tiled")]
        )
        out.print(
            _table(
                "harness vs ncu",
                ["kernel", "harness us", "ncu us", "diff"],
                [
                    (
                        r["kernel"],
                        str(r["harness_us"]),
                        str(r["ncu_us"]),
                        f"{r['diff']:+.2%}" if r["diff"] is not None else " ".join(r["notes"])[:80],
                    )
                    for r in res["ncu"]
                ],
            )
        )
    if out_json:
        out_json.write_text(json.dumps(res, indent=2, default=str))


def _split_commas(values: list[str]) -> list[str]:
    """`--target a,b --target c` -> [a, b, c]."""
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _fresh(workdir: Path) -> Path:
    import shutil

    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    return workdir


def _print_bench(title: str, res: dict) -> None:
    out.print(
        _table(
            title,
            ["measure", "value"],
            [(k, f"{v:.4g}" if isinstance(v, float) else v) for k, v in res.items()],
        )
    )


# ---------------------------------------------------------------- kernel library

registry_app = typer.Typer(
    help="Inspect an exported kernel library and explain its selection.", no_args_is_help=True
)
app.add_typer(registry_app, name="registry")
PackageDir = Annotated[Path, typer.Argument(help="an exported package: the --to folder or the package in it")]
OpOption = Annotated[str | None, typer.Option("--op", help="operator name, e.g. rmsnorm")]


@app.command("export")
def export_cmd(
    runs: Annotated[list[Path], typer.Argument(help="run directories whose best kernels are exported")],
    to: Annotated[
        Path, typer.Option("--to", help="folder the package project (pyproject.toml) is written to")
    ],
    name: Annotated[str, typer.Option("--name", help="Python package name")] = "ksearch_kernels",
) -> None:
    """Write the best kernels of runs as an installable package (torch and triton only), one function
    per operator; of several runs, every kernel that is best somewhere is kept."""
    from ksearch.registry.export import export_runs

    result = export_runs(runs, to, name)
    for line in result.dropped:
        out.print(f"dropped {line}", highlight=False)
    for k in result.kept:
        out.print(f"kept {k.id}  priority {k.priority:.3g} ({k.basis})", highlight=False)
    out.print(f"wrote {result.root / result.package}   install: pip install {result.root}", highlight=False)


def _manifest(package: Path) -> Manifest:
    from ksearch.registry.select import MANIFEST, Manifest

    found = (
        [package]
        if (package / MANIFEST).is_file()
        else sorted(p.parent for p in package.glob(f"*/{MANIFEST}"))
    )
    if len(found) != 1:
        raise KsearchError(
            f"{package} holds no exported kernel library (one */{MANIFEST}); see `ksearch export`"
        )
    return Manifest.load(found[0])


def _op_of(manifest: Manifest, op: str | None) -> str:
    if op is None:
        raise KsearchError(f"name an operator with --op: one of {', '.join(manifest.ops)}")
    try:
        return str(manifest.op(op).name)
    except KeyError as e:
        raise KsearchError(str(e.args[0])) from None


@registry_app.command("list")
def registry_list(package: PackageDir, op: OpOption = None) -> None:
    """List the kernels with capability, dtype, priority and shape constraints."""
    from ksearch.registry.select import render_list

    manifest = _manifest(package)
    out.print(render_list(manifest, _op_of(manifest, op) if op else None), highlight=False, markup=False)


@registry_app.command("show")
def registry_show(package: PackageDir, op: OpOption = None) -> None:
    """Show an operator's contract and every kernel's metadata and provenance."""
    from ksearch.registry.select import render_show

    manifest = _manifest(package)
    out.print(render_show(manifest, _op_of(manifest, op)), highlight=False, markup=False)


@registry_app.command("select")
def registry_select(
    package: PackageDir,
    op: OpOption = None,
    device: Annotated[
        str | None,
        typer.Option(help="capability: sm_90, sm_100, gfx942, gfx950 or cpu (default: this machine)"),
    ] = None,
    dtype: Annotated[str, typer.Option(help="dtype of the call")] = "float16",
    shape: Annotated[str, typer.Option(help="axis values, e.g. M=64,N=4096")] = "",
    interpret: Annotated[bool, typer.Option(help="on cpu: the Triton interpreter is on")] = False,
) -> None:
    """Explain which kernel a call would run and why each other kernel was kept or filtered out."""
    from ksearch.registry.select import explain, parse_shape, platform_of, render_explanation

    manifest = _manifest(package)
    try:
        axes = parse_shape(shape)
    except ValueError as e:
        raise KsearchError(str(e)) from None
    why = explain(manifest, _op_of(manifest, op), platform_of(device, interpret), dtype, axes)
    out.print(render_explanation(why), highlight=False, markup=False)


try:  # typer 0.26 and later carry their own copy of click
    from typer._click import exceptions as usage
except ImportError:
    from click import exceptions as usage  # type: ignore[no-redef]


def main() -> None:
    try:
        # not standalone: click's usage errors come here and print like every other error
        code = app(standalone_mode=False)
    except usage.NoArgsIsHelpError as e:
        typer.echo(e.ctx.get_help())
        sys.exit(2)
    except usage.UsageError as e:
        hint = f"; see '{e.ctx.command_path} --help'" if e.ctx is not None else ""
        typer.echo(f"error: {e.format_message().rstrip('.')}{hint}", err=True)
        sys.exit(e.exit_code)
    except typer.Abort:  # Ctrl-C or end of input at a prompt
        typer.echo("", err=True)
        sys.exit(130)
    except KsearchError as e:
        typer.echo(error_line(e), err=True)
        sys.exit(e.exit_code)
    except OSError as e:  # a path the user named cannot be read or written
        typer.echo(error_line(e), err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
