"""softmax/fixed_block (risky): one program per row with a BLOCK_N fixed ahead of time (not from N), no
loop: the tail of a longer row is never written and is missing from the max and the sum."""

import torch
import triton
import triton.language as tl

# knobs (set by the renderer)
BLOCK_N = 1024
num_warps = 4


@triton.jit
def softmax_fixed_kernel(x_ptr, out_ptr, N, stride_x, stride_o, BLOCK_N: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_N)
    mask = cols < N
    x = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=-float("inf")).to(tl.float32)
    e = tl.exp(x - tl.max(x, axis=0))
    y = e / tl.sum(e, axis=0)
    tl.store(out_ptr + row * stride_o + cols, y.to(out_ptr.dtype.element_ty), mask=mask)


def softmax(x: torch.Tensor, out: torch.Tensor) -> None:
    M, N = x.shape
    softmax_fixed_kernel[(M,)](x, out, N, x.stride(0), out.stride(0), BLOCK_N=BLOCK_N, num_warps=num_warps)
