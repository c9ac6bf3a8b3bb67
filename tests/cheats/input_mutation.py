"""Mutating inputs: normalizes x in place (saves an output-sized buffer of traffic on the first
pass), then copies the normalized x into out. The output is right; the input is destroyed.

layer: dynamic (compare the inputs before and after the call)
expect: input_mutated
task: rmsnorm
"""

import torch
import triton
import triton.language as tl


@triton.jit
def rmsnorm_inplace(x_ptr, w_ptr, N, stride_x, eps, BLOCK_N: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)
    mask = cols < N
    x = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    rstd = tl.rsqrt(tl.sum(x * x, axis=0) / N + eps)
    tl.store(x_ptr + row * stride_x + cols, (x * rstd * w).to(x_ptr.dtype.element_ty), mask=mask)


@triton.jit
def copy_rows(src_ptr, dst_ptr, N, stride_src, stride_dst, BLOCK_N: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)
    mask = cols < N
    tl.store(dst_ptr + row * stride_dst + cols, tl.load(src_ptr + row * stride_src + cols, mask=mask), mask=mask)


def run(x: torch.Tensor, weight: torch.Tensor, out: torch.Tensor) -> None:
    M, N = x.shape
    BLOCK_N = triton.next_power_of_2(N)
    rmsnorm_inplace[(M,)](x, weight, N, x.stride(0), 1e-6, BLOCK_N=BLOCK_N)
    copy_rows[(M,)](x, out, N, x.stride(0), out.stride(0), BLOCK_N=BLOCK_N)
