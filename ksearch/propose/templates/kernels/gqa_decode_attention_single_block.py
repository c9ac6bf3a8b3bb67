"""gqa_decode_attention/single_block (risky): the grouped mapping without the online softmax: one
[BLOCK_G, BLOCK_L] score tile with BLOCK_L fixed ahead of time, an exact max and sum, one P @ V; keys
past BLOCK_L are ignored."""

import torch
import triton
import triton.language as tl

from ksearch.propose.templates.kernels.gqa_decode_attention_parts import (
    decode_shapes,
    exp2_scale,
    qkv_strides,
)

# knobs (set by the renderer)
BLOCK_L = 128
num_warps = 4


@triton.jit
def gqa_single_block_kernel(
    q_ptr, k_ptr, v_ptr, o_ptr, L, GROUP, Hkv, qk_scale, sq_b, sq_h, sk_b, sk_h, sk_l, sv_b, sv_h, sv_l, so_b, so_h,
    D: tl.constexpr, BLOCK_G: tl.constexpr, BLOCK_L: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    b = pid // Hkv
    kvh = pid % Hkv
    g = tl.arange(0, BLOCK_G)
    d = tl.arange(0, D)
    gmask = g < GROUP
    heads = kvh * GROUP + g
    q = tl.load(q_ptr + b * sq_b + heads[:, None] * sq_h + d[None, :], mask=gmask[:, None], other=0.0)
    ls = tl.arange(0, BLOCK_L)
    lmask = ls < L
    k = tl.load(
        k_ptr + b * sk_b + kvh * sk_h + ls[:, None] * sk_l + d[None, :], mask=lmask[:, None], other=0.0
    )
    s = tl.where(lmask[None, :], tl.dot(q, tl.trans(k)) * qk_scale, -float("inf"))
    p = tl.exp2(s - tl.max(s, axis=1)[:, None])
    v = tl.load(
        v_ptr + b * sv_b + kvh * sv_h + ls[:, None] * sv_l + d[None, :], mask=lmask[:, None], other=0.0
    )
    out = tl.dot(p.to(v.dtype), v) / tl.sum(p, axis=1)[:, None]
    tl.store(o_ptr + b * so_b + heads[:, None] * so_h + d[None, :], out.to(o_ptr.dtype.element_ty),
             mask=gmask[:, None])  # fmt: skip


def gqa_decode_attention(
    q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, o: torch.Tensor
) -> None:
    B, Hq, D, Hkv, L, GROUP = decode_shapes(q, k_cache)
    gqa_single_block_kernel[(B * Hkv,)](
        q, k_cache, v_cache, o, L, GROUP, Hkv, exp2_scale(D),
        *qkv_strides(q, k_cache, v_cache), o.stride(0), o.stride(1),
        D=D, BLOCK_G=max(64, triton.next_power_of_2(GROUP)), BLOCK_L=BLOCK_L,  # warpgroup-MMA eligible
        num_warps=num_warps,
    )  # fmt: skip
