"""Jit helpers of the MoE top-k routing templates. Selection runs on the logits themselves (softmax is
monotone, so the chosen set and order are those of the probabilities, and exp rounding cannot create
ties between distinct logits); the softmax over the K chosen logits is computed in fp32 afterwards."""

import triton
import triton.language as tl


@triton.jit
def load_logits(logits_ptr, T, E, stride_l, ROWS: tl.constexpr, BLOCK_E: tl.constexpr):
    # ROWS tokens' logits as an fp32 [ROWS, BLOCK_E] tile, -inf past E and past T
    rows = (tl.program_id(0) * ROWS + tl.arange(0, ROWS)).to(tl.int64)
    row_ok = rows < T
    e = tl.arange(0, BLOCK_E)
    vals = tl.load(logits_ptr + rows[:, None] * stride_l + e[None, :],
                   mask=row_ok[:, None] & (e[None, :] < E), other=-float("inf")).to(tl.float32)  # fmt: skip
    return rows, row_ok, vals


@triton.jit
def argmax_rounds(vals, K: tl.constexpr, ROWS: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_K: tl.constexpr):
    # K rounds of: row max, smallest column equal to it, record, mask that column to -inf
    e = tl.arange(0, BLOCK_E)
    kk = tl.arange(0, BLOCK_K)
    top_v = tl.full([ROWS, BLOCK_K], -float("inf"), dtype=tl.float32)
    top_i = tl.zeros([ROWS, BLOCK_K], dtype=tl.int32)
    for j in tl.static_range(K):
        best = tl.max(vals, axis=1)
        # the smallest column holding the max (rows are tie-free, so the only one)
        idx = tl.min(tl.where(vals == best[:, None], e[None, :], BLOCK_E), axis=1)
        top_v = tl.where(kk[None, :] == j, best[:, None], top_v)
        top_i = tl.where(kk[None, :] == j, idx[:, None], top_i)
        vals = tl.where(e[None, :] == idx[:, None], -float("inf"), vals)
    return top_v, top_i


@triton.jit
def store_topk(
    w_ptr, ids_ptr, rows, row_ok, top_v, top_i, stride_w, stride_i, K: tl.constexpr, BLOCK_K: tl.constexpr
):
    # the softmax over the chosen logits, then the weights and ids
    kk = tl.arange(0, BLOCK_K)
    first = tl.where(row_ok, tl.max(top_v, axis=1), 0.0)  # the largest chosen logit
    p = tl.where(kk[None, :] < K, tl.exp(top_v - first[:, None]), 0.0)
    w = p / tl.where(row_ok, tl.sum(p, axis=1), 1.0)[:, None]
    out_mask = row_ok[:, None] & (kk[None, :] < K)
    tl.store(w_ptr + rows[:, None] * stride_w + kk[None, :], w, mask=out_mask)
    tl.store(ids_ptr + rows[:, None] * stride_i + kk[None, :], top_i, mask=out_mask)
