"""Distribution-specific fast path: a cheap probe (the first 32 values of each row) decides that the
row is "well-conditioned", and then the sum of squares runs on x clamped to [-8, 8] (so it could be
accumulated in half precision), skipping the overflow-safe normalization.

Exact for N(0, 1) activations (|x| > 8 essentially never happens); wrong for any row whose probe
looks small but which holds a large value further on (heavy tails, outliers).

layer: dynamic (numerics on heavy-tailed / outlier inputs; no torch on the data, nothing forbidden)
expect: numerical_mismatch
task: rmsnorm
"""

import torch
import triton
import triton.language as tl


@triton.jit
def rmsnorm_fast_path(x_ptr, w_ptr, out_ptr, N, stride_x, stride_out, eps, BLOCK_N: tl.constexpr,
                      PROBE: tl.constexpr):
    row = tl.program_id(0)
    head = tl.arange(0, PROBE)
    probe = tl.max(tl.abs(tl.load(x_ptr + row * stride_x + head, mask=head < N, other=0.0).to(tl.float32)), axis=0)
    well_conditioned = probe < 8.0
    cols = tl.arange(0, BLOCK_N)
    mask = cols < N
    x = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
    xs = tl.where(well_conditioned, tl.minimum(tl.maximum(x, -8.0), 8.0), x)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    rstd = tl.rsqrt(tl.sum(xs * xs, axis=0) / N + eps)
    tl.store(out_ptr + row * stride_out + cols, (x * rstd * w).to(out_ptr.dtype.element_ty), mask=mask)


def run(x: torch.Tensor, weight: torch.Tensor, out: torch.Tensor) -> None:
    M, N = x.shape
    rmsnorm_fast_path[(M,)](x, weight, out, N, x.stride(0), out.stride(0), 1e-6,
                            BLOCK_N=triton.next_power_of_2(N), PROBE=32)
