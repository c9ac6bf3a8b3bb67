"""gqa_decode_attention/grouped: one program per (batch, KV head) loads the G query heads of its group
as a [BLOCK_G, D] tile and streams the KV head once: scores and P @ V with tl.dot (QK=dot64 or dot)
or a broadcast multiply-and-sum in fp32 (QK=fma)."""

import torch
import triton
import triton.language as tl

from ksearch.propose.templates.kernels.gqa_decode_attention_parts import (
    attend_group,
    decode_shapes,
    exp2_scale,
    qkv_strides,
    query_block,
)

# knobs (set by the renderer)
BLOCK_N = 64
QK = "dot64"
num_warps = 4
num_stages = 2


@triton.jit
def gqa_grouped_kernel(
    q_ptr, k_ptr, v_ptr, o_ptr, L, GROUP, Hkv, qk_scale, sq_b, sq_h, sk_b, sk_h, sk_l, sv_b, sv_h, sv_l, so_b, so_h,
    D: tl.constexpr, BLOCK_G: tl.constexpr, BLOCK_N: tl.constexpr, DOT: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    b = pid // Hkv
    kvh = pid % Hkv
    acc, m_i, l_i = attend_group(
        q_ptr, k_ptr, v_ptr, b, kvh, 0, L, GROUP, qk_scale, sq_b, sq_h, sk_b, sk_h, sk_l, sv_b, sv_h, sv_l,
        D, BLOCK_G, BLOCK_N, DOT,
    )  # fmt: skip
    g = tl.arange(0, BLOCK_G)
    d = tl.arange(0, D)
    heads = kvh * GROUP + g
    out = acc / l_i[:, None]
    tl.store(o_ptr + b * so_b + heads[:, None] * so_h + d[None, :], out.to(o_ptr.dtype.element_ty),
             mask=(g < GROUP)[:, None])  # fmt: skip


def gqa_decode_attention(
    q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, o: torch.Tensor
) -> None:
    B, Hq, D, Hkv, L, GROUP = decode_shapes(q, k_cache)
    gqa_grouped_kernel[(B * Hkv,)](
        q, k_cache, v_cache, o, L, GROUP, Hkv, exp2_scale(D),
        *qkv_strides(q, k_cache, v_cache), o.stride(0), o.stride(1),
        D=D, BLOCK_G=query_block(QK, GROUP), BLOCK_N=min(BLOCK_N, max(16, triton.next_power_of_2(L))),
        DOT=QK != "fma", num_warps=num_warps, num_stages=num_stages,
    )  # fmt: skip
