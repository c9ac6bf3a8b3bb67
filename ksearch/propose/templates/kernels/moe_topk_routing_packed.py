"""moe_topk_routing/packed: each logit becomes an int64 key (an order-preserving int32 image of the
float in the high half, the reversed column in the low half), so one max per round yields both the
value and the index; the winner is masked and the next round starts."""

import torch
import triton
import triton.language as tl

from ksearch.propose.templates.kernels.moe_topk_routing_parts import launch_topk, load_logits, store_topk

# knobs (set by the renderer)
ROWS = 4
num_warps = 4


@triton.jit
def topk_packed_kernel(
    logits_ptr, w_ptr, ids_ptr, T, E, stride_l, stride_w, stride_i,
    K: tl.constexpr, ROWS: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    rows, row_ok, vals = load_logits(logits_ptr, T, E, stride_l, ROWS, BLOCK_E)
    e = tl.arange(0, BLOCK_E)
    kk = tl.arange(0, BLOCK_K)
    top_v = tl.full([ROWS, BLOCK_K], -float("inf"), dtype=tl.float32)
    top_i = tl.zeros([ROWS, BLOCK_K], dtype=tl.int32)
    # order-preserving int32 image of the float bits, then (key << 32) | reversed column: one max
    # gives the largest logit and, among equals, the smallest column
    bits = vals.to(tl.int32, bitcast=True)
    key = tl.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    packed = (key.to(tl.int64) << 32) | (BLOCK_E - 1 - e).to(tl.int64)[None, :]
    for j in tl.static_range(K):
        best = tl.max(packed, axis=1)
        bkey = (best >> 32).to(tl.int32)
        bval = tl.where(bkey < 0, bkey ^ 0x7FFFFFFF, bkey).to(tl.float32, bitcast=True)
        idx = BLOCK_E - 1 - (best & 0x7FFFFFFF).to(tl.int32)
        top_v = tl.where(kk[None, :] == j, bval[:, None], top_v)
        top_i = tl.where(kk[None, :] == j, idx[:, None], top_i)
        packed = tl.where(packed == best[:, None], -9223372036854775807, packed)
    store_topk(w_ptr, ids_ptr, rows, row_ok, top_v, top_i, stride_w, stride_i, K, BLOCK_K)


def moe_topk_routing(logits: torch.Tensor, topk_weights: torch.Tensor, topk_ids: torch.Tensor) -> None:
    block_e = triton.next_power_of_2(logits.shape[1])
    launch_topk(topk_packed_kernel, logits, topk_weights, topk_ids, ROWS, block_e, num_warps)
