"""Top-k-then-softmax MoE routing reference (GPT-OSS style)."""

import torch


def reference(logits: torch.Tensor, *, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    # sorted=True: ids come in descending logit order, which the contract fixes.
    values, ids = torch.topk(logits.float(), int(top_k), dim=-1, largest=True, sorted=True)
    weights = torch.softmax(values, dim=-1)
    return weights.to(torch.float32), ids.to(torch.int32)
