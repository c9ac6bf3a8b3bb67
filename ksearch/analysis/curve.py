"""A run's best-so-far curve, read from its step rows: how many evaluations the search needed to
get where it got. The measure of search efficiency (world model against random sampling).

Several runs compare on a common reference, a fraction (90%) of the best any of them reached:
the evaluations each needed to get there, and to the best itself. Runs group by their search
strategy (world model, random sampling), each group summarised by its median over runs (seeds).
Scores are higher-is-better (a reward or a static estimate in (0, 1]); runs scored on different
bases are flagged, as their scores do not compare.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ksearch.errors import KsearchError
from ksearch.log.history import read_rows
from ksearch.log.index import connect_readonly
from ksearch.log.rows import RunStart


@dataclass
class Curve:
    evaluations: int
    improvements: list[tuple[int, float]]  # (evaluation number, 1-based; new best score)
    basis: str | None  # what the scores measure (e.g. the measured SOL score, or a static estimate)

    @property
    def best(self) -> float | None:
        return self.improvements[-1][1] if self.improvements else None

    def evals_to(self, fraction: float) -> int | None:
        """The first evaluation whose score reached `fraction` of the final best."""
        if self.best is None:
            return None
        return self.evals_to_score(fraction * self.best)

    def evals_to_score(self, score: float) -> int | None:
        """The first evaluation whose score reached `score`; None if none did."""
        return next((n for n, s in self.improvements if s >= score), None)


def curve_of(steps: Iterable[tuple[float | None, str | None]]) -> Curve:
    """The curve of (score, score basis) per evaluation, in order; None scores for failures."""
    improvements: list[tuple[int, float]] = []
    n, basis = 0, None
    for n, (score, step_basis) in enumerate(steps, 1):
        if score is not None and (not improvements or score > improvements[-1][1]):
            improvements.append((n, score))
            basis = step_basis
    return Curve(n, improvements, basis)


def best_curve(run_dir: Path) -> Curve:
    """The curve of a run, from its index's steps (brought up to date first)."""
    conn = connect_readonly(Path(run_dir))
    try:
        return curve_of(conn.execute("SELECT score, score_basis FROM steps ORDER BY ordinal"))
    finally:
        conn.close()


@dataclass
class RunCurve:
    name: str
    curve: Curve
    evals_to_reference: int | None  # None: the run never reached the reference
    evals_to_top: int | None = None  # to the best score any run reached; None: never
    group: str = ""  # what the run is compared as (its search strategy)


@dataclass
class GroupSummary:
    """The median over a group's runs; a run that never got there counts as infinitely late, so a
    median is None (never) when half the runs or more never did."""

    group: str
    runs: int
    median_to_reference: float | None
    median_to_top: float | None
    median_best: float | None


def _median_evals(values: list[int | None]) -> float | None:
    m = statistics.median([math.inf if v is None else v for v in values])
    return None if math.isinf(m) else m


@dataclass
class Comparison:
    fraction: float
    reference: float | None  # fraction x the best any run reached; None when no run passed
    runs: list[RunCurve]

    @property
    def bases(self) -> list[str]:
        return sorted({r.curve.basis for r in self.runs if r.curve.basis})

    @property
    def comparable(self) -> bool:
        """False when the runs' scores measure different things (a static estimate and a timing,
        or two targets): then the reference means nothing for some of them."""
        return len(self.bases) <= 1

    def groups(self) -> list[GroupSummary]:
        """Each group's medians, in the order the groups first appear."""
        out = []
        for g in dict.fromkeys(r.group for r in self.runs):
            runs = [r for r in self.runs if r.group == g]
            bests = [r.curve.best for r in runs if r.curve.best is not None]
            out.append(
                GroupSummary(
                    g,
                    len(runs),
                    _median_evals([r.evals_to_reference for r in runs]),
                    _median_evals([r.evals_to_top for r in runs]),
                    statistics.median(bests) if bests else None,
                )
            )
        return out


def compare(
    curves: Sequence[tuple[str, Curve]], fraction: float = 0.9, groups: Sequence[str] | None = None
) -> Comparison:
    """Compare named curves on `fraction` of the best score any of them reached; `groups`: each
    curve's group (default: one group)."""
    if not 0 < fraction <= 1:
        raise KsearchError(f"the reference fraction must be in (0, 1], not {fraction}")
    bests = [c.best for _, c in curves if c.best is not None]
    top = max(bests) if bests else None
    reference = None if top is None else fraction * top
    labels = list(groups) if groups is not None else [""] * len(curves)
    runs = [
        RunCurve(
            name,
            c,
            None if reference is None else c.evals_to_score(reference),
            None if top is None else c.evals_to_score(top),
            group,
        )
        for (name, c), group in zip(curves, labels, strict=True)
    ]
    return Comparison(fraction, reference, runs)


def strategy_of(run_dir: Path) -> str:
    """The search strategy a run was started with (worldmodel when its config names none)."""
    for row in read_rows(Path(run_dir), RunStart.KIND):
        if isinstance(row.payload, RunStart):
            return str((row.payload.config.get("search") or {}).get("strategy") or "worldmodel")
    return "worldmodel"


def compare_runs(run_dirs: Sequence[Path], fraction: float = 0.9) -> Comparison:
    """Compare runs' best-so-far curves; each named by its directory (its path if two share a name)
    and grouped by its search strategy."""
    dirs = [Path(d) for d in run_dirs]
    names = [d.name for d in dirs]
    curves = [(d.name if names.count(d.name) == 1 else str(d), best_curve(d)) for d in dirs]
    return compare(curves, fraction, [strategy_of(d) for d in dirs])


def plot_comparison(comparison: Comparison, path: Path) -> Path:
    """Draw the runs' best-so-far curves and the reference on one chart; the format follows the
    suffix (.svg, .png, .pdf). SVG keeps its text as text, and each curve has the id `curve-<i>`."""
    try:
        import matplotlib
    except ImportError as e:
        raise KsearchError("plotting curves needs matplotlib: pip install matplotlib") from e
    matplotlib.use("Agg", force=True)  # no display; files only
    import matplotlib.pyplot as plt

    path = Path(path)
    with plt.rc_context({"svg.fonttype": "none"}):
        fig, ax = plt.subplots(figsize=(8, 4))
        for i, r in enumerate(comparison.runs):
            c = r.curve
            reached = "never" if r.evals_to_reference is None else f"at {r.evals_to_reference}"
            best = "none passed" if c.best is None else f"best {c.best:.4g}"
            label = f"{r.name}: {best}, reference {reached}"
            if c.improvements:  # a run with no passing candidate has no line, only its legend entry
                xs = [n for n, _ in c.improvements] + [c.evaluations]
                ys = [s for _, s in c.improvements] + [c.improvements[-1][1]]
                ax.step(xs, ys, where="post", linewidth=2, label=label, gid=f"curve-{i}")
            else:
                ax.plot([], [], label=label, gid=f"curve-{i}")
        if comparison.reference is not None:
            ax.axhline(
                comparison.reference,
                color="#888",
                linestyle="--",
                gid="reference",
                label=f"reference: {comparison.fraction:.0%} of the best = {comparison.reference:.4g}",
            )
        basis = comparison.bases[0] if comparison.comparable and comparison.bases else "mixed bases"
        ax.set_xlabel("evaluation")
        ax.set_ylabel(f"best score so far ({basis})")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        fig.savefig(path, bbox_inches="tight")
        plt.close(fig)
    return path
