"""MoE top-k routing in Triton: K rounds of (max, argmax, mask out) per token, then a softmax over
the K chosen logits; ids in descending logit order.

task: moe_topk_routing
"""

import torch
import triton
import triton.language as tl


@triton.jit
def topk_softmax_kernel(logits_ptr, w_ptr, ids_ptr, E, stride_l, stride_w, stride_i,
                        K: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_K: tl.constexpr):
    t = tl.program_id(0)
    e = tl.arange(0, BLOCK_E)
    vals = tl.load(logits_ptr + t * stride_l + e, mask=e < E, other=-float("inf")).to(tl.float32)
    kk = tl.arange(0, BLOCK_K)
    top_vals = tl.full([BLOCK_K], -float("inf"), tl.float32)
    top_ids = tl.zeros([BLOCK_K], tl.int32)
    for j in tl.static_range(K):
        best = tl.max(vals, axis=0)
        # the smallest index holding the max (rows are tie-free, so it is the only one)
        idx = tl.min(tl.where(vals == best, e, BLOCK_E), axis=0)
        top_vals = tl.where(kk == j, best, top_vals)
        top_ids = tl.where(kk == j, idx, top_ids)
        vals = tl.where(e == idx, -float("inf"), vals)
    first = tl.max(top_vals, axis=0)
    p = tl.where(kk < K, tl.exp(top_vals - first), 0.0)
    w = p / tl.sum(p, axis=0)
    tl.store(w_ptr + t * stride_w + kk, w, mask=kk < K)
    tl.store(ids_ptr + t * stride_i + kk, top_ids, mask=kk < K)


def run(logits: torch.Tensor, topk_weights: torch.Tensor, topk_ids: torch.Tensor) -> None:
    T, E = logits.shape
    K = topk_ids.shape[1]
    topk_softmax_kernel[(T,)](
        logits, topk_weights, topk_ids, E,
        logits.stride(0), topk_weights.stride(0), topk_ids.stride(0),
        K=K, BLOCK_E=triton.next_power_of_2(E), BLOCK_K=triton.next_power_of_2(K),
    )
