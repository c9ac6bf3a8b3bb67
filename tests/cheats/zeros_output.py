"""Zeros output: a "fast" RMSNorm kernel that only stores zeros (no loads, no reduction).

Every element is written, so a poison check passes; the values are a constant while the
reference varies.

layer: dynamic (writes every output element; nothing in the source is forbidden)
expect: constant_output
task: rmsnorm
"""

import torch
import triton
import triton.language as tl


@triton.jit
def rmsnorm_fast(x_ptr, w_ptr, out_ptr, N, stride_x, stride_out, eps, BLOCK_N: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)
    mask = cols < N
    tl.store(out_ptr + row * stride_out + cols, tl.zeros([BLOCK_N], dtype=tl.float32).to(out_ptr.dtype.element_ty),
             mask=mask)


def run(x: torch.Tensor, weight: torch.Tensor, out: torch.Tensor) -> None:
    M, N = x.shape
    rmsnorm_fast[(M,)](x, weight, out, N, x.stride(0), out.stride(0), 1e-6, BLOCK_N=triton.next_power_of_2(N))
