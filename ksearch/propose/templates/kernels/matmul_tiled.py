"""matmul/tiled: one BLOCK_M x BLOCK_N tile per program in grouped (L2-swizzled) order, each program
looping over K in BLOCK_K steps with tl.dot into an fp32 accumulator."""

import torch
import triton
import triton.language as tl

from ksearch.propose.templates.kernels.matmul_parts import grouped_tile, matmul_tile

# knobs (set by the renderer)
BLOCK_M = 128
BLOCK_N = 256
BLOCK_K = 64
GROUP_M = 8
num_stages = 3
num_warps = 8
# AMD launch options (set by matmul/tiled_mfma; None: not passed, the CUDA compiler takes none of them)
matrix_instr_nonkdim = None
waves_per_eu = None


@triton.jit
def matmul_kernel(
    a_ptr, b_ptr, c_ptr, M, N, K, stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    EVEN_K: tl.constexpr,
):  # fmt: skip
    pid_m, pid_n = grouped_tile(tl.program_id(0), tl.cdiv(M, BLOCK_M), tl.cdiv(N, BLOCK_N), GROUP_M)
    matmul_tile(
        a_ptr, b_ptr, c_ptr, M, N, K, stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn, pid_m, pid_n,
        BLOCK_M, BLOCK_N, BLOCK_K, EVEN_K,
    )  # fmt: skip


def matmul(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> None:
    M, K = a.shape
    N = b.shape[1]
    num_tiles = triton.cdiv(M, BLOCK_M) * triton.cdiv(N, BLOCK_N)
    amd = {"matrix_instr_nonkdim": matrix_instr_nonkdim, "waves_per_eu": waves_per_eu}
    matmul_kernel[(num_tiles,)](
        a, b, c, M, N, K, a.stride(0), a.stride(1), b.stride(0), b.stride(1), c.stride(0), c.stride(1),
        BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, GROUP_M=GROUP_M, EVEN_K=K % BLOCK_K == 0,
        num_warps=num_warps, num_stages=num_stages, **{k: v for k, v in amd.items() if v is not None},
    )  # fmt: skip
