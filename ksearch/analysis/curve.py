"""A run's best-so-far curve, read from its step rows: how many evaluations the search needed to
get where it got. The measure of search efficiency (world model against random sampling)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ksearch.log.index import connect_readonly


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
        return next(n for n, score in self.improvements if score >= fraction * self.best)


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
