"""moe_topk_routing/fixed_experts (risky): one token per program, argmax rounds over a BLOCK_E fixed
ahead of time (one specialization for every expert count): experts past BLOCK_E are never considered."""

import torch

from ksearch.propose.templates.kernels.moe_topk_routing_parts import launch_topk, topk_argmax_kernel

# knobs (set by the renderer)
BLOCK_E = 128
num_warps = 1
# one token per program
ROWS = 1


def moe_topk_routing(logits: torch.Tensor, topk_weights: torch.Tensor, topk_ids: torch.Tensor) -> None:
    launch_topk(topk_argmax_kernel, logits, topk_weights, topk_ids, ROWS, BLOCK_E, num_warps)
