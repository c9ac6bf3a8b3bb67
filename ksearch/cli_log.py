"""Mining the attempt log on the command line: `log stats` output, `log distill`, `log serve`,
`report` and `replay`. Thin, like the rest of the CLI: parse, call one function of ksearch.log, print.

`register(app, log_app)` adds the commands to the main app (ksearch/cli.py calls it once). The
console, table and JSON helpers come from ksearch.cli_common, which ksearch.cli uses too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ksearch.cli_common import AsJson, RunDir, out, print_json, table


def _g(x, fmt: str = ".4g") -> str:
    return "-" if x is None else format(x, fmt)


# ---------------------------------------------------------------- log stats


def print_stats(run_dirs: list[Path], as_json: bool = False, window: int | None = None) -> None:
    """`ksearch log stats RUN_DIR [RUN_DIR ...]`: one run's stats, or each run's and their combination."""
    from ksearch.log.stats import log_stats, runs_stats

    if len(run_dirs) == 1:
        s = log_stats(run_dirs[0], window=window)
        if as_json:
            print_json(s)
            return
        _print_run(s)
        return
    res = runs_stats(run_dirs, window=window)
    if as_json:
        print_json(res)
        return
    for s in res["runs"]:
        out.rule(s["run"])
        _print_run(s)
    c = res["combined"]
    out.rule(f"{c['runs']} runs combined")
    rate = "n/a" if c["pass_rate"] is None else f"{c['pass_rate']:.1%}"
    out.print(f"{attempts_line(c)}   pass rate: {rate}")
    out.print(table("rejections by failure class", ["failure_class", "count"], c["rejections"].items()))
    out.print(
        table(
            "best per target",
            ["target", "measure", "best", "basis", "by", "run"],
            [
                (t, k, _g(v["best"]), v["basis"], v["by"], v["run"])
                for t, curves in c["best_per_target"].items()
                for k, v in curves.items()
            ],
        )
    )
    _print_strategies(c["top_strategies"])
    _print_cost(c["cost"])


def attempts_line(s: dict) -> str:
    """Attempts (packets) told apart from the search evaluations that made them and the best kernel's
    final audits, so the count agrees with the run's evaluations."""
    attempts, evals, audits = s["attempts"], s["search_evaluations"], s["final_audits"]
    if attempts - audits == evals:
        return f"attempts: {attempts} ({evals} search evaluations + {audits} final audits)"
    return f"attempts: {attempts} ({attempts - audits} packets of {evals} search evaluations + {audits} final audits)"


def _print_run(s: dict) -> None:

    rate = "n/a" if s["pass_rate"] is None else f"{s['pass_rate']:.1%}"
    out.print(f"{attempts_line(s)}   pass rate: {rate}   span: {s['first_ts']} .. {s['last_ts']}")
    out.print(table("rejections by failure class", ["failure_class", "count"], s["rejections"].items()))
    d = s["drift"]
    if d["events"]:
        for ev in d["events"]:
            out.print(
                f"[red]DRIFT[/] {ev['metric']}: {_g(ev['before'], '.1%')} -> {_g(ev['after'], '.1%')} "
                f"from attempt {ev['start_attempt']} (z = {ev['z']}, {ev['windows']} window(s) of {d['window']})"
            )
    elif d["windows"]:
        rates = " ".join(f"{w['accept_rate']:.0%}" for w in d["windows"])
        out.print(f"accept rate per {d['window']} attempts: {rates}   (no jump)")
    out.print(
        table(
            "best score over evaluations per target",
            ["target", "measure", "best", "basis", "by", "reached at", "of", "improvements"],
            [
                (
                    t,
                    k,
                    _g(v["best"]),
                    v["basis"],
                    v["by"],
                    v.get("evals_to_best"),
                    v["evaluations"],
                    len(v["improvements"]),
                )
                for t, curves in s["best_per_target"].items()
                for k, v in curves.items()
            ],
        )
    )
    _print_strategies(s["top_strategies"])
    _print_cost(s["cost"])
    out.print(table("events", ["kind", "count"], s["events"].items()))


def _print_strategies(rows: list[dict]) -> None:

    out.print(
        table(
            "top strategies by improvement",
            ["strategy", "attempts", "passed", "best", "new bests", "gain"],
            [
                (
                    r["strategy"],
                    r["attempts"],
                    r["passed"],
                    _g(r["best_score"]),
                    r["new_bests"],
                    _g(r["gain"]),
                )
                for r in rows
            ],
        )
    )


def _print_cost(c: dict) -> None:

    out.print(
        f"cost: LLM ${c['llm_usd']:.4f} over {c['llm_calls']} calls ({c['llm_unpriced_calls']} unpriced, "
        f"{c['prompt_tokens']} prompt + {c['completion_tokens']} completion tokens); "
        f"GPU {c['gpu_s']:.1f} s; evaluation {c['eval_s']:.1f} s; compile {c['compile_s']:.1f} s"
    )


