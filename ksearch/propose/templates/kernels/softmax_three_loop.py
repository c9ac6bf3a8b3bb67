"""softmax/three_loop: one program per row, three BLOCK_N-chunked passes: per-lane max, per-lane sum of
exp(x - max), then exp(x - max) * (1 / sum) stored."""

import torch
import triton
import triton.language as tl

from ksearch.propose.templates.kernels.softmax_parts import write_normalized

# knobs (set by the renderer)
BLOCK_N = 2048
num_warps = 8


@triton.jit
def softmax_three_loop_kernel(x_ptr, out_ptr, N, stride_x, stride_o, BLOCK_N: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    src = x_ptr + row * stride_x
    mx = tl.full([BLOCK_N], -float("inf"), dtype=tl.float32)
    for start in range(0, N, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        mx = tl.maximum(mx, tl.load(src + cols, mask=cols < N, other=-float("inf")).to(tl.float32))
    row_max = tl.max(mx, axis=0)
    acc = tl.zeros([BLOCK_N], dtype=tl.float32)
    for start in range(0, N, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        v = tl.load(src + cols, mask=cols < N, other=-float("inf")).to(tl.float32)
        acc += tl.exp(v - row_max)
    write_normalized(src, out_ptr + row * stride_o, N, row_max, 1.0 / tl.sum(acc, axis=0), BLOCK_N)


def softmax(x: torch.Tensor, out: torch.Tensor) -> None:
    M, N = x.shape
    softmax_three_loop_kernel[(M,)](
        x,
        out,
        N,
        x.stride(0),
        out.stride(0),
        BLOCK_N=min(BLOCK_N, triton.next_power_of_2(N)),
        num_warps=num_warps,
    )
