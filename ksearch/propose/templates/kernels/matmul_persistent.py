"""matmul/persistent: min(tiles, SMs x PROGRAMS_PER_SM) programs walk the output tiles pid, pid + grid,
... in the GROUP_M-swizzled order, running the full K loop for each and storing the tile."""

import torch
import triton
import triton.language as tl

from ksearch.propose.templates.kernels.launch import num_sms
from ksearch.propose.templates.kernels.matmul_parts import grouped_tile, matmul_tile

# knobs (set by the renderer)
BLOCK_M = 128
BLOCK_N = 128
BLOCK_K = 64
GROUP_M = 8
num_stages = 4
num_warps = 8
PROGRAMS_PER_SM = 1


@triton.jit
def matmul_persistent_kernel(
    a_ptr, b_ptr, c_ptr, M, N, K, stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    EVEN_K: tl.constexpr,
):  # fmt: skip
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    num_tiles = num_pid_m * num_pid_n
    for tile in range(tl.program_id(0), num_tiles, tl.num_programs(0)):
        pid_m, pid_n = grouped_tile(tile, num_pid_m, num_pid_n, GROUP_M)
        matmul_tile(
            a_ptr, b_ptr, c_ptr, M, N, K, stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
            pid_m, pid_n, BLOCK_M, BLOCK_N, BLOCK_K, EVEN_K,
        )  # fmt: skip


def matmul(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> None:
    M, K = a.shape
    N = b.shape[1]
    num_tiles = triton.cdiv(M, BLOCK_M) * triton.cdiv(N, BLOCK_N)
    grid = (max(1, min(num_tiles, num_sms(a) * PROGRAMS_PER_SM)),)
    matmul_persistent_kernel[grid](
        a, b, c, M, N, K, a.stride(0), a.stride(1), b.stride(0), b.stride(1), c.stride(0), c.stride(1),
        BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, GROUP_M=GROUP_M, EVEN_K=K % BLOCK_K == 0,
        num_warps=num_warps, num_stages=num_stages,
    )  # fmt: skip
