"""Precision downgrade: one-pass softmax that drops the max pass and keeps exp(x) and the
denominator in half precision with saturating (satfinite) conversions.

"exp(x) and the row sum fit in fp16" holds for N(0, 2) logits (exp stays below ~5e3, the sum
below ~2e4), so the kernel passes on normal inputs at float16. A heavy-tailed or outlier logit
(> ~11) saturates exp and the denominator at 65504 and the row comes out wrong (finite, not
constant).

layer: dynamic (numerics on heavy-tailed / outlier inputs; nothing in the source is forbidden)
expect: numerical_mismatch
task: softmax
"""

import torch
import triton
import triton.language as tl

FP16_MAX = tl.constexpr(65504.0)


@triton.jit
def softmax_half_sum(x_ptr, out_ptr, N, stride_x, stride_out, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    acc = tl.zeros([BLOCK], dtype=tl.float16)
    for start in range(0, N, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        x = tl.load(x_ptr + row * stride_x + cols, mask=cols < N, other=-float("inf")).to(tl.float32)
        e = tl.minimum(tl.exp(x), FP16_MAX)
        acc = tl.minimum(acc.to(tl.float32) + e, FP16_MAX).to(tl.float16)
    denom = tl.minimum(tl.sum(acc.to(tl.float32), axis=0), FP16_MAX)
    for start in range(0, N, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        mask = cols < N
        x = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=-float("inf")).to(tl.float32)
        e = tl.minimum(tl.exp(x), FP16_MAX).to(tl.float16).to(tl.float32)
        tl.store(out_ptr + row * stride_out + cols, (e / denom).to(out_ptr.dtype.element_ty), mask=mask)


def run(x: torch.Tensor, out: torch.Tensor) -> None:
    M, N = x.shape
    softmax_half_sum[(M,)](x, out, N, x.stride(0), out.stride(0), BLOCK=min(1024, triton.next_power_of_2(N)))
