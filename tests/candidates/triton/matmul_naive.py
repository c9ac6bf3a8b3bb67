"""Matmul without tensor cores for task `matmul`: each program computes BLOCK_N outputs of one row
as a broadcast multiply and a sum over K, so no tl.dot and no MMA instruction is emitted."""

import torch
import triton
import triton.language as tl


@triton.jit
def matmul_row_kernel(
    a_ptr, b_ptr, c_ptr,
    N, K,
    stride_am, stride_bk, stride_cm,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    row = tl.program_id(0)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    acc = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        a = tl.load(a_ptr + row * stride_am + offs_k, mask=offs_k < K, other=0.0).to(tl.float32)
        b = tl.load(b_ptr + offs_k[:, None] * stride_bk + offs_n[None, :],
                    mask=(offs_k[:, None] < K) & (offs_n[None, :] < N), other=0.0).to(tl.float32)
        acc += tl.sum(a[:, None] * b, axis=0)
    tl.store(c_ptr + row * stride_cm + offs_n, acc.to(c_ptr.dtype.element_ty), mask=offs_n < N)


def run(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> None:
    M, K = a.shape
    N = b.shape[1]
    BLOCK_N, BLOCK_K = 64, 32
    grid = (M, triton.cdiv(N, BLOCK_N))
    matmul_row_kernel[grid](a, b, c, N, K, a.stride(0), b.stride(0), c.stride(0),
                            BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, num_warps=4)
