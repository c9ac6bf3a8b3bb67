"""Comparing one candidate output with its reference: every check the packet reports, by name."""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

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


# On a GPU, outputs of one shape are judged together, as rows of one stacked tensor, up to this many
# bytes a stack: an evaluation compares a hundred or more outputs and each statistic is a kernel
# launch (~25 an output). On the CPU the launches cost next to nothing and the stacking copy costs
# more (measured, docs/benchmarks.md), so there each output is a stack of its own.
STACK_BYTES = {"cuda": 64 << 20}


def compare_many(items: list[Comparison]) -> list[OutputCheck]:
    """Judge each output against its reference on the reference's device. Every statistic is reduced
    on the device, outputs of one shape, dtype and tolerance together, and all of them are read back
    in one transfer per device: on a GPU each read is a synchronization."""
    checks: list[OutputCheck] = []
    groups: dict[tuple, list[list[tuple[int, torch.Tensor, torch.Tensor]]]] = {}
    for i, item in enumerate(items):
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
        if not check.checks["shape_dtype"]:
            continue
        if not out.numel():
            _conclude(check, [0.0] * 10, item.tol, out.dtype.is_floating_point, 0)
            continue
        key = (out.device, out.dtype, tuple(out.shape), item.tol.atol, item.tol.rtol)
        stacks = groups.setdefault(key, [[]])
        cap = STACK_BYTES.get(out.device.type, 0)
        if stacks[-1] and (len(stacks[-1]) + 1) * out.numel() * out.element_size() > cap:
            stacks.append([])
        stacks[-1].append((i, out, item.ref))
    by_device: dict[torch.device, list[tuple[list[int], torch.Tensor]]] = {}
    for (device, *_), stacks in groups.items():
        for stack in stacks:
            index = [i for i, _, _ in stack]
            outs, refs = _rows([o for _, o, _ in stack]), _rows([r for _, _, r in stack])
            tol = items[index[0]].tol
            by_device.setdefault(device, []).append((index, _device_statistics(outs, refs, tol)))
    for rows in by_device.values():
        values = torch.cat([stats for _, stats in rows]).tolist()  # one read per device
        order = [i for index, _ in rows for i in index]
        for i, row in zip(order, values):
            item = items[i]
            _conclude(checks[i], row, item.tol, item.out.dtype.is_floating_point, item.out.numel())
    return checks


def _rows(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The tensors flattened, one a row; a single one as a view, not a copy."""
    if len(tensors) == 1:
        return tensors[0].reshape(1, -1)
    return torch.stack([t.reshape(-1) for t in tensors])


def scored(ref: torch.Tensor) -> torch.Tensor:
    """The elements an output is judged on: where the reference is finite (its own inf/NaN are not
    scored, and an unwritten element there does not count)."""
    return torch.isfinite(ref) if ref.dtype.is_floating_point else torch.ones_like(ref, dtype=torch.bool)


# On a GPU the statistics below are about twenty elementwise passes over every output in eager mode:
# 0.33 s of a warm evaluation's 0.56 s overhead on a norm's full suite (H100, docs/benchmarks.md).
# Compiled, they fuse into a few reductions that read each output and reference once. The tolerances
# are passed as tensors, so that one compile (dynamic shapes) serves every output of a dtype.
COMPILED_ON = frozenset({"cuda"})
_compiled: dict[str, Any] = {}
log = logging.getLogger(__name__)


def _device_statistics(out: torch.Tensor, ref: torch.Tensor, tol: ToleranceSpec) -> torch.Tensor:
    """`_statistics`, compiled on a GPU; eager on the CPU (where each pass is cheap next to a compile)
    and wherever the compile fails (the same numbers, only slower; logged once)."""
    if out.device.type not in COMPILED_ON or _compiled.get("failed"):
        return _statistics(out, ref, tol.atol, tol.rtol)
    fn = _compiled.get("fn")
    if fn is None:  # made once: torch.compile builds a new wrapper on every call
        fn = _compiled["fn"] = torch.compile(_statistics, dynamic=True)
    bounds = torch.tensor([tol.atol, tol.rtol], dtype=torch.float64).to(out.device, non_blocking=True)
    try:
        return fn(out, ref, bounds[0], bounds[1])
    except Exception as e:  # a compiler failure must not fail a candidate: judge it eagerly
        _compiled["failed"] = True
        log.warning("comparing outputs eagerly from now on: torch.compile failed (%s)", e)
        return _statistics(out, ref, tol.atol, tol.rtol)


def _statistics(
    out: torch.Tensor, ref: torch.Tensor, atol: float | torch.Tensor, rtol: float | torch.Tensor
) -> torch.Tensor:
    """The ten numbers `_conclude` judges by, for each row of `out` (outputs, flattened, one a row)
    against the same row of `ref`: an (outputs, 10) float64 tensor on the reference's device."""
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
    matched = (diff <= atol + rtol * b.abs()) & ref_finite
    rel = torch.where(both, (a - b).abs() / b.abs().clamp_min(1e-12), torch.zeros_like(a))
    # Counts are summed in float64: stacked with float32 maxima they would round past 2^24 elements.
    count = torch.float64
    return torch.stack(
        [
            unwritten.any(dim=1).to(count),
            (~out_finite & ref_finite & ~unwritten).any(dim=1).to(count),
            (~out_finite).sum(dim=1, dtype=count),
            (~ref_finite).sum(dim=1, dtype=count),
            matched.sum(dim=1, dtype=count),
            ref_finite.sum(dim=1, dtype=count),
            torch.where(both, diff, torch.zeros_like(diff)).amax(dim=1).to(count),
            rel.amax(dim=1).to(count),
            (out == out[:, :1]).all(dim=1).to(count),
            (ref == ref[:, :1]).all(dim=1).to(count),
        ],
        dim=1,
    )


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


def bitwise_unchanged(calls: list[list[tuple[torch.Tensor, torch.Tensor]]]) -> list[list[bool]]:
    """Per call, per (input, its pristine copy): same shape, dtype and bits, i.e. an input the call
    left untouched (a NaN rewritten with another payload was written, so it counts as changed). Read
    back in one transfer per device, like the comparisons."""
    flags: list[bool | torch.Tensor] = []
    for a, b in (pair for pairs in calls for pair in pairs):
        if a.shape != b.shape or a.dtype != b.dtype:
            flags.append(False)
            continue
        as_int = _SAME_SIZE_INT.get(a.element_size())
        if a.is_floating_point() and as_int is not None:
            a, b = a.view(as_int), b.view(as_int)
        flags.append((a == b).all() if a.numel() else True)
    by_device: dict[torch.device, list[torch.Tensor]] = {}
    for f in flags:
        if isinstance(f, torch.Tensor):
            by_device.setdefault(f.device, []).append(f)
    read = {device: iter(torch.stack(fs).tolist()) for device, fs in by_device.items()}
    values = iter([bool(next(read[f.device])) if isinstance(f, torch.Tensor) else f for f in flags])
    return [[next(values) for _ in pairs] for pairs in calls]


def failure_of(check: OutputCheck) -> FailureClass | None:
    for name, failure in CHECK_CLASSES:
        if check.checks.get(name) is False:
            return failure
    return None
