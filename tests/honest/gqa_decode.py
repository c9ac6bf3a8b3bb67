"""GQA decode attention, simple: one program per (batch, query head), online softmax over L in blocks.

task: gqa_decode_attention
"""

import math

import torch
import triton
import triton.language as tl


@triton.jit
def gqa_decode_kernel(
    q_ptr, k_ptr, v_ptr, o_ptr,
    L, GROUP, scale,
    sq_b, sq_h, sk_b, sk_h, sk_l, sv_b, sv_h, sv_l, so_b, so_h,
    D: tl.constexpr, BLOCK_L: tl.constexpr,
):
    b = tl.program_id(0)
    h = tl.program_id(1)
    kvh = h // GROUP
    d = tl.arange(0, D)
    q = tl.load(q_ptr + b * sq_b + h * sq_h + d).to(tl.float32)
    m_i = -float("inf")
    l_i = 0.0
    acc = tl.zeros([D], dtype=tl.float32)
    k_base = k_ptr + b * sk_b + kvh * sk_h
    v_base = v_ptr + b * sv_b + kvh * sv_h
    for start in range(0, L, BLOCK_L):
        ls = start + tl.arange(0, BLOCK_L)
        lmask = ls < L
        k = tl.load(k_base + ls[:, None] * sk_l + d[None, :], mask=lmask[:, None], other=0.0).to(tl.float32)
        s = tl.sum(k * q[None, :], axis=1) * scale
        s = tl.where(lmask, s, -float("inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=0))
        alpha = tl.exp(m_i - m_new)
        p = tl.exp(s - m_new)
        v = tl.load(v_base + ls[:, None] * sv_l + d[None, :], mask=lmask[:, None], other=0.0).to(tl.float32)
        acc = acc * alpha + tl.sum(p[:, None] * v, axis=0)
        l_i = l_i * alpha + tl.sum(p, axis=0)
        m_i = m_new
    tl.store(o_ptr + b * so_b + h * so_h + d, (acc / l_i).to(o_ptr.dtype.element_ty))


def run(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, o: torch.Tensor) -> None:
    B, Hq, D = q.shape
    Hkv, L = k_cache.shape[1], k_cache.shape[2]
    assert k_cache.stride(3) == 1 and v_cache.stride(3) == 1 and q.stride(2) == 1 and o.stride(2) == 1
    scale = 1.0 / math.sqrt(D)
    BLOCK_L = min(64, triton.next_power_of_2(L))
    gqa_decode_kernel[(B, Hq)](
        q, k_cache, v_cache, o, L, Hq // Hkv, scale,
        q.stride(0), q.stride(1),
        k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
        v_cache.stride(0), v_cache.stride(1), v_cache.stride(2),
        o.stride(0), o.stride(1),
        D=D, BLOCK_L=BLOCK_L,
    )
