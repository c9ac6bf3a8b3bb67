"""rmsnorm/persistent: min(M, SM count x PROGRAMS_PER_SM) programs load the weight once, then stride
over rows (pid, pid + grid, ...), normalizing each whole row in one block."""

import torch
import triton
import triton.language as tl

from ksearch.propose.templates.kernels.launch import launch_warps, num_sms
from ksearch.propose.templates.kernels.rmsnorm_parts import load_row, rmsnorm_entries

# knobs (set by the renderer)
PROGRAMS_PER_SM = 2
num_warps = "auto"
EVICT = "none"
# the task's eps (set by the renderer)
eps = 1e-6


@triton.jit
def rmsnorm_persistent_kernel(
    x_ptr, r_ptr, w_ptr, out_ptr, rout_ptr, M, N, stride_x, stride_r, stride_o, stride_ro, eps,
    FUSED: tl.constexpr, STREAM: tl.constexpr, KEEP: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    cols = tl.arange(0, BLOCK_N)
    mask = cols < N
    w = tl.load(w_ptr + cols, mask=mask, other=0.0, eviction_policy=KEEP).to(tl.float32)
    for r in range(tl.program_id(0), M, tl.num_programs(0)):
        row = tl.cast(r, tl.int64)
        x = load_row(x_ptr, r_ptr, rout_ptr, row, cols, mask, stride_x, stride_r, stride_ro, FUSED, STREAM)
        rstd = tl.rsqrt(tl.sum(x * x, axis=0) / N + eps)
        tl.store(out_ptr + row * stride_o + cols, (x * rstd * w).to(out_ptr.dtype.element_ty), mask=mask)


def launch(x: torch.Tensor, args: tuple, meta: dict) -> None:
    M, N = x.shape
    block_n = triton.next_power_of_2(N)
    grid = (max(1, min(M, num_sms(x) * PROGRAMS_PER_SM)),)
    rmsnorm_persistent_kernel[grid](
        *args, **meta, BLOCK_N=block_n, num_warps=launch_warps(num_warps, block_n)
    )


rmsnorm, fused_add_rmsnorm = rmsnorm_entries(launch, eps, EVICT)
