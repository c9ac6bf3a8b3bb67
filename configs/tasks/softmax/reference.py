"""Softmax reference: float32 math along the last dim, result cast to the output dtype."""

import torch


def reference(x: torch.Tensor) -> torch.Tensor:
    xf = x.float()
    shifted = xf - xf.amax(dim=-1, keepdim=True)
    e = shifted.exp()
    return (e / e.sum(dim=-1, keepdim=True)).to(x.dtype)
