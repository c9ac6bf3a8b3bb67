"""`python -m <package>.numerics OP`: check every kernel of OP that can run here against the task's
reference, on its verified shapes and on random shapes inside its constraints, with the task's
tolerances (an element matches when |out - ref| <= atol + rtol * |ref|; a fraction matched_ratio of
them must match, and none may be off by more than max_error_cap). Exits 1 if any check fails.

Each kernel is called directly, not through selection, so every kernel is checked, not only the one
a call would choose. On the CPU, kernels run in the Triton interpreter. `ksearch export` copies this
file into the package as numerics.py.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import random
import sys
from typing import Any

from .select import AxisRange, Kernel, OpSpec, Platform, evaluate, platform_rejection

# random shapes stay below this many elements (inputs and outputs together): the interpreter runs
# a kernel's programs one by one in Python, so CPU shapes must stay small
MAX_ELEMENTS = {"cpu": 1 << 16, "cuda": 1 << 24}


def elements(spec: OpSpec, axes: dict[str, int]) -> int:
    names = {**spec.const_axes, **axes}
    return sum(math.prod(evaluate(d, names) for d in t.shape) for t in [*spec.inputs, *spec.outputs])


def sample_shapes(
    spec: OpSpec, constraints: dict[str, AxisRange], n: int, rng: random.Random, max_elements: int
) -> list[dict[str, int]]:
    """`n` random axis values inside `constraints` (min..max, multiples of multiple_of), drawn
    log-uniformly (small sizes and edge cases are as likely as large ones), then shrunk, largest
    axis first, until the call has at most `max_elements` elements or every axis is at its minimum."""
    valid = {}  # per axis: the smallest and largest allowed multiple
    for axis, r in constraints.items():
        lo, hi = -(-r.min // r.multiple_of) * r.multiple_of, r.max // r.multiple_of * r.multiple_of
        if lo > hi:
            raise ValueError(f"{axis}: no multiple of {r.multiple_of} in {r.min}..{r.max}")
        valid[axis] = (lo, hi, r.multiple_of)

    def down(axis: str, value: float) -> int:  # the largest allowed value <= value
        lo, hi, m = valid[axis]
        return min(hi, max(lo, lo + int((value - lo) // m) * m))

    shapes = []
    for _ in range(n):
        axes = {
            a: down(a, math.exp(rng.uniform(math.log(max(lo, 1)), math.log(max(hi, 1)) + 1e-9)))
            for a, (lo, hi, _) in valid.items()
        }
        while elements(spec, axes) > max_elements:
            shrinkable = [a for a in axes if axes[a] > valid[a][0]]
            if not shrinkable:
                break
            largest = max(shrinkable, key=lambda a: axes[a])
            axes[largest] = down(largest, axes[largest] / 2)
        shapes.append(axes)
    return shapes


def compare(out: Any, ref: Any, tol: dict[str, float]) -> tuple[float, float, bool]:
    """(max abs error, matched fraction, passed) of `out` against `ref` under `tol`. Elements where
    the reference is not finite are not scored; a non-finite output elsewhere is an infinite error."""
    import torch

    a, b = out.double().flatten(), ref.double().flatten()
    scored = torch.isfinite(b)
    diff = torch.nan_to_num((a - b).abs(), nan=math.inf)[scored]
    if diff.numel() == 0:
        return 0.0, 1.0, True
    matched = (diff <= tol["atol"] + tol["rtol"] * b[scored].abs()).double().mean().item()
    worst = diff.max().item()
    return worst, matched, matched >= tol["matched_ratio"] and worst <= tol["max_error_cap"]


def output_tolerances(spec: OpSpec, dtype: str) -> list[dict[str, float]]:
    """Per output, the tolerance of its concrete dtype under dtype variant `dtype`."""
    concrete = [dtype if t.dtype == "$dtype" else t.dtype for t in spec.outputs]
    missing = sorted({d for d in concrete if d not in spec.tolerances})
    if missing:
        raise KeyError(
            f"the manifest records no tolerance for {', '.join(missing)} outputs of {spec.name}; "
            "re-export the package with a newer ksearch"
        )
    return [spec.tolerances[d] for d in concrete]


def check(operator: Any, kernel: Kernel, axes: dict[str, int], device: str, seed: int) -> tuple[bool, str]:
    """One kernel at one shape: (passed, the line saying so)."""
    import torch

    spec = operator.spec
    shape = ",".join(f"{a}={v}" for a, v in axes.items())
    generator = torch.Generator().manual_seed(seed)
    try:
        inputs = operator.random_inputs(axes, kernel.dtype, device, generator)
        outputs = operator.run_kernel(kernel, inputs)
        refs = operator.run_reference(inputs, kernel.params)
    except Exception as e:  # a kernel that crashes on a shape it claims fails that shape
        return (
            False,
            f"{kernel.id} {shape}: FAIL ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})",
        )
    results = [
        compare(out, ref, tol)
        for out, ref, tol in zip(outputs, refs, output_tolerances(spec, kernel.dtype), strict=True)
    ]
    passed = all(r[2] for r in results)
    worst = max(r[0] for r in results)
    matched = min(r[1] for r in results)
    verdict = "pass" if passed else "FAIL"
    return passed, f"{kernel.id} {shape}: max abs err {worst:.3g}, matched {matched:.2%}: {verdict}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__package__}.numerics", description=__doc__)
    parser.add_argument("op", help="operator name or alias")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when there is a GPU")
    parser.add_argument("--shapes", type=int, default=4, help="random shapes per kernel (default 4)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no GPU here")
    if device == "cpu":  # before any kernel module is imported: @triton.jit reads it then
        os.environ["TRITON_INTERPRET"] = "1"
    operators = importlib.import_module(__package__ or "").operators
    if args.op not in operators:
        parser.error(f"no operator {args.op!r}; this package has: {', '.join(operators)}")
    operator = operators[args.op]
    manifest, spec = operator.manifest, operator.spec
    platform = operator.platform(torch.device(device))
    if device == "cpu":  # asking for the CPU turns the interpreter on for this process
        platform = Platform(platform.capability, interpret=True)
    rng = random.Random(args.seed)
    failed: list[str] = []
    checked = skipped = 0
    for kernel in manifest.kernels_of(spec.name):
        why = platform_rejection(manifest, kernel, platform)
        if why is not None:
            print(f"{kernel.id}: skipped ({why})")
            skipped += 1
            continue
        extra = sample_shapes(spec, kernel.constraints, args.shapes, rng, MAX_ELEMENTS[device])
        for i, axes in enumerate([*kernel.verified_shapes, *extra]):
            passed, line = check(operator, kernel, axes, device, args.seed + i)
            print(line + ("" if i < len(kernel.verified_shapes) else " (random shape)"), flush=True)
            checked += 1
            if not passed:
                failed.append(line)
    print(
        f"numerics {spec.name} on {platform.capability}: {checked} checks, {checked - len(failed)} passed, "
        f"{len(failed)} failed; {skipped} kernels skipped"
        + ("" if checked else " (nothing could be checked here)")
    )
    for line in failed:
        print(f"  failed: {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
