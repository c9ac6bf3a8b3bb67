"""Half-precision sum of squares: RMSNorm that squares x and sums the squares in float16 (half the
register footprint of a float32 accumulator), converting to float32 only for the rsqrt.

For activations below 256 in magnitude x^2 and the row sums stay under the float16 maximum
(65504): N(0, 1) rows sum to ~N, and the clipped heavy tails and outliers (|x| <= 100) add at
most ~1e4 each, so the kernel is right on those inputs. A massive activation (300 or more: 300^2 =
90000) overflows to inf, the row's rsqrt is 0 and the row comes out as zeros (finite, wrong). On
the single-token workload that row is the whole output: all zeros where the reference varies.

layer: dynamic (numerics on massive activations; nothing in the source is forbidden)
expect: constant_output
task: rmsnorm
"""

import torch
import triton
import triton.language as tl


@triton.jit
def rmsnorm_half_squares(x_ptr, w_ptr, out_ptr, N, stride_x, stride_out, eps, BLOCK_N: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)
    mask = cols < N
    xh = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=0.0).to(tl.float16)
    ss = tl.sum(xh * xh, axis=0, dtype=tl.float16)  # squares and their sum stay in float16
    rstd = tl.rsqrt(ss.to(tl.float32) / N + eps)
    x = xh.to(tl.float32)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + row * stride_out + cols, (x * rstd * w).to(out_ptr.dtype.element_ty), mask=mask)


def run(x: torch.Tensor, weight: torch.Tensor, out: torch.Tensor) -> None:
    M, N = x.shape
    rmsnorm_half_squares[(M,)](x, weight, out, N, x.stride(0), out.stride(0), 1e-6,
                               BLOCK_N=triton.next_power_of_2(N))
