"""rmsnorm/chunked: one row per program streamed in BLOCK_N chunks, two passes: the sum of squares
(fused: also storing residual_out), then a re-read of each chunk and the normalized store."""

import torch
import triton
import triton.language as tl

from ksearch.propose.templates.kernels.rmsnorm_parts import load_row, rmsnorm_entries

# knobs (set by the renderer)
BLOCK_N = 1024
num_warps = 4
EVICT = "none"
# the task's eps (set by the renderer)
eps = 1e-6


@triton.jit
def rmsnorm_chunked_kernel(
    x_ptr, r_ptr, w_ptr, out_ptr, rout_ptr, M, N, stride_x, stride_r, stride_o, stride_ro, eps,
    FUSED: tl.constexpr, STREAM: tl.constexpr, KEEP: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    row = tl.program_id(0).to(tl.int64)
    acc = tl.zeros([BLOCK_N], dtype=tl.float32)
    for start in range(0, N, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        mask = cols < N
        x = load_row(x_ptr, r_ptr, rout_ptr, row, cols, mask, stride_x, stride_r, stride_ro, FUSED, STREAM)
        acc += x * x
    rstd = tl.rsqrt(tl.sum(acc, axis=0) / N + eps)
    if FUSED:
        tl.debug_barrier()  # the second pass reads residual_out written by other threads
    for start in range(0, N, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        mask = cols < N
        # the second pass reloads x, or the residual_out this program stored in its first pass
        if FUSED:
            x = tl.load(rout_ptr + row * stride_ro + cols, mask=mask, other=0.0).to(tl.float32)
        else:
            x = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
        w = tl.load(w_ptr + cols, mask=mask, other=0.0, eviction_policy=KEEP).to(tl.float32)
        tl.store(out_ptr + row * stride_o + cols, (x * rstd * w).to(out_ptr.dtype.element_ty), mask=mask)


def launch(x: torch.Tensor, args: tuple, meta: dict) -> None:
    block_n = min(BLOCK_N, triton.next_power_of_2(x.shape[1]))
    rmsnorm_chunked_kernel[(x.shape[0],)](*args, **meta, BLOCK_N=block_n, num_warps=num_warps)


rmsnorm, fused_add_rmsnorm = rmsnorm_entries(launch, eps, EVICT)
