"""Comparing one candidate output with its reference: every check the packet reports, by name."""

from __future__ import annotations

import torch

from ksearch.evidence import FailureClass, OutputCheck
from ksearch.harness.poison import unwritten_mask
from ksearch.task.spec import ToleranceSpec

# The order in which a failed output check names the attempt's failure class.
CHECK_CLASSES = [
    ("shape_dtype", FailureClass.SHAPE_MISMATCH),
    ("written", FailureClass.OUTPUT_NOT_WRITTEN),
    ("finite", FailureClass.NONFINITE),
    ("not_constant", FailureClass.CONSTANT_OUTPUT),
    ("tolerance", FailureClass.NUMERICAL_MISMATCH),
]


def compare(out: torch.Tensor, ref: torch.Tensor, tol: ToleranceSpec, *, workload: str, distribution: str,
            seed: int, name: str) -> OutputCheck:
    """Judge `out` against `ref` on the reference's device (the worker's outputs arrive on the CPU)."""
    out = out.to(ref.device)
    check = OutputCheck(workload=workload, distribution=distribution, seed=seed, output=name, passed=False)
    if out.shape != ref.shape or out.dtype != ref.dtype:
        check.checks["shape_dtype"] = False
        return check
    check.checks["shape_dtype"] = True
    ref_finite = torch.isfinite(ref) if ref.dtype.is_floating_point else torch.ones_like(ref, dtype=torch.bool)
    unwritten = unwritten_mask(out) & ref_finite
    check.checks["written"] = not bool(unwritten.any())
    if out.dtype.is_floating_point:
        bad = ~torch.isfinite(out) & ref_finite & ~unwritten
        check.nonfinite_candidate = int((~torch.isfinite(out)).sum())
        check.nonfinite_reference = int((~ref_finite).sum())
        check.checks["finite"] = not bool(bad.any())
    else:
        check.checks["finite"] = True
    a, b = out.double(), ref.double()
    both = ref_finite & torch.isfinite(a)
    diff = torch.where(both, (a - b).abs(), torch.full_like(a, float("inf")))
    diff = torch.where(ref_finite, diff, torch.zeros_like(diff))  # the reference's own inf/NaN are not scored
    matched = diff <= tol.atol + tol.rtol * b.abs()
    n = max(int(ref_finite.sum()), 1)
    check.matched_ratio = float((matched & ref_finite).sum()) / n
    finite_diff = diff[both] if bool(both.any()) else diff.new_zeros(1)
    check.max_abs_err = float(finite_diff.max())
    rel = (a - b).abs() / b.abs().clamp_min(1e-12)
    check.max_rel_err = float(rel[both].max()) if bool(both.any()) else 0.0
    constant = out.numel() > 1 and bool((out == out.reshape(-1)[0]).all())
    ref_constant = ref.numel() > 1 and bool((ref == ref.reshape(-1)[0]).all())
    check.checks["not_constant"] = not (constant and not ref_constant)
    check.checks["tolerance"] = check.matched_ratio >= tol.matched_ratio and check.max_abs_err <= tol.max_error_cap
    check.passed = all(check.checks.values())
    return check


def bitwise_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same shape, dtype and bits, NaNs in the same places counting as equal: an input the call
    must leave untouched."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if not a.dtype.is_floating_point:
        return torch.equal(a, b)
    na, nb = a.isnan(), b.isnan()
    return torch.equal(na, nb) and torch.equal(a[~na], b[~nb])


def failure_of(check: OutputCheck) -> FailureClass | None:
    for name, failure in CHECK_CLASSES:
        if check.checks.get(name) is False:
            return failure
    return None
