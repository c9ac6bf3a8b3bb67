"""matmul/tma: the grouped tiled GEMM with A, B and C accessed through host-side TMA tensor
descriptors: one bulk tensor copy per operand and K step (zero-filled past the edges), a clipped bulk
store; no pointer arithmetic, masks or modulo in the kernel."""

import torch
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

from ksearch.propose.templates.kernels.matmul_parts import grouped_tile, tma_tile

# knobs (set by the renderer)
BLOCK_M = 128
BLOCK_N = 256
BLOCK_K = 64
GROUP_M = 8
num_stages = 3
num_warps = 8


@triton.jit
def matmul_tma_kernel(
    a_desc, b_desc, c_desc, M, N, K,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):  # fmt: skip
    pid_m, pid_n = grouped_tile(tl.program_id(0), tl.cdiv(M, BLOCK_M), tl.cdiv(N, BLOCK_N), GROUP_M)
    tma_tile(a_desc, b_desc, c_desc, K, pid_m, pid_n, BLOCK_M, BLOCK_N, BLOCK_K)


def matmul(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> None:
    M, K = a.shape
    N = b.shape[1]
    num_tiles = triton.cdiv(M, BLOCK_M) * triton.cdiv(N, BLOCK_N)
    # host-side TMA descriptors: row strides must be multiples of 16 bytes (true for every suite shape)
    a_desc = TensorDescriptor.from_tensor(a, [BLOCK_M, BLOCK_K])
    b_desc = TensorDescriptor.from_tensor(b, [BLOCK_K, BLOCK_N])
    c_desc = TensorDescriptor.from_tensor(c, [BLOCK_M, BLOCK_N])
    matmul_tma_kernel[(num_tiles,)](
        a_desc, b_desc, c_desc, M, N, K,
        BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, GROUP_M=GROUP_M,
        num_warps=num_warps, num_stages=num_stages,
    )  # fmt: skip
