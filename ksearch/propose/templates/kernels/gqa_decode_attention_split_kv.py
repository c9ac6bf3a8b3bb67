"""gqa_decode_attention/split_kv (flash-decoding): programs per (batch, KV head) and context chunk run
the grouped online softmax over their chunk and write unnormalized fp32 partials; a combine kernel per
(batch, query head) rescales them by exp2(m_s - max) and normalizes. NUM_SPLITS=auto aims at about two
waves of programs."""

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
from ksearch.propose.templates.kernels.launch import num_sms

# knobs (set by the renderer)
NUM_SPLITS = "auto"
BLOCK_N = 64
QK = "dot64"
num_warps = 4
num_stages = 2


@triton.jit
def gqa_split_kernel(
    q_ptr, k_ptr, v_ptr, ws_acc, ws_m, ws_l, L, GROUP, Hkv, Hq, CHUNK, NUM_SPLITS, qk_scale,
    sq_b, sq_h, sk_b, sk_h, sk_l, sv_b, sv_h, sv_l,
    D: tl.constexpr, BLOCK_G: tl.constexpr, BLOCK_N: tl.constexpr, DOT: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    split = tl.program_id(1)
    b = pid // Hkv
    kvh = pid % Hkv
    lo = split * CHUNK
    hi = tl.minimum(lo + CHUNK, L)
    acc, m_i, l_i = attend_group(
        q_ptr, k_ptr, v_ptr, b, kvh, lo, hi, GROUP, qk_scale, sq_b, sq_h, sk_b, sk_h, sk_l, sv_b, sv_h, sv_l,
        D, BLOCK_G, BLOCK_N, DOT,
    )  # fmt: skip
    g = tl.arange(0, BLOCK_G)
    d = tl.arange(0, D)
    gmask = g < GROUP
    # unnormalized partials; an empty split leaves m=-inf, l=0, acc=0 and weighs 0 in the combine
    part = (b * Hq + kvh * GROUP + g) * NUM_SPLITS + split
    tl.store(ws_acc + part[:, None] * D + d[None, :], acc, mask=gmask[:, None])
    tl.store(ws_m + part, m_i, mask=gmask)
    tl.store(ws_l + part, l_i, mask=gmask)


@triton.jit
def gqa_combine_kernel(
    ws_acc, ws_m, ws_l, o_ptr, Hq, NUM_SPLITS, so_b, so_h, D: tl.constexpr, BLOCK_S: tl.constexpr
):
    row = tl.program_id(0)
    s = tl.arange(0, BLOCK_S)
    d = tl.arange(0, D)
    smask = s < NUM_SPLITS
    m = tl.load(ws_m + row * NUM_SPLITS + s, mask=smask, other=-float("inf"))
    lsum = tl.load(ws_l + row * NUM_SPLITS + s, mask=smask, other=0.0)
    w = tl.exp2(m - tl.max(m, axis=0))
    acc = tl.load(ws_acc + (row * NUM_SPLITS + s[:, None]) * D + d[None, :], mask=smask[:, None], other=0.0)
    out = tl.sum(acc * w[:, None], axis=0) / tl.sum(lsum * w, axis=0)
    b = row // Hq
    h = row % Hq
    tl.store(o_ptr + b * so_b + h * so_h + d, out.to(o_ptr.dtype.element_ty))


def gqa_decode_attention(
    q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, o: torch.Tensor
) -> None:
    B, Hq, D, Hkv, L, GROUP = decode_shapes(q, k_cache)
    block_n = min(BLOCK_N, max(16, triton.next_power_of_2(L)))
    n_blocks = triton.cdiv(L, block_n)
    if NUM_SPLITS == "auto":
        splits = max(1, min(n_blocks, triton.cdiv(2 * num_sms(q), B * Hkv)))  # about two waves
    else:
        splits = min(NUM_SPLITS, n_blocks)
    chunk = triton.cdiv(n_blocks, splits) * block_n
    splits = triton.cdiv(L, chunk)  # no empty split
    ws_acc = torch.empty((B * Hq * splits, D), dtype=torch.float32, device=q.device)
    ws_m = torch.empty((B * Hq * splits,), dtype=torch.float32, device=q.device)
    ws_l = torch.empty((B * Hq * splits,), dtype=torch.float32, device=q.device)
    gqa_split_kernel[(B * Hkv, splits)](
        q, k_cache, v_cache, ws_acc, ws_m, ws_l, L, GROUP, Hkv, Hq, chunk, splits, exp2_scale(D),
        *qkv_strides(q, k_cache, v_cache),
        D=D, BLOCK_G=query_block(QK, GROUP), BLOCK_N=block_n, DOT=QK != "fma",
        num_warps=num_warps, num_stages=num_stages,
    )  # fmt: skip
    gqa_combine_kernel[(B * Hq,)](
        ws_acc, ws_m, ws_l, o, Hq, splits, o.stride(0), o.stride(1),
        D=D, BLOCK_S=triton.next_power_of_2(splits), num_warps=4,
    )  # fmt: skip
