"""Softmax with a one-pass online max/sum (running max, rescaled running sum), then a write pass.

task: softmax
"""

import torch
import triton
import triton.language as tl


@triton.jit
def online_softmax_kernel(x_ptr, out_ptr, N, stride_x, stride_o, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    x_row = x_ptr + row * stride_x
    m_i = tl.full([BLOCK], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(0, N, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        v = tl.load(x_row + offs, mask=offs < N, other=float("-inf")).to(tl.float32)
        m_new = tl.maximum(m_i, v)
        # lanes that have seen nothing yet keep -inf; guard the rescale against inf - inf
        alpha = tl.where(m_new == float("-inf"), 0.0, tl.exp(m_i - m_new))
        p = tl.where(m_new == float("-inf"), 0.0, tl.exp(v - m_new))
        l_i = l_i * alpha + p
        m_i = m_new
    m_row = tl.max(m_i, axis=0)
    scale = tl.where(m_i == float("-inf"), 0.0, tl.exp(m_i - m_row))
    denom = tl.sum(l_i * scale, axis=0)
    for start in range(0, N, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        mask = offs < N
        v = tl.load(x_row + offs, mask=mask, other=float("-inf")).to(tl.float32)
        y = tl.exp(v - m_row) / denom
        tl.store(out_ptr + row * stride_o + offs, y.to(out_ptr.dtype.element_ty), mask=mask)


def run(x: torch.Tensor, out: torch.Tensor) -> None:
    M, N = x.shape
    BLOCK = min(1024, triton.next_power_of_2(N))
    online_softmax_kernel[(M,)](x, out, N, x.stride(0), out.stride(0), BLOCK=BLOCK)
