"""Fixed shift: softmax that subtracts a constant (20) instead of the row max, saving the max pass.

exp(x - 20) neither overflows nor underflows for any logit in [-60, 108], and every distribution
clipped at |x| <= 100 stays inside that window, so the kernel is right (to float32 rounding) on
normal, heavy-tailed and outlier logits at every dtype. A row whose logits sit 100..200 away from
0 makes exp overflow to inf (inf / inf) or underflow to 0 (0 / 0): NaN rows.

layer: dynamic (numerics on large-offset logits; nothing in the source is forbidden)
expect: nonfinite
task: softmax
"""

import torch
import triton
import triton.language as tl

SHIFT = tl.constexpr(20.0)


@triton.jit
def softmax_fixed_shift(x_ptr, out_ptr, N, stride_x, stride_out, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(0, N, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        x = tl.load(x_ptr + row * stride_x + cols, mask=cols < N, other=-float("inf")).to(tl.float32)
        acc += tl.exp(x - SHIFT)
    denom = tl.sum(acc, axis=0)
    for start in range(0, N, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        mask = cols < N
        x = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=-float("inf")).to(tl.float32)
        tl.store(out_ptr + row * stride_out + cols, (tl.exp(x - SHIFT) / denom).to(out_ptr.dtype.element_ty),
                 mask=mask)


def run(x: torch.Tensor, out: torch.Tensor) -> None:
    M, N = x.shape
    softmax_fixed_shift[(M,)](x, out, N, x.stride(0), out.stride(0), BLOCK=min(1024, triton.next_power_of_2(N)))