# ---------------------------------------------------------------- commands


def log_distill(
    run_dir: RunDir,
    as_json: AsJson = False,
    budget: Annotated[int, typer.Option(help="also print the prompt text within this many tokens")] = 0,
) -> None:
    """Rebuild memory.json (proven strategies, dead ends) and frontier.csv (tried vs untried) from the log."""
    from ksearch.propose.memory import FRONTIER, MEMORY, distill, memory_text

    m = distill(run_dir)
    if as_json:
        print_json(m.model_dump(mode="json"))
        return
    out.print(
        f"wrote {run_dir / MEMORY} and {run_dir / FRONTIER}: {len(m.proven)} proven strategies, "
        f"{len(m.dead_ends)} dead ends, {sum(1 for r in m.frontier if r.status != 'exhausted')} open or untried "
        f"templates"
    )
    out.print(
        table(
            "proven (raised the best score)",
            ["strategy", "best", "passed", "new bests by"],
            [
                (
                    f.strategy,
                    _g(f.best_score),
                    f"{f.passed}/{f.attempts}",
                    ", ".join(f"{e.candidate} {_g(e.score)}" for e in f.evidence),
                )
                for f in m.proven
            ],
        )
    )
    out.print(
        table(
            "dead ends (failed repeatedly)",
            ["strategy", "failed", "dominant failure", "example"],
            [
                (
                    d.strategy,
                    f"{d.failures}/{d.attempts}",
                    f"{d.dominant_failure_class} ({d.dominant_share:.0%})",
                    d.example[:120],
                )
                for d in m.dead_ends
            ],
        )
    )
    out.print(
        table(
            "frontier",
            ["decision", "template", "tried", "untried", "best", "status"],
            [(r.decision, r.template, r.tried, r.untried, _g(r.best_score), r.status) for r in m.frontier],
        )
    )
    if budget:
        out.print(memory_text(m, budget), markup=False, highlight=False)


def log_serve(
    run_dir: RunDir,
    port: Annotated[int, typer.Option(help="port to listen on")] = 8001,
    host: Annotated[str, typer.Option(help="address to bind (loopback by default)")] = "127.0.0.1",
) -> None:
    """Browse the run's attempts.db in Datasette, with canned queries (needs the `browse` extra)."""
    from ksearch.analysis.serve import serve

    serve(run_dir, port=port, host=host)


def report_cmd(
    run_dir: RunDir,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="HTML file to write (default RUN_DIR/report.html)")
    ] = None,
    top: Annotated[int, typer.Option(help="kernels to show with their packets")] = 5,
) -> None:
    """Write one self-contained HTML report: curve, rejections, tree, top kernels, speedups, audit, cost."""
    from ksearch.analysis.report import write_report

    path = write_report(run_dir, out_path, top=top)
    out.print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


def replay_cmd(
    run_dir: RunDir,
    attempt_id: Annotated[
        str, typer.Argument(help="packet id (att-...@target), evaluation id or candidate id (c0012)")
    ],
    device: Annotated[str, typer.Option(help="auto, cpu (Triton interpreter) or cuda")] = "auto",
    timeout: Annotated[
        float | None, typer.Option(help="seconds before the evaluation is killed (default: the run's)")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Evaluate one logged attempt again from its stored source and config; compare with the logged packet.

    Exits 0 when status and failure class agree, 1 when they differ."""
    from ksearch.analysis.replay import replay

    with out.status(f"replaying {attempt_id} ..."):
        r = replay(run_dir, attempt_id, device=device, timeout_s=timeout)
    if as_json:
        print_json(
            {
                "attempt_id": r.attempt_id,
                "agrees": r.agrees,
                "rows": [{"what": w, "logged": a, "new": b, "same": s} for w, a, b, s in r.rows],
                "new": r.new,
            }
        )
    else:
        out.print(
            table(
                f"replay of {r.attempt_id}",
                ["what", "logged", "replayed", "same"],
                [(w, a, b, "yes" if s else "[red]NO[/]") for w, a, b, s in r.rows],
            )
        )
        out.print("verdict agrees with the log" if r.agrees else "[red]verdict differs from the log[/]")
        logged = r.logged.get("failure_class") or ""
        if not r.agrees and (logged.startswith("audit:") or logged == "compile_error"):
            out.print(
                f"note: {logged} is the verdict of the target's own compile and audit, which replay does not "
                f"re-run; check it with `ksearch compile` (the packet's compiler_invocation)"
            )
    if not r.agrees:
        raise typer.Exit(1)


def register(app: typer.Typer, log_app: typer.Typer) -> None:
    log_app.command("distill")(log_distill)
    log_app.command("serve")(log_serve)
    app.command("report")(report_cmd)
    app.command("replay")(replay_cmd)
