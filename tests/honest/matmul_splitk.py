"""Split-K GEMM: SPLIT_K programs per output tile write fp32 partials to a workspace, a second
kernel sums the partials and casts. The workspace is allocated per call (torch.empty).

task: matmul
"""

import torch
import triton
import triton.language as tl


@triton.jit
def splitk_partial(a_ptr, b_ptr, ws_ptr, M, N, K, K_PER_SPLIT,
                   stride_am, stride_ak, stride_bk, stride_bn,
                   BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    split = tl.program_id(2)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    k_lo = split * K_PER_SPLIT
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K_PER_SPLIT, BLOCK_K):
        rk = k_lo + k0 + tl.arange(0, BLOCK_K)
        k_ok = (rk < K) & (rk < k_lo + K_PER_SPLIT)
        a = tl.load(a_ptr + rm[:, None] * stride_am + rk[None, :] * stride_ak,
                    mask=(rm[:, None] < M) & k_ok[None, :], other=0.0)
        b = tl.load(b_ptr + rk[:, None] * stride_bk + rn[None, :] * stride_bn,
                    mask=k_ok[:, None] & (rn[None, :] < N), other=0.0)
        acc = tl.dot(a, b, acc)
    ws = ws_ptr + split * M * N + rm[:, None] * N + rn[None, :]
    tl.store(ws, acc, mask=(rm[:, None] < M) & (rn[None, :] < N))


@triton.jit
def splitk_reduce(ws_ptr, c_ptr, MN, SPLIT_K: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < MN
    total = tl.zeros((BLOCK,), dtype=tl.float32)
    for s in tl.static_range(SPLIT_K):
        total += tl.load(ws_ptr + s * MN + offs, mask=mask, other=0.0)
    tl.store(c_ptr + offs, total.to(c_ptr.dtype.element_ty), mask=mask)


def run(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> None:
    M, K = a.shape
    N = b.shape[1]
    SPLIT_K = 4 if K >= 256 else 2
    BLOCK_M, BLOCK_N, BLOCK_K = 32, 32, 32
    k_per_split = triton.cdiv(triton.cdiv(K, SPLIT_K), BLOCK_K) * BLOCK_K
    workspace = torch.empty((SPLIT_K, M, N), dtype=torch.float32, device=a.device)
    grid = (triton.cdiv(M, BLOCK_M), triton.cdiv(N, BLOCK_N), SPLIT_K)
    splitk_partial[grid](a, b, workspace, M, N, K, k_per_split,
                         a.stride(0), a.stride(1), b.stride(0), b.stride(1),
                         BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K)
    c2 = c.view(-1)  # c is contiguous [M, N]
    BLOCK = 1024
    splitk_reduce[(triton.cdiv(M * N, BLOCK),)](workspace, c2, M * N, SPLIT_K=SPLIT_K, BLOCK=BLOCK)
