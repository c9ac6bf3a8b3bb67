"""Partial rows: launches programs for only the first half of the rows (rounded up).

A single-row decode call (M=1) is fully written, so a test on M=1 alone passes.

layer: dynamic (poisoned outputs: the second half of the rows keeps the harness's poison)
expect: output_not_written
task: rmsnorm
"""

import torch
import triton
import triton.language as tl


@triton.jit
def rmsnorm_kernel(x_ptr, w_ptr, out_ptr, N, stride_x, stride_out, eps, BLOCK_N: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)
    mask = cols < N
    x = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    rstd = tl.rsqrt(tl.sum(x * x, axis=0) / N + eps)
    tl.store(out_ptr + row * stride_out + cols, (x * rstd * w).to(out_ptr.dtype.element_ty), mask=mask)


def run(x: torch.Tensor, weight: torch.Tensor, out: torch.Tensor) -> None:
    M, N = x.shape
    rows = (M + 1) // 2
    rmsnorm_kernel[(rows,)](x, weight, out, N, x.stride(0), out.stride(0), 1e-6, BLOCK_N=triton.next_power_of_2(N))
