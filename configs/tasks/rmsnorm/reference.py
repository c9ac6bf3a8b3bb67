"""RMSNorm reference: float32 math, result cast to the output dtype."""

import torch


def reference(x: torch.Tensor, weight: torch.Tensor, *, eps: float) -> torch.Tensor:
    xf = x.float()
    inv_rms = torch.rsqrt(xf.square().mean(dim=-1, keepdim=True) + eps)
    return (xf * inv_rms * weight.float()).to(x.dtype)
