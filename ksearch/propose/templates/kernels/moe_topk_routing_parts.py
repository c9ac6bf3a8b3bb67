"""Jit helpers of the MoE top-k routing templates. Selection runs on the logits themselves (softmax is
monotone, so the chosen set and order are those of the probabilities, and exp rounding cannot create
ties between distinct logits); the softmax over the K chosen logits is computed in fp32 afterwards.

Every kernel takes the same arguments; `launch_topk` starts one with ROWS tokens per program over a
BLOCK_E-wide expert tile."""

import torch
import triton
import triton.language as tl

from ksearch.propose.templates.kernels.launch import launch_warps


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


@triton.jit
def topk_argmax_kernel(
    logits_ptr, w_ptr, ids_ptr, T, E, stride_l, stride_w, stride_i,
    K: tl.constexpr, ROWS: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    # ROWS tokens per program, K rounds of argmax-and-mask over their [ROWS, BLOCK_E] tile
    rows, row_ok, vals = load_logits(logits_ptr, T, E, stride_l, ROWS, BLOCK_E)
    top_v, top_i = argmax_rounds(vals, K, ROWS, BLOCK_E, BLOCK_K)
    store_topk(w_ptr, ids_ptr, rows, row_ok, top_v, top_i, stride_w, stride_i, K, BLOCK_K)


def launch_topk(
    kernel,
    logits: torch.Tensor,
    topk_weights: torch.Tensor,
    topk_ids: torch.Tensor,
    rows: int,
    block_e: int,
    warps: int | str,
) -> None:
    # `kernel` over cdiv(T, rows) programs of `rows` tokens and a `block_e`-wide expert tile
    T, E = logits.shape
    K = topk_ids.shape[1]
    kernel[(triton.cdiv(T, rows),)](
        logits, topk_weights, topk_ids, T, E, logits.stride(0), topk_weights.stride(0), topk_ids.stride(0),
        K=K, ROWS=rows, BLOCK_E=block_e, BLOCK_K=triton.next_power_of_2(K),
        num_warps=launch_warps(warps, rows * block_e),
    )  # fmt: skip
