"""Jit helpers of the streaming softmax templates."""

import triton
import triton.language as tl


@triton.jit
def write_normalized(src, dst, N, row_max, inv, BLOCK_N: tl.constexpr):
    # the last pass over a row streamed in BLOCK_N chunks: exp(x - max) * (1 / sum of exp)
    for start in range(0, N, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        mask = cols < N
        v = tl.load(src + cols, mask=mask, other=-float("inf")).to(tl.float32)
        tl.store(dst + cols, (tl.exp(v - row_max) * inv).to(dst.dtype.element_ty), mask=mask)
