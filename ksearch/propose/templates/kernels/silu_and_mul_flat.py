"""silu_and_mul/flat: a flat 1-D grid over the M*I outputs, BLOCK outputs per program; the row and
column of each element come from a division by I."""

import torch
import triton
import triton.language as tl

from ksearch.propose.templates.kernels.launch import eviction_policies
from ksearch.propose.templates.kernels.silu_parts import silu_mul

# knobs (set by the renderer)
BLOCK = 2048
num_warps = 8
EVICT = "none"
SILU = "exp"


@triton.jit
def silu_mul_flat_kernel(
    x_ptr,
    out_ptr,
    total,
    I,
    stride_x,
    stride_o,
    BLOCK: tl.constexpr,
    SIGMOID: tl.constexpr,
    STREAM: tl.constexpr,
):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)  # int32: division by I stays cheap
    mask = offs < total
    row = offs // I
    col = offs % I
    g = tl.load(x_ptr + row * stride_x + col, mask=mask, other=0.0, eviction_policy=STREAM).to(tl.float32)
    u = tl.load(x_ptr + row * stride_x + I + col, mask=mask, other=0.0, eviction_policy=STREAM).to(tl.float32)
    y = silu_mul(g, u, SIGMOID)
    tl.store(out_ptr + row * stride_o + col, y.to(out_ptr.dtype.element_ty), mask=mask)


def silu_and_mul(x: torch.Tensor, out: torch.Tensor) -> None:
    M = x.shape[0]
    I = x.shape[1] // 2
    total = M * I
    stream, _ = eviction_policies(EVICT)
    silu_mul_flat_kernel[(triton.cdiv(total, BLOCK),)](
        x,
        out,
        total,
        I,
        x.stride(0),
        out.stride(0),
        BLOCK=BLOCK,
        SIGMOID=SILU == "sigmoid",
        STREAM=stream,
        num_warps=num_warps,
    )
