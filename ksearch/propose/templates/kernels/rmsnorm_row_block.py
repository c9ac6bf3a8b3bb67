"""rmsnorm/row_block: one row per program, the whole row in one power-of-two block (masked tail)."""

import torch
import triton
import triton.language as tl

from ksearch.propose.templates.kernels.launch import eviction_policies, launch_warps
from ksearch.propose.templates.kernels.rmsnorm_parts import normalize_whole_row

# knobs (set by the renderer)
num_warps = "auto"
EVICT = "none"
# the task's eps (set by the renderer)
eps = 1e-6


@triton.jit
def rmsnorm_row_kernel(
    x_ptr, r_ptr, w_ptr, out_ptr, rout_ptr, M, N, stride_x, stride_r, stride_o, stride_ro, eps,
    FUSED: tl.constexpr, STREAM: tl.constexpr, KEEP: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    normalize_whole_row(
        x_ptr, r_ptr, w_ptr, out_ptr, rout_ptr, N, stride_x, stride_r, stride_o, stride_ro, eps,
        FUSED, BLOCK_N, STREAM, KEEP,
    )  # fmt: skip


def launch(
    x: torch.Tensor,
    residual: torch.Tensor | None,
    weight: torch.Tensor,
    out: torch.Tensor,
    residual_out: torch.Tensor | None,
) -> None:
    M, N = x.shape
    fused = residual is not None
    stride_r = residual.stride(0) if residual is not None else 0
    stride_ro = residual_out.stride(0) if residual_out is not None else 0
    stream, keep = eviction_policies(EVICT)
    block_n = triton.next_power_of_2(N)
    rmsnorm_row_kernel[(M,)](
        x, residual, weight, out, residual_out, M, N,
        x.stride(0), stride_r, out.stride(0), stride_ro,
        eps, FUSED=fused, STREAM=stream, KEEP=keep,
        BLOCK_N=block_n, num_warps=launch_warps(num_warps, block_n),
    )  # fmt: skip


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, out: torch.Tensor) -> None:
    launch(x, None, weight, out, None)


def fused_add_rmsnorm(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor,
    out: torch.Tensor,
    residual_out: torch.Tensor,
) -> None:
    launch(x, residual, weight, out, residual_out)
