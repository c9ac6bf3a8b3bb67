"""What `ksearch run` shows: a live panel while it searches, and a summary when it stops."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ksearch.search.loop import Progress


def _panel(p: Progress) -> RenderableType:
    t = Table.grid(padding=(0, 2))
    t.add_row("evaluations", f"{p.evaluations} / {p.budget}")
    t.add_row("time", f"{p.elapsed_s:.0f} s of {p.wall_s:.0f} s")
    best = f"{p.best.score:.4f} ({p.best.basis}, {p.best.candidate})" if p.best else "none yet"
    t.add_row("best", best)
    t.add_row("action", p.action or "-")
    fails = ", ".join(f"{k} x{n}" for k, n in p.failures.most_common(4)) or "none"
    t.add_row("passed / failed", f"{p.passed} / {sum(p.failures.values())}: {fails}")
    return t


@contextmanager
def live_progress(console: Console) -> Iterator[Callable[[Progress], None]]:
    if not console.is_terminal:  # logs and CI: one line per candidate instead of a redrawn panel

        def line(p: Progress) -> None:
            best = f"{p.best.score:.4f}" if p.best else "-"
            console.print(
                f"[{p.evaluations}/{p.budget}] best {best} | {p.action} | failed {sum(p.failures.values())}",
                highlight=False,
            )

        yield line
        return
    with Live(Text("starting ..."), console=console, refresh_per_second=4, transient=True) as live:
        yield lambda p: live.update(_panel(p))


def render_summary(result) -> RenderableType:
    p = result.progress
    lines: list[RenderableType] = [Text(f"stopped: {result.stop_reason}", style="bold")]
    lines.append(_panel(p))
    if p.best is not None:
        lines.append(
            Text(f"best kernel: {result.best_kernel}  (packet: {result.best_packet})", style="green")
        )
        if p.best.basis.startswith("static-estimate"):
            lines.append(
                Text(
                    "its score is a static estimate (no GPU here): ranked by model, not measured; "
                    "timings need the target GPU",
                    style="yellow",
                )
            )
    else:
        lines.append(Text("no candidate passed", style="red"))
    lines.append(
        Text(
            f"log: {result.run_dir}   check: ksearch log verify {result.run_dir}   "
            f"tree: ksearch tree {result.run_dir}   stats: ksearch log stats {result.run_dir}"
        )
    )
    lines.append(Text(f"resume: ksearch run --resume {result.run_dir} --budget-evals N  (N more)"))
    return Group(*lines)
