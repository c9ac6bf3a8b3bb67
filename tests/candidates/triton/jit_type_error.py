"""A candidate for task `matmul` whose jit function has a type error: tl.dot on 1-D tensors (line 17)."""

import torch
import triton
import triton.language as tl


@triton.jit
def bad_dot_kernel(a_ptr, b_ptr, c_ptr, M, N, K, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < K
    a = tl.load(a_ptr + offs, mask=mask, other=0.0)
    b = tl.load(b_ptr + offs, mask=mask, other=0.0)
    # tl.dot needs 2-D (or 3-D) operands; these are 1-D vectors, so compilation fails on the next
    # line.
    c = tl.dot(a, b)
    tl.store(c_ptr + offs, c, mask=offs < M * N)


def run(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> None:
    M, K = a.shape
    N = b.shape[1]
    bad_dot_kernel[(triton.cdiv(K, 64),)](a, b, c, M, N, K, BLOCK=64)
