"""matmul/persistent_tma: min(tiles, SMs x PROGRAMS_PER_SM) programs walk the output tiles in the
GROUP_M-swizzled order, each tile's K loop fed by TMA tensor descriptors; WARP_SPECIALIZE asks Triton
to split the tile loop into producer (copy) and consumer (MMA) warps; FLATTEN asks it to flatten the
tile and K loops into one software-pipelined loop, so the next tile's loads overlap this tile's
epilogue."""

import torch
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

from ksearch.propose.templates.kernels.launch import num_sms
from ksearch.propose.templates.kernels.matmul_parts import grouped_tile, tma_tile

# knobs (set by the renderer)
BLOCK_M = 128
BLOCK_N = 256
BLOCK_K = 64
GROUP_M = 8
num_stages = 3
num_warps = 8
PROGRAMS_PER_SM = 1
WARP_SPECIALIZE = False
FLATTEN = False


@triton.jit
def matmul_persistent_tma_kernel(
    a_desc, b_desc, c_desc, M, N, K,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    WARP_SPECIALIZE: tl.constexpr, FLATTEN: tl.constexpr,
):  # fmt: skip
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    num_tiles = num_pid_m * num_pid_n
    for tile in tl.range(  # (the range must be written in the for statement itself)
        tl.program_id(0), num_tiles, tl.num_programs(0), flatten=FLATTEN, warp_specialize=WARP_SPECIALIZE
    ):
        pid_m, pid_n = grouped_tile(tile, num_pid_m, num_pid_n, GROUP_M)
        tma_tile(a_desc, b_desc, c_desc, K, pid_m, pid_n, BLOCK_M, BLOCK_N, BLOCK_K)


def matmul(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> None:
    M, K = a.shape
    N = b.shape[1]
    num_tiles = triton.cdiv(M, BLOCK_M) * triton.cdiv(N, BLOCK_N)
    grid = (max(1, min(num_tiles, num_sms(a) * PROGRAMS_PER_SM)),)
    # host-side TMA descriptors: row strides must be multiples of 16 bytes (true for every suite shape)
    a_desc = TensorDescriptor.from_tensor(a, [BLOCK_M, BLOCK_K])
    b_desc = TensorDescriptor.from_tensor(b, [BLOCK_K, BLOCK_N])
    c_desc = TensorDescriptor.from_tensor(c, [BLOCK_M, BLOCK_N])
    matmul_persistent_tma_kernel[grid](
        a_desc, b_desc, c_desc, M, N, K,
        BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, GROUP_M=GROUP_M, WARP_SPECIALIZE=WARP_SPECIALIZE,
        FLATTEN=FLATTEN, num_warps=num_warps, num_stages=num_stages,
    )  # fmt: skip
