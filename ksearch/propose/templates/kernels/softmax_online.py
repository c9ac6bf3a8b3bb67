"""softmax/online: one program per row streams it in BLOCK_N chunks keeping a running max and a
rescaled running sum (block-wide scalars or per-lane stats), then one pass writes exp(x - max) / sum."""

import torch
import triton
import triton.language as tl

from ksearch.propose.templates.kernels.softmax_parts import write_normalized

# knobs (set by the renderer)
BLOCK_N = 2048
num_warps = 8
STATS = "block"


@triton.jit
def block_stats(src, N, BLOCK_N: tl.constexpr):
    # one max and one sum reduction per chunk
    m_i = -float("inf")
    l_i = 0.0
    for start in range(0, N, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        v = tl.load(src + cols, mask=cols < N, other=-float("inf")).to(tl.float32)
        # every chunk holds at least one real element, so m_new is finite
        m_new = tl.maximum(m_i, tl.max(v, axis=0))
        l_i = l_i * tl.exp(m_i - m_new) + tl.sum(tl.exp(v - m_new), axis=0)
        m_i = m_new
    return m_i, 1.0 / l_i


@triton.jit
def lane_stats(src, N, BLOCK_N: tl.constexpr):
    # per-lane running stats: no cross-warp reduction inside the loop, one at the end
    m_i = tl.full([BLOCK_N], -float("inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_N], dtype=tl.float32)
    for start in range(0, N, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        v = tl.load(src + cols, mask=cols < N, other=-float("inf")).to(tl.float32)
        m_new = tl.maximum(m_i, v)
        # lanes that have only seen padding keep -inf: guard the rescale against inf - inf
        seen = m_new > -float("inf")
        alpha = tl.where(seen, tl.exp(m_i - m_new), 0.0)
        p = tl.where(seen, tl.exp(v - m_new), 0.0)
        l_i = l_i * alpha + p
        m_i = m_new
    row_max = tl.max(m_i, axis=0)
    scale = tl.where(m_i > -float("inf"), tl.exp(m_i - row_max), 0.0)
    return row_max, 1.0 / tl.sum(l_i * scale, axis=0)


@triton.jit
def softmax_online_kernel(
    x_ptr, out_ptr, N, stride_x, stride_o, BLOCK_N: tl.constexpr, LANE_STATS: tl.constexpr
):
    row = tl.program_id(0).to(tl.int64)
    src = x_ptr + row * stride_x
    if LANE_STATS:
        row_max, inv = lane_stats(src, N, BLOCK_N)
    else:
        row_max, inv = block_stats(src, N, BLOCK_N)
    write_normalized(src, out_ptr + row * stride_o, N, row_max, inv, BLOCK_N)


def softmax(x: torch.Tensor, out: torch.Tensor) -> None:
    M, N = x.shape
    softmax_online_kernel[(M,)](
        x, out, N, x.stride(0), out.stride(0),
        BLOCK_N=min(BLOCK_N, triton.next_power_of_2(N)), LANE_STATS=STATS == "lane", num_warps=num_warps,
    )  # fmt: skip
