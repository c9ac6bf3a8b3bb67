"""`ksearch bench compile`: compiles per minute for 100 Triton variants of one RMSNorm kernel,
across several targets, cold (empty cache) and warm (every result cached)."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from ksearch.compile.service import CompileRequest, compile_many

# Real code differences, not comments: the kernels differ in what they compile to.
_TEMPLATE = """import triton
import triton.language as tl


@triton.jit
def rmsnorm_v{i}(x_ptr, w_ptr, out_ptr, M, N, stride_x, stride_out, eps, BLOCK_N: tl.constexpr,
                 ROWS: tl.constexpr):
    cols = tl.arange(0, BLOCK_N)
    mask = cols < N
    w = tl.load(w_ptr + cols, mask=mask, other=0.0{w_policy}).to(tl.float32)
    for r in range(ROWS):
        row = tl.program_id(0) * ROWS + r
        if row < M:
            x = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=0.0{x_policy}).to(tl.float32)
            {norm}
            tl.store(out_ptr + row * stride_out + cols, (x * rstd * w).to(out_ptr.dtype.element_ty), mask=mask)


def run(x, weight, out):
    M, N = x.shape
    rmsnorm_v{i}[(triton.cdiv(M, {rows}),)](x, weight, out, M, N, x.stride(0), out.stride(0), 1e-6,
                               BLOCK_N=triton.next_power_of_2(N), ROWS={rows}, num_warps={warps})
"""
_NORMS = [
    "rstd = tl.rsqrt(tl.sum(x * x, axis=0) / N + eps)",
    "rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / N + eps)",
]
_POLICIES = ["", ", eviction_policy='evict_last'", ", cache_modifier='.cg'"]


def write_variants(directory: Path, count: int = 100) -> list[Path]:
    combos = itertools.product([1, 2, 4, 8, 16], [1, 2, 4, 8], _NORMS, _POLICIES[:2], _POLICIES)
    paths = []
    for i, (warps, rows, norm, w_policy, x_policy) in enumerate(itertools.islice(combos, count)):
        path = directory / f"variant_{i:03d}.py"
        path.write_text(
            _TEMPLATE.format(i=i, warps=warps, rows=rows, norm=norm, w_policy=w_policy, x_policy=x_policy)
        )
        paths.append(path)
    return paths


def bench_compile(workdir: Path, targets: list[str], count: int = 100, jobs: int | None = None) -> dict:
    variants = write_variants(workdir, count)
    requests = [
        CompileRequest(source_path=str(p), task="rmsnorm", target=t, dtype="float16")
        for p in variants
        for t in targets
    ]
    cache = workdir / "cache"
    res: dict = {"variants": count, "targets": ",".join(targets), "compiles": len(requests)}
    for phase in ("cold", "warm"):
        t0 = time.perf_counter()
        results = compile_many(requests, cache_dir=cache, jobs=jobs)
        seconds = time.perf_counter() - t0
        res[f"{phase}_s"] = seconds
        res[f"{phase}_compiles_per_min"] = len(requests) / seconds * 60
        res[f"{phase}_ok"] = sum(r.ok for r in results)
        res[f"{phase}_cached"] = sum(r.cached for r in results)
        res[f"{phase}_kernels"] = sum(len(r.kernels) for r in results)
    return res
