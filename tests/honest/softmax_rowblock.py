"""Softmax, row-blocked: each program owns BLOCK_M whole rows held in registers.

task: softmax
"""

import torch
import triton
import triton.language as tl


@triton.heuristics({"BLOCK_M": lambda args: max(1, min(8, 4096 // triton.next_power_of_2(args["N"])))})
@triton.jit
def softmax_rows(x_ptr, out_ptr, M, N, stride_xm, stride_om,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_N)
    mask = (rows[:, None] < M) & (cols[None, :] < N)
    x = tl.load(x_ptr + rows[:, None] * stride_xm + cols[None, :], mask=mask, other=-float("inf"))
    x = x.to(tl.float32)
    row_max = tl.max(x, axis=1)
    # fully masked rows (past M) have max -inf: shift by 0 instead so they stay finite
    row_max = tl.where(rows < M, row_max, 0.0)
    e = tl.exp(x - row_max[:, None])
    e = tl.where(mask, e, 0.0)
    denom = tl.sum(e, axis=1)
    denom = tl.where(rows < M, denom, 1.0)
    y = e / denom[:, None]
    tl.store(out_ptr + rows[:, None] * stride_om + cols[None, :], y.to(out_ptr.dtype.element_ty), mask=mask)


def run(x: torch.Tensor, out: torch.Tensor) -> None:
    M, N = x.shape
    BLOCK_N = triton.next_power_of_2(N)

    def grid(meta):
        return (triton.cdiv(M, meta["BLOCK_M"]),)

    softmax_rows[grid](x, out, M, N, x.stride(0), out.stride(0), BLOCK_N=BLOCK_N)
