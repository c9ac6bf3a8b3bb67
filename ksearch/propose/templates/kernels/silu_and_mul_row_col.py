"""silu_and_mul/row_col: a 2-D grid, each program a [ROWS, BLOCK_I] tile of the output: contiguous,
vectorizable loads of the gate and up halves, no integer division."""

import torch
import triton
import triton.language as tl

from ksearch.propose.templates.kernels.launch import eviction_policies, launch_warps
from ksearch.propose.templates.kernels.silu_parts import silu_mul

# knobs (set by the renderer)
BLOCK_I = 1024
ROWS = 1
num_warps = 4
EVICT = "none"
SILU = "exp"


@triton.jit
def silu_mul_2d_kernel(
    x_ptr,
    out_ptr,
    M,
    I,
    stride_x,
    stride_o,
    ROWS: tl.constexpr,
    BLOCK_I: tl.constexpr,
    SIGMOID: tl.constexpr,
    STREAM: tl.constexpr,
):
    rows = (tl.program_id(0) * ROWS + tl.arange(0, ROWS)).to(tl.int64)
    cols = tl.program_id(1) * BLOCK_I + tl.arange(0, BLOCK_I)
    mask = (rows[:, None] < M) & (cols[None, :] < I)
    src = x_ptr + rows[:, None] * stride_x + cols[None, :]
    g = tl.load(src, mask=mask, other=0.0, eviction_policy=STREAM).to(tl.float32)
    u = tl.load(src + I, mask=mask, other=0.0, eviction_policy=STREAM).to(tl.float32)
    y = silu_mul(g, u, SIGMOID)
    tl.store(out_ptr + rows[:, None] * stride_o + cols[None, :], y.to(out_ptr.dtype.element_ty), mask=mask)


def silu_and_mul(x: torch.Tensor, out: torch.Tensor) -> None:
    M = x.shape[0]
    I = x.shape[1] // 2
    block_i = min(BLOCK_I, triton.next_power_of_2(I))
    stream, _ = eviction_policies(EVICT)
    grid = (triton.cdiv(M, ROWS), triton.cdiv(I, block_i))
    silu_mul_2d_kernel[grid](
        x,
        out,
        M,
        I,
        x.stride(0),
        out.stride(0),
        ROWS=ROWS,
        BLOCK_I=block_i,
        SIGMOID=SILU == "sigmoid",
        STREAM=stream,
        num_warps=launch_warps(num_warps, ROWS * block_i),
    )
