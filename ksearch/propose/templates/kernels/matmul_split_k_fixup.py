"""matmul/split_k_fixup: split-K in one launch. A 3-D grid (M tiles, N tiles, SPLIT_K); each program
reduces one K slice of its tile into an fp32 partial and stores it in the tile's slot of a workspace,
then counts itself in with an atomic on the tile's counter. The program that arrives last sums the
tile's partials in split order (the result does not depend on which program that is) and writes c:
no second kernel, only a zeroed counter per tile."""

import torch
import triton
import triton.language as tl

from ksearch.propose.templates.kernels.launch import k_splits, num_sms
from ksearch.propose.templates.kernels.matmul_parts import k_slice

# knobs (set by the renderer)
BLOCK_M = 64
BLOCK_N = 128
BLOCK_K = 64
SPLIT_K = 4
num_stages = 3
num_warps = 8


@triton.jit
def matmul_splitk_fixup_kernel(
    a_ptr, b_ptr, c_ptr, ws_ptr, count_ptr, M, N, K, K_PER_SPLIT,
    stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, SPLIT_K: tl.constexpr,
    EVEN_K: tl.constexpr,
):  # fmt: skip
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    split = tl.program_id(2)
    acc = k_slice(
        a_ptr, b_ptr, M, N, K, K_PER_SPLIT, stride_am, stride_ak, stride_bk, stride_bn, pid_m, pid_n, split,
        BLOCK_M, BLOCK_N, BLOCK_K, EVEN_K,
    )  # fmt: skip
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rows = offs_m[:, None] < M  # rows past M are neither stored nor summed (M=16 in a 64-row tile)
    tile = pid_m * tl.num_programs(1) + pid_n
    slots = ws_ptr + tile * SPLIT_K * BLOCK_M * BLOCK_N  # the tile's SPLIT_K partials, one after another
    offs = tl.arange(0, BLOCK_M)[:, None] * BLOCK_N + tl.arange(0, BLOCK_N)[None, :]
    tl.store(slots + split * BLOCK_M * BLOCK_N + offs, acc, mask=rows)
    tl.debug_barrier()  # every thread's share of the partial is stored before the program counts itself in
    # release: the partial is visible to whoever sees the count; acquire: the last one sees all partials
    arrived = tl.atomic_add(count_ptr + tile, 1, sem="acq_rel", scope="gpu")
    if arrived == SPLIT_K - 1:
        tl.debug_barrier()
        # .cg: from L2, where the other SMs' partials are, never from this SM's (incoherent) L1
        total = tl.load(slots + offs, mask=rows, other=0.0, cache_modifier=".cg")
        for s in tl.static_range(1, SPLIT_K):
            total += tl.load(slots + s * BLOCK_M * BLOCK_N + offs, mask=rows, other=0.0, cache_modifier=".cg")
        c_ptrs = c_ptr + offs_m[:, None] * stride_cm + offs_n[None, :] * stride_cn
        tl.store(c_ptrs, total.to(c_ptr.dtype.element_ty), mask=rows & (offs_n[None, :] < N))


def matmul(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> None:
    M, K = a.shape
    N = b.shape[1]
    tiles = triton.cdiv(M, BLOCK_M) * triton.cdiv(N, BLOCK_N)
    split_k = k_splits(SPLIT_K, tiles, triton.cdiv(K, BLOCK_K), num_sms(a))
    k_per_split = triton.cdiv(triton.cdiv(K, split_k), BLOCK_K) * BLOCK_K
    grid = (triton.cdiv(M, BLOCK_M), triton.cdiv(N, BLOCK_N), split_k)
    ws = torch.empty((tiles, split_k, BLOCK_M, BLOCK_N), dtype=torch.float32, device=a.device)
    counts = torch.zeros((tiles,), dtype=torch.int32, device=a.device)
    matmul_splitk_fixup_kernel[grid](
        a, b, c, ws, counts, M, N, K, k_per_split,
        a.stride(0), a.stride(1), b.stride(0), b.stride(1), c.stride(0), c.stride(1),
        BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, SPLIT_K=split_k,
        EVEN_K=K % (BLOCK_K * split_k) == 0, num_warps=num_warps, num_stages=num_stages,
    )  # fmt: skip
