"""rmsnorm/row_block: one row per program, the whole row in one power-of-two block (masked tail)."""

import torch
import triton

from ksearch.propose.templates.kernels.launch import launch_warps
from ksearch.propose.templates.kernels.rmsnorm_parts import rmsnorm_entries, rmsnorm_whole_row_kernel

# knobs (set by the renderer)
num_warps = "auto"
EVICT = "none"
# the task's eps (set by the renderer)
eps = 1e-6


def launch(x: torch.Tensor, args: tuple, meta: dict) -> None:
    block_n = triton.next_power_of_2(x.shape[1])
    rmsnorm_whole_row_kernel[(x.shape[0],)](
        *args, **meta, BLOCK_N=block_n, num_warps=launch_warps(num_warps, block_n)
    )


rmsnorm, fused_add_rmsnorm = rmsnorm_entries(launch, eps, EVICT)
