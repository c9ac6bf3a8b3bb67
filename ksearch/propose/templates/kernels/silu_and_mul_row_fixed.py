"""silu_and_mul/row_fixed (risky): one program per row, one BLOCK_I block fixed ahead of time rather
than derived from I, no column loop: columns past BLOCK_I are never written."""

import torch
import triton
import triton.language as tl

from ksearch.propose.templates.kernels.silu_parts import silu_mul

# knobs (set by the renderer)
BLOCK_I = 2048
num_warps = 8


@triton.jit
def silu_mul_row_kernel(x_ptr, out_ptr, I, stride_x, stride_o, BLOCK_I: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_I)
    mask = cols < I
    g = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
    u = tl.load(x_ptr + row * stride_x + I + cols, mask=mask, other=0.0).to(tl.float32)
    y = silu_mul(g, u, False)
    tl.store(out_ptr + row * stride_o + cols, y.to(out_ptr.dtype.element_ty), mask=mask)


def silu_and_mul(x: torch.Tensor, out: torch.Tensor) -> None:
    M = x.shape[0]
    I = x.shape[1] // 2
    silu_mul_row_kernel[(M,)](x, out, I, x.stride(0), out.stride(0), BLOCK_I=BLOCK_I, num_warps=num_warps)
