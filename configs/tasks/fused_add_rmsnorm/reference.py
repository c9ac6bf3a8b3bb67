"""Fused residual add + RMSNorm reference: float32 math, results cast to the output dtype."""

import torch


def reference(
    x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, *, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    residual_out = (x.float() + residual.float()).to(x.dtype)
    # Normalize the stored residual, as the unfused add-then-norm sequence would.
    h = residual_out.float()
    inv_rms = torch.rsqrt(h.square().mean(dim=-1, keepdim=True) + eps)
    out = (h * inv_rms * weight.float()).to(x.dtype)
    return out, residual_out
