"""Hard-coded shape: a single fixed BLOCK_N = 1024 tile per row, tuned on head-dim norms (N = 128).

Correct whenever N <= 1024; for hidden sizes (2880, 4096) the columns past 1024 are never
written (and the RMS is taken over the first 1024 only).

layer: dynamic (poisoned outputs on the N = 2880 / 4096 workloads)
expect: output_not_written
task: rmsnorm
"""

import torch
import triton
import triton.language as tl

BLOCK_N = 1024


@triton.jit
def rmsnorm_fixed(x_ptr, w_ptr, out_ptr, N, stride_x, stride_out, eps, BLOCK_N: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)
    mask = cols < N
    x = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    rstd = tl.rsqrt(tl.sum(x * x, axis=0) / tl.minimum(N, BLOCK_N) + eps)
    tl.store(out_ptr + row * stride_out + cols, (x * rstd * w).to(out_ptr.dtype.element_ty), mask=mask)


def run(x: torch.Tensor, weight: torch.Tensor, out: torch.Tensor) -> None:
    M, N = x.shape
    rmsnorm_fixed[(M,)](x, weight, out, N, x.stride(0), out.stride(0), 1e-6, BLOCK_N=BLOCK_N)
