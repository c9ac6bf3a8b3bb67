"""moe_topk_routing/row_argmax: ROWS tokens per program, the whole expert row (next power of two of E,
-inf padding) in registers, K rounds of argmax-and-mask, then an fp32 softmax over the K chosen."""

import torch
import triton

from ksearch.propose.templates.kernels.moe_topk_routing_parts import launch_topk, topk_argmax_kernel

# knobs (set by the renderer)
ROWS = 4
num_warps = 4


def moe_topk_routing(logits: torch.Tensor, topk_weights: torch.Tensor, topk_ids: torch.Tensor) -> None:
    block_e = triton.next_power_of_2(logits.shape[1])
    launch_topk(topk_argmax_kernel, logits, topk_weights, topk_ids, ROWS, block_e, num_warps)
