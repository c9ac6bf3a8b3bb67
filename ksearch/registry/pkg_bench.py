"""`python -m <package>.bench OP`: on a GPU, time every kernel of OP that runs there on its verified
shapes against the task's reference, the vendor library (where the op has one) and torch.compile of
the reference, and print the speedups next to those recorded in the kernel's EvidencePacket.

CUDA events time each call: warmup, then the median of repeated calls, each after an L2 flush
(a buffer larger than L2 written, then read), less the event floor (the median of event pairs with
nothing between them, flushed the same way), and torch.compile compiled for each shape
(dynamic=False): ksearch's harness times its packets this way, so the two agree on small shapes too.
Nothing is timed on the CPU: kernels there run in the Triton interpreter, whose times mean nothing.
`ksearch export` copies this file into the package as bench.py.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .select import Kernel, OpSpec, param_values, platform_rejection

WARMUP, REPEATS = 5, 25
FLUSH_BYTES = 512 << 20  # larger than any target's L2 (B200: 126 MB, MI355X: 4 MB per XCD)
NO_GPU = "bench: no GPU here; nothing is timed on the CPU (the Triton interpreter's times mean nothing)"


def vendor(op: str) -> tuple[str, Callable[..., Any]] | None:
    """The vendor library's implementation of `op`, called like the reference, or None."""
    import torch
    import torch.nn.functional as F

    if op == "matmul":
        return "torch.matmul", lambda a, b: torch.matmul(a, b)
    if op == "softmax":
        return "torch.softmax", lambda x: torch.softmax(x, dim=-1)
    if op == "rmsnorm" and hasattr(F, "rms_norm"):
        return "F.rms_norm", lambda x, weight, eps: F.rms_norm(x, (x.shape[-1],), weight, eps)
    return None


def event_times_us(fn: Callable[[], Any], flush: Any) -> list[float]:
    """REPEATS event-timed calls of `fn`, each after an L2 flush, in microseconds (raw event times)."""
    import torch

    events = [
        (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(REPEATS)
    ]
    for start, end in events:
        # written, then read: L2 left holding clean lines. A write-only flush leaves an L2 of dirty lines
        # that the timed call's own traffic must write back (7-8 us more at any size on an H100, as
        # ksearch's harness found: ksearch/harness/timing.py)
        flush.zero_()
        flush.max()
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return [start.elapsed_time(end) * 1000 for start, end in events]


def time_us(
    fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any], flush: Any, floor_us: float
) -> float:
    """Median time of `fn(*args, **kwargs)` in microseconds, less the event floor `floor_us`."""
    for _ in range(WARMUP):
        fn(*args, **kwargs)
    return max(statistics.median(event_times_us(lambda: fn(*args, **kwargs), flush)) - floor_us, 0.0)


def recorded(spec: OpSpec, kernel: Kernel, axes: dict[str, int], package_dir: Path) -> str:
    """What the kernel's packet recorded for the workload with these axes."""
    path = package_dir / kernel.provenance.get("packet", "")
    if not path.is_file():
        return "packet: none"
    performance = json.loads(path.read_text()).get("performance")
    if not performance:
        return "packet: unmeasured"
    names = {name for name, w in spec.workloads.items() if w == axes}
    for w in performance["workloads"]:
        if w["workload"] in names and w.get("speedup") is not None:
            others = [
                f"{b} {us / w['median_us']:.2f}x"
                for b, us in w.get("baselines_us", {}).items()
                if us is not None
            ]
            return f"packet: {w['speedup']:.2f}x over {w.get('baseline')}" + (
                f" ({', '.join(others)})" if others else ""
            )
    return "packet: this shape was not timed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__package__}.bench", description=__doc__)
    parser.add_argument("op", help="operator name or alias")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    if args.device != "cuda" or not torch.cuda.is_available():
        print(NO_GPU)
        return 0
    operators = importlib.import_module(__package__ or "").operators
    if args.op not in operators:
        parser.error(f"no operator {args.op!r}; this package has: {', '.join(operators)}")
    operator = operators[args.op]
    manifest, spec = operator.manifest, operator.spec
    platform = operator.platform(torch.device("cuda"))
    flush = torch.empty(FLUSH_BYTES, dtype=torch.int8, device="cuda")
    # an event pair with nothing between it reads a microsecond or two that no kernel spends
    floor_us = statistics.median(event_times_us(lambda: None, flush))
    print(f"event floor {floor_us:.2f} us, subtracted from every time below")
    reference = operator.module(f"references.{spec.reference}").reference
    library = vendor(spec.name)
    for kernel in manifest.kernels_of(spec.name):
        why = platform_rejection(manifest, kernel, platform)
        if why is not None:
            print(f"{kernel.id}: skipped ({why})")
            continue
        run = operator.module(f"kernels.{kernel.module}").run
        for axes in kernel.verified_shapes:
            inputs = operator.random_inputs(
                axes, kernel.dtype, "cuda", torch.Generator().manual_seed(args.seed)
            )
            outputs = operator.allocate(inputs)
            params = param_values(spec, {**spec.const_axes, **axes}, kernel.params)
            ours = time_us(run, [*inputs, *outputs], {}, flush, floor_us)
            # compiled for this shape alone: one compile reused across shapes turns dynamic, and slower
            torch.compiler.reset()
            rivals = [("reference", reference), ("torch.compile", torch.compile(reference, dynamic=False))]
            if library is not None:
                rivals.insert(1, library)
            parts = [f"kernel {ours:.1f} us"]
            for name, fn in rivals:
                try:
                    us = time_us(fn, inputs, params, flush, floor_us)
                    parts.append(f"{name} {us:.1f} us ({us / ours:.2f}x)")
                except Exception as e:  # torch.compile may fail on a platform; the others still time
                    parts.append(f"{name} failed ({type(e).__name__})")
            shape = ",".join(f"{a}={v}" for a, v in axes.items())
            print(
                f"{kernel.id} {shape}: "
                + " | ".join(parts)
                + " | "
                + recorded(spec, kernel, axes, Path(__file__).parent)
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
