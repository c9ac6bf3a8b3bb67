"""RMSNorm, one row per program in BLOCK_N-wide chunks (sum of squares, then scale); the chunk width
and warp count come from a `functools.lru_cache`d helper of the row length alone (ints in, ints
out), so the choice is made once per distinct N.

task: rmsnorm
"""

import functools

import torch
import triton
import triton.language as tl

MAX_BLOCK = 4096


@functools.lru_cache(maxsize=64)
def _launch_config(n_cols: int) -> tuple[int, int]:
    """(BLOCK_N, num_warps) for rows of `n_cols`: the row rounded up to a power of two, at most
    MAX_BLOCK wide, and one warp per 256 elements of the chunk (1 to 8)."""
    block = min(triton.next_power_of_2(n_cols), MAX_BLOCK)
    warps = max(1, min(8, block // 256))
    return block, warps


@triton.jit
def _rmsnorm_chunked(x_ptr, w_ptr, out_ptr, N, stride_x, stride_out, eps, BLOCK_N: tl.constexpr):
    row = tl.program_id(0)
    x_row = x_ptr + row * stride_x
    acc = tl.zeros([BLOCK_N], dtype=tl.float32)
    for start in range(0, N, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        x = tl.load(x_row + cols, mask=cols < N, other=0.0).to(tl.float32)
        acc += x * x
    rstd = 1.0 / tl.sqrt(tl.sum(acc, axis=0) / N + eps)
    for start in range(0, N, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        mask = cols < N
        x = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32)
        w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
        tl.store(out_ptr + row * stride_out + cols, (x * rstd * w).to(out_ptr.dtype.element_ty), mask=mask)


def run(x: torch.Tensor, weight: torch.Tensor, out: torch.Tensor) -> None:
    M, N = x.shape
    block, warps = _launch_config(N)
    _rmsnorm_chunked[(M,)](x, weight, out, N, x.stride(0), out.stride(0), 1e-6, BLOCK_N=block, num_warps=warps)
