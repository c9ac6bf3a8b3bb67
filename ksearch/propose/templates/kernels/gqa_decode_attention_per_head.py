"""gqa_decode_attention/per_head: one program per (batch, query head) streams its KV head's cache in
BLOCK_N rows, scoring with a broadcast multiply-and-sum (no tensor cores), online softmax in exp2."""

import torch
import triton
import triton.language as tl

from ksearch.propose.templates.kernels.gqa_decode_attention_parts import (
    decode_shapes,
    exp2_scale,
    qkv_strides,
)

# knobs (set by the renderer)
BLOCK_N = 64
num_warps = 4


@triton.jit
def gqa_per_head_kernel(
    q_ptr, k_ptr, v_ptr, o_ptr, L, GROUP, qk_scale, sq_b, sq_h, sk_b, sk_h, sk_l, sv_b, sv_h, sv_l, so_b, so_h,
    D: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    b = tl.program_id(0)
    h = tl.program_id(1)
    kvh = h // GROUP
    d = tl.arange(0, D)
    q = tl.load(q_ptr + b * sq_b + h * sq_h + d).to(tl.float32) * qk_scale
    k_base = k_ptr + b * sk_b + kvh * sk_h
    v_base = v_ptr + b * sv_b + kvh * sv_h
    m_i = -float("inf")
    l_i = 0.0
    acc = tl.zeros([D], dtype=tl.float32)
    for start in range(0, L, BLOCK_N):
        ls = start + tl.arange(0, BLOCK_N)
        lmask = ls < L
        k = tl.load(k_base + ls[:, None] * sk_l + d[None, :], mask=lmask[:, None], other=0.0).to(tl.float32)
        s = tl.where(lmask, tl.sum(k * q[None, :], axis=1), -float("inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=0))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new)
        v = tl.load(v_base + ls[:, None] * sv_l + d[None, :], mask=lmask[:, None], other=0.0).to(tl.float32)
        acc = acc * alpha + tl.sum(p[:, None] * v, axis=0)
        l_i = l_i * alpha + tl.sum(p, axis=0)
        m_i = m_new
    tl.store(o_ptr + b * so_b + h * so_h + d, (acc / l_i).to(o_ptr.dtype.element_ty))


def gqa_decode_attention(
    q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, o: torch.Tensor
) -> None:
    B, Hq, D, Hkv, L, GROUP = decode_shapes(q, k_cache)
    gqa_per_head_kernel[(B, Hq)](
        q, k_cache, v_cache, o, L, GROUP, exp2_scale(D),
        *qkv_strides(q, k_cache, v_cache), o.stride(0), o.stride(1),
        D=D, BLOCK_N=min(BLOCK_N, triton.next_power_of_2(L)), num_warps=num_warps,
    )  # fmt: skip
