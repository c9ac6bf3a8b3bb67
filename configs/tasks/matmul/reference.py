"""GEMM reference: float32 products and accumulation, result cast to the output dtype."""

import torch


def reference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.float() @ b.float()).to(a.dtype)
