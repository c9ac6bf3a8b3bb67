"""Copy input to output: a bandwidth-perfect RMSNorm that just copies x into out.

RMS of the inputs is close to 1 and weight close to 1, so the output is "almost" right, and the
kernel runs at copy speed.

layer: dynamic (a plain Triton copy; nothing in the source is forbidden)
expect: numerical_mismatch
task: rmsnorm
"""

import torch
import triton
import triton.language as tl


@triton.jit
def _copy_rows(x_ptr, out_ptr, N, stride_x, stride_out, BLOCK_N: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)
    mask = cols < N
    v = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=0.0)
    tl.store(out_ptr + row * stride_out + cols, v, mask=mask)


def run(x: torch.Tensor, weight: torch.Tensor, out: torch.Tensor) -> None:
    M, N = x.shape
    _copy_rows[(M,)](x, out, N, x.stride(0), out.stride(0), BLOCK_N=triton.next_power_of_2(N))
