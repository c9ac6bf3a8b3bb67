"""NaN-producing kernel: online softmax without the -inf guard.

Lanes past the end of a short row start at max = -inf and never see a value, so the rescale
exp(-inf - -inf) is NaN, and the NaN reaches the denominator of every row whose length is not a
multiple of BLOCK (N = 1000 here; N = 8 and N = 256 come out right).

The harness must tell a NaN the kernel wrote from its own NaN poison (a canonical NaN has the
same bits as torch's `fill_(nan)`): poison with a non-canonical NaN payload, or run a second time
with a finite poison.

layer: dynamic (NaN where the reference is finite)
expect: nonfinite
task: softmax
"""

import torch
import triton
import triton.language as tl


@triton.jit
def online_softmax(x_ptr, out_ptr, N, stride_x, stride_o, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    m_i = tl.full([BLOCK], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(0, N, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        v = tl.load(x_ptr + row * stride_x + offs, mask=offs < N, other=float("-inf")).to(tl.float32)
        m_new = tl.maximum(m_i, v)
        l_i = l_i * tl.exp(m_i - m_new) + tl.exp(v - m_new)
        m_i = m_new
    m_row = tl.max(m_i, axis=0)
    denom = tl.sum(l_i * tl.exp(m_i - m_row), axis=0)
    for start in range(0, N, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        mask = offs < N
        v = tl.load(x_ptr + row * stride_x + offs, mask=mask, other=float("-inf")).to(tl.float32)
        tl.store(out_ptr + row * stride_o + offs, (tl.exp(v - m_row) / denom).to(out_ptr.dtype.element_ty), mask=mask)


def run(x: torch.Tensor, out: torch.Tensor) -> None:
    M, N = x.shape
    online_softmax[(M,)](x, out, N, x.stride(0), out.stride(0), BLOCK=min(1024, triton.next_power_of_2(N)))
