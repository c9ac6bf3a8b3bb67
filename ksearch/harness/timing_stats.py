"""Statistics of timing samples: quartiles, CV and a distribution-free confidence interval of the median.

Confidence interval of the median: from order statistics. For n sorted samples the number below
the true median is Binomial(n, 1/2), so [x_(l), x_(n-l+1)] covers the median with probability
1 - 2 P(B <= l - 1); `median_ci` picks the largest l whose exact coverage is still >= 95%. No
resampling, no normality assumption, exact for every n >= 6 (below 6 no pair of order statistics
reaches 95%, and a run is never called converged).

Pure functions over lists of floats; event timing (ksearch.harness.timing) and the profilers
(ksearch.harness.profilers) build on them. Not to be confused with ksearch.log.stats, which
summarizes a run's log.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from ksearch.errors import KsearchError

CONFIDENCE = 0.95


class TimingError(KsearchError):
    """Timing could not run: no device, bad arguments, too few samples, or a call that failed while timed."""


def _binom_half_cdf_index(n: int, alpha: float) -> int:
    """Largest j >= 0 with P(B <= j - 1) <= alpha / 2 for B ~ Binomial(n, 1/2); 0 where none."""
    if n <= 0:
        return 0
    log_half_n = n * math.log(0.5)
    log_n_fact = math.lgamma(n + 1)
    cdf = 0.0
    j = 0
    # Walk up the lower tail: after the loop, P(B <= j - 1) <= alpha / 2 < P(B <= j).
    while j <= n // 2:
        pmf = math.exp(log_n_fact - math.lgamma(j + 1) - math.lgamma(n - j + 1) + log_half_n)
        if cdf + pmf > alpha / 2:
            break
        cdf += pmf
        j += 1
    return j


def median_ci(samples: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Distribution-free confidence interval of the median from order statistics.

    Returns (low, high, coverage): [x_(l), x_(n-l+1)] (1-based ranks of the sorted samples) with
    the largest l whose exact binomial coverage 1 - 2 P(B <= l - 1) is >= `confidence`. Where no
    pair of order statistics reaches `confidence` (n < 6 at 95%), returns (min, max) and their
    coverage 1 - 2^(1-n), which is below `confidence`.
    """
    n = len(samples)
    if n == 0:
        raise TimingError("median_ci needs at least one sample")
    xs = sorted(samples)
    alpha = 1.0 - confidence
    l = _binom_half_cdf_index(n, alpha)
    if l == 0:
        return xs[0], xs[-1], 1.0 - 2.0 * 0.5**n
    # coverage = 1 - 2 * P(B <= l - 1)
    tail = sum(
        math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + n * math.log(0.5))
        for k in range(l)
    )
    return xs[l - 1], xs[n - l], 1.0 - 2.0 * tail


def _quantile(xs_sorted: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default, 'linear') of sorted data."""
    n = len(xs_sorted)
    if n == 1:
        return float(xs_sorted[0])
    pos = q * (n - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return float(xs_sorted[lo] + (xs_sorted[hi] - xs_sorted[lo]) * frac)


class SampleStats(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    n: int
    median: float
    q1: float
    q3: float
    iqr: float
    mean: float
    std: float = Field(description="sample standard deviation (n - 1)")
    cv: float = Field(description="std / mean; 0 for one sample")
    ci_low: float
    ci_high: float
    ci_coverage: float = Field(description="exact coverage of [ci_low, ci_high] for the median")


def summarize(samples: Sequence[float], confidence: float = CONFIDENCE) -> SampleStats:
    """Median, quartiles (linear interpolation), IQR, mean, std, CV and the median's CI."""
    if not samples:
        raise TimingError("summarize needs at least one sample")
    xs = sorted(float(x) for x in samples)
    n = len(xs)
    mean = statistics.fmean(xs)
    std = statistics.stdev(xs) if n > 1 else 0.0
    q1, q3 = _quantile(xs, 0.25), _quantile(xs, 0.75)
    lo, hi, coverage = median_ci(xs, confidence)
    return SampleStats(
        n=n,
        median=statistics.median(xs),
        q1=q1,
        q3=q3,
        iqr=q3 - q1,
        mean=mean,
        std=std,
        cv=std / mean if mean else 0.0,
        ci_low=lo,
        ci_high=hi,
        ci_coverage=coverage,
    )


def ci_converged(samples: Sequence[float], rel_ci: float, confidence: float = CONFIDENCE) -> bool:
    """True where the median's CI reaches `confidence` and both ends lie within rel_ci * median."""
    if len(samples) < 2:
        return False
    lo, hi, coverage = median_ci(samples, confidence)
    if coverage < confidence:
        return False
    med = statistics.median(samples)
    if med <= 0:
        return False
    return max(med - lo, hi - med) <= rel_ci * med
