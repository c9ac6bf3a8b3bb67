"""softmax/row_block: ROWS whole rows per program (next power of two of N, -inf padding) as one tile:
max, exp, sum and scale in registers, one read and one write per element."""

import torch
import triton
import triton.language as tl

from ksearch.propose.templates.kernels.launch import launch_warps, rows_per_program

# knobs (set by the renderer)
ROWS = 1
num_warps = "auto"


@triton.jit
def softmax_rows_kernel(x_ptr, out_ptr, M, N, stride_x, stride_o, ROWS: tl.constexpr, BLOCK_N: tl.constexpr):
    rows = (tl.program_id(0) * ROWS + tl.arange(0, ROWS)).to(tl.int64)
    cols = tl.arange(0, BLOCK_N)
    row_ok = rows < M
    mask = row_ok[:, None] & (cols[None, :] < N)
    x = tl.load(x_ptr + rows[:, None] * stride_x + cols[None, :], mask=mask, other=-float("inf"))
    x = x.to(tl.float32)
    # rows past M are all -inf: shift them by 0 and divide by 1 so they stay finite (never stored)
    mx = tl.where(row_ok, tl.max(x, axis=1), 0.0)
    e = tl.exp(x - mx[:, None])
    den = tl.where(row_ok, tl.sum(e, axis=1), 1.0)
    y = e * (1.0 / den)[:, None]
    tl.store(out_ptr + rows[:, None] * stride_o + cols[None, :], y.to(out_ptr.dtype.element_ty), mask=mask)


def softmax(x: torch.Tensor, out: torch.Tensor) -> None:
    M, N = x.shape
    block_n = triton.next_power_of_2(N)
    rows = rows_per_program(ROWS, block_n)
    softmax_rows_kernel[(triton.cdiv(M, rows),)](
        x, out, M, N, x.stride(0), out.stride(0),
        ROWS=rows, BLOCK_N=block_n, num_warps=launch_warps(num_warps, rows * block_n),
    )  # fmt: skip
