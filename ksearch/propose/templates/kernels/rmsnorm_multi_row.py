"""rmsnorm/multi_row: ROWS whole rows per program as one [ROWS, BLOCK_N] tile, the weight loaded once
per program; ROWS is lowered for wide rows so a tile stays within 16K elements."""

import torch
import triton
import triton.language as tl

from ksearch.propose.templates.kernels.launch import launch_warps, rows_per_program
from ksearch.propose.templates.kernels.rmsnorm_parts import load_row, rmsnorm_entries

# knobs (set by the renderer)
ROWS = 4
num_warps = "auto"
EVICT = "none"
# the task's eps (set by the renderer)
eps = 1e-6


@triton.jit
def rmsnorm_rows_kernel(
    x_ptr, r_ptr, w_ptr, out_ptr, rout_ptr, M, N, stride_x, stride_r, stride_o, stride_ro, eps,
    FUSED: tl.constexpr, STREAM: tl.constexpr, KEEP: tl.constexpr, ROWS: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    rows = (tl.program_id(0) * ROWS + tl.arange(0, ROWS)).to(tl.int64)
    cols = tl.arange(0, BLOCK_N)
    col_mask = cols < N
    mask = (rows[:, None] < M) & col_mask[None, :]
    x = load_row(
        x_ptr,
        r_ptr,
        rout_ptr,
        rows[:, None],
        cols[None, :],
        mask,
        stride_x,
        stride_r,
        stride_ro,
        FUSED,
        STREAM,
    )
    rstd = tl.rsqrt(tl.sum(x * x, axis=1) / N + eps)
    w = tl.load(w_ptr + cols, mask=col_mask, other=0.0, eviction_policy=KEEP).to(tl.float32)
    y = x * rstd[:, None] * w[None, :]
    tl.store(out_ptr + rows[:, None] * stride_o + cols[None, :], y.to(out_ptr.dtype.element_ty), mask=mask)


def launch(x: torch.Tensor, args: tuple, meta: dict) -> None:
    M, N = x.shape
    block_n = triton.next_power_of_2(N)
    rows = rows_per_program(ROWS, block_n)
    rmsnorm_rows_kernel[(triton.cdiv(M, rows),)](
        *args, **meta, ROWS=rows, BLOCK_N=block_n, num_warps=launch_warps(num_warps, rows * block_n)
    )


rmsnorm, fused_add_rmsnorm = rmsnorm_entries(launch, eps, EVICT)
