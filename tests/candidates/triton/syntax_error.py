"""A candidate for task `matmul` with a syntax error on line 14 (the missing colon)."""

import torch
import triton
import triton.language as tl


@triton.jit
def copy_kernel(src_ptr, dst_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(dst_ptr + offs, tl.load(src_ptr + offs, mask=offs < n), mask=offs < n)


def run(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> None
    n = c.numel()
    copy_kernel[(triton.cdiv(n, 1024),)](a, c, n, BLOCK=1024)
