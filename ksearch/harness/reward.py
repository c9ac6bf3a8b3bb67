"""Reward: correctness is a gate, then a bounded function of speed.

    reward = 0                                             if status != pass or performance is unmeasured
    reward = 0.5 * s / (1 + s) + 0.5 * min(1, f)           otherwise
      s = geometric-mean speedup over the named baseline (1x contributes 0.25, 3x 0.375)
      f = geometric-mean fraction of speed of light

Both halves are bounded, so no single number (a lucky tiny workload, a broken baseline) can
dominate the search; the formula travels with every packet that carries a reward.
"""

from __future__ import annotations

REWARD_FORMULA = (
    "0.5*s/(1+s) + 0.5*min(1,f); s = geomean speedup vs baseline, f = geomean SOL fraction; 0 unless pass"
)


def reward(passed: bool, speedup: float | None, sol_fraction: float | None) -> float | None:
    """The reward of one attempt; None for a pass whose speed was not measured (nothing to rank by)."""
    if not passed:
        return 0.0
    if speedup is None or sol_fraction is None:
        return None
    return 0.5 * speedup / (1.0 + speedup) + 0.5 * min(1.0, sol_fraction)
