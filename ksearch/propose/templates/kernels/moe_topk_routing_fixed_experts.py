"""moe_topk_routing/fixed_experts (risky): one token per program, argmax rounds over a BLOCK_E fixed
ahead of time (one specialization for every expert count): experts past BLOCK_E are never considered."""

import torch
import triton
import triton.language as tl

from ksearch.propose.templates.kernels.launch import launch_warps
from ksearch.propose.templates.kernels.moe_topk_routing_parts import argmax_rounds, load_logits, store_topk

# knobs (set by the renderer)
BLOCK_E = 128
num_warps = 1
# one token per program
ROWS = 1


@triton.jit
def topk_fixed_kernel(
    logits_ptr, w_ptr, ids_ptr, T, E, stride_l, stride_w, stride_i,
    K: tl.constexpr, ROWS: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    rows, row_ok, vals = load_logits(logits_ptr, T, E, stride_l, ROWS, BLOCK_E)
    top_v, top_i = argmax_rounds(vals, K, ROWS, BLOCK_E, BLOCK_K)
    store_topk(w_ptr, ids_ptr, rows, row_ok, top_v, top_i, stride_w, stride_i, K, BLOCK_K)


def moe_topk_routing(logits: torch.Tensor, topk_weights: torch.Tensor, topk_ids: torch.Tensor) -> None:
    T, E = logits.shape
    K = topk_ids.shape[1]
    block_e = BLOCK_E
    topk_fixed_kernel[(triton.cdiv(T, ROWS),)](
        logits, topk_weights, topk_ids, T, E, logits.stride(0), topk_weights.stride(0), topk_ids.stride(0),
        K=K, ROWS=ROWS, BLOCK_E=block_e, BLOCK_K=triton.next_power_of_2(K),
        num_warps=launch_warps(num_warps, ROWS * block_e),
    )  # fmt: skip
