"""Helpers of the GQA decode attention templates: the online softmax (exp2 domain, fp32 statistics
and accumulator) of one (batch, KV head) over its query group, and the launch-side shapes, strides and
sizes."""

import torch
import triton
import triton.language as tl


def decode_shapes(q: torch.Tensor, k_cache: torch.Tensor) -> tuple[int, int, int, int, int, int]:
    # B, Hq, D of the queries, Hkv, L of the cache, and the query group size Hq // Hkv
    B, Hq, D = q.shape
    Hkv, L = k_cache.shape[1], k_cache.shape[2]
    return B, Hq, D, Hkv, L, Hq // Hkv


def qkv_strides(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor) -> tuple[int, ...]:
    # sq_b, sq_h, sk_b, sk_h, sk_l, sv_b, sv_h, sv_l: the strides every kernel takes
    return (*q.stride()[:2], *k_cache.stride()[:3], *v_cache.stride()[:3])


def exp2_scale(head_dim: int) -> float:
    # the softmax scale in the exp2 domain: 1/sqrt(D) * log2(e)
    return head_dim**-0.5 * 1.4426950408889634


def query_block(qk: str, group: int) -> int:
    # the query group padded to 64 rows (the warpgroup-MMA minimum: wgmma on sm_90a, tcgen05 on
    # sm_100a) or 16 rows (mma.sync / MFMA) for tl.dot; the next power of two for the fma path
    if qk == "fma":
        return triton.next_power_of_2(group)
    return max(64 if qk == "dot64" else 16, triton.next_power_of_2(group))


@triton.jit
def attend_group(
    q_ptr, k_ptr, v_ptr, b, kvh, lo, hi, GROUP, qk_scale, sq_b, sq_h, sk_b, sk_h, sk_l, sv_b, sv_h, sv_l,
    D: tl.constexpr, BLOCK_G: tl.constexpr, BLOCK_N: tl.constexpr, DOT: tl.constexpr,
):  # fmt: skip
    # the G query heads of KV head kvh against keys [lo, hi): unnormalized acc, running max and sum
    g = tl.arange(0, BLOCK_G)
    d = tl.arange(0, D)
    gmask = g < GROUP
    heads = kvh * GROUP + g
    q = tl.load(q_ptr + b * sq_b + heads[:, None] * sq_h + d[None, :], mask=gmask[:, None], other=0.0)
    k_base = k_ptr + b * sk_b + kvh * sk_h
    v_base = v_ptr + b * sv_b + kvh * sv_h
    m_i = tl.full([BLOCK_G], -float("inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_G], dtype=tl.float32)
    acc = tl.zeros([BLOCK_G, D], dtype=tl.float32)
    for start in range(lo, hi, BLOCK_N):
        ls = start + tl.arange(0, BLOCK_N)
        lmask = ls < hi
        k = tl.load(k_base + ls[:, None] * sk_l + d[None, :], mask=lmask[:, None], other=0.0)
        if DOT:
            s = tl.dot(q, tl.trans(k)) * qk_scale
        else:
            s = tl.sum(q.to(tl.float32)[:, None, :] * k.to(tl.float32)[None, :, :], axis=2) * qk_scale
        s = tl.where(lmask[None, :], s, -float("inf"))
        # the first block always holds a real key, so m_new is finite from then on
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(v_base + ls[:, None] * sv_l + d[None, :], mask=lmask[:, None], other=0.0)
        if DOT:
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        else:
            acc = acc * alpha[:, None] + tl.sum(p[:, :, None] * v.to(tl.float32)[None, :, :], axis=1)
        m_i = m_new
    return acc, m_i, l_i
