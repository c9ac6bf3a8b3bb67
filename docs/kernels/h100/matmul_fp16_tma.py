# ksearch template: matmul/tma
# task: matmul
# knobs: {"BLOCK_K": 64, "BLOCK_M": 128, "BLOCK_N": 256, "GROUP_M": 16, "num_stages": 3, "num_warps": 8}
"""matmul/tma: the grouped tiled GEMM with A, B and C accessed through host-side TMA tensor
descriptors: one bulk tensor copy per operand and K step (zero-filled past the edges), a clipped bulk
store; no pointer arithmetic, masks or modulo in the kernel."""

import torch
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor


@triton.jit
def grouped_tile(tile, num_pid_m, num_pid_n, GROUP_M: tl.constexpr):
    # GROUP_M consecutive tiles walk down a column band of tiles: they share B tiles and a few A row
    # panels in L2
    width = GROUP_M * num_pid_n
    group_id = tile // width
    first_m = group_id * GROUP_M
    group_rows = tl.minimum(num_pid_m - first_m, GROUP_M)
    pid_m = first_m + (tile % width) % group_rows
    pid_n = (tile % width) // group_rows
    return pid_m, pid_n


# knobs (set by the renderer)
BLOCK_M = 128
BLOCK_N = 256
BLOCK_K = 64
GROUP_M = 16
num_stages = 3
num_warps = 8


@triton.jit
def matmul_tma_kernel(
    a_desc, b_desc, c_desc, M, N, K,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):  # fmt: skip
    pid_m, pid_n = grouped_tile(tl.program_id(0), tl.cdiv(M, BLOCK_M), tl.cdiv(N, BLOCK_N), GROUP_M)
    off_m = pid_m * BLOCK_M
    off_n = pid_n * BLOCK_N
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    # the descriptors zero-fill out-of-bounds rows and columns (the ragged K tail included)
    for kt in range(0, tl.cdiv(K, BLOCK_K)):
        a = a_desc.load([off_m, kt * BLOCK_K])
        b = b_desc.load([kt * BLOCK_K, off_n])
        acc = tl.dot(a, b, acc)
    # and clip the store to the tensor's bounds
    c_desc.store([off_m, off_n], acc.to(c_desc.dtype))


def run(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> None:
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
