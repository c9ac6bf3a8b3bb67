"""Comparing one candidate output with its reference: every check the packet reports, by name."""

from __future__ import annotations

from typing import NamedTuple

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


class Comparison(NamedTuple):
    """One output to judge: the candidate's, the reference, its tolerance, and where it came from."""

    out: torch.Tensor
    ref: torch.Tensor
    tol: ToleranceSpec
    workload: str
    distribution: str
    seed: int
    name: str


def compare_many(items: list[Comparison]) -> list[OutputCheck]:
    """Judge each output against its reference on the reference's device. Every statistic is reduced
    on the device and all of them read back in one transfer per device: on a GPU each read is a
    synchronization, and an evaluation compares a hundred or more outputs."""
    checks, pending = [], []
    for item in items:
        check = OutputCheck(
            workload=item.workload,
            distribution=item.distribution,
            seed=item.seed,
            output=item.name,
            passed=False,
        )
        checks.append(check)
        out = item.out.to(item.ref.device)
        check.checks["shape_dtype"] = out.shape == item.ref.shape and out.dtype == item.ref.dtype
        if check.checks["shape_dtype"]:
            stats = _statistics(out, item.ref, item.tol) if out.numel() else None
            pending.append((check, item, stats))
    by_device: dict[torch.device, list[torch.Tensor]] = {}
    for _check, _item, stats in pending:
        if stats is not None:
            by_device.setdefault(stats.device, []).append(stats)
    read = {device: iter(torch.stack(rows).tolist()) for device, rows in by_device.items()}
    for check, item, stats in pending:
        values = next(read[stats.device]) if stats is not None else [0.0] * 10
        _conclude(check, values, item.tol, item.out.dtype.is_floating_point, item.out.numel())
    return checks


def scored(ref: torch.Tensor) -> torch.Tensor:
    """The elements an output is judged on: where the reference is finite (its own inf/NaN are not
    scored, and an unwritten element there does not count)."""
    return torch.isfinite(ref) if ref.dtype.is_floating_point else torch.ones_like(ref, dtype=torch.bool)


def _statistics(out: torch.Tensor, ref: torch.Tensor, tol: ToleranceSpec) -> torch.Tensor:
    """The ten numbers `_conclude` judges by, as one float64 tensor on the reference's device."""
    floating = out.dtype.is_floating_point
    ref_finite = scored(ref)
    out_finite = torch.isfinite(out) if floating else torch.ones_like(out, dtype=torch.bool)
    unwritten = unwritten_mask(out) & ref_finite
    # 16-bit values and their differences are exact enough in float32; wider types need float64.
    wide = torch.float32 if out.dtype in (torch.float16, torch.bfloat16) else torch.float64
    a, b = out.to(wide), ref.to(wide)
    both = ref_finite & out_finite
    diff = torch.where(both, (a - b).abs(), torch.full_like(a, float("inf")))
    diff = torch.where(ref_finite, diff, torch.zeros_like(diff))  # the reference's own inf/NaN are not scored
    matched = (diff <= tol.atol + tol.rtol * b.abs()) & ref_finite
    rel = torch.where(both, (a - b).abs() / b.abs().clamp_min(1e-12), torch.zeros_like(a))
    flat_out, flat_ref = out.reshape(-1), ref.reshape(-1)
    # Counts are summed in float64: stacked with float32 maxima they would round past 2^24 elements.
    count = torch.float64
    return torch.stack(
        [
            unwritten.any(),
            (~out_finite & ref_finite & ~unwritten).any(),
            (~out_finite).sum(dtype=count),
            (~ref_finite).sum(dtype=count),
            matched.sum(dtype=count),
            ref_finite.sum(dtype=count),
            torch.where(both, diff, torch.zeros_like(diff)).max(),
            rel.max(),
            (flat_out == flat_out[0]).all(),
            (flat_ref == flat_ref[0]).all(),
        ]
    ).double()


def _conclude(check: OutputCheck, stats: list[float], tol: ToleranceSpec, floating: bool, numel: int) -> None:
    (
        any_unwritten,
        any_bad,
        n_out_nonfinite,
        n_ref_nonfinite,
        n_matched,
        n_finite,
        max_abs,
        max_rel,
        out_constant,
        ref_constant,
    ) = stats
    check.checks["written"] = not any_unwritten
    check.checks["finite"] = not any_bad if floating else True
    if floating:
        check.nonfinite_candidate, check.nonfinite_reference = int(n_out_nonfinite), int(n_ref_nonfinite)
    check.matched_ratio = n_matched / max(n_finite, 1)
    check.max_abs_err = max_abs
    check.max_rel_err = max_rel
    check.checks["not_constant"] = not (numel > 1 and out_constant and not ref_constant)
    check.checks["tolerance"] = (
        check.matched_ratio >= tol.matched_ratio and check.max_abs_err <= tol.max_error_cap
    )
    check.passed = all(check.checks.values())


_SAME_SIZE_INT = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def bitwise_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same shape, dtype and bits: an input the call must leave untouched (a NaN rewritten with
    another payload was written, so it counts as changed)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    as_int = _SAME_SIZE_INT.get(a.element_size())
    if a.is_floating_point() and as_int is not None:
        return torch.equal(a.view(as_int), b.view(as_int))
    return torch.equal(a, b)


def failure_of(check: OutputCheck) -> FailureClass | None:
    for name, failure in CHECK_CLASSES:
        if check.checks.get(name) is False:
            return failure
    return None
