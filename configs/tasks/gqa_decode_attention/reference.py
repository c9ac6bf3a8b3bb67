"""GQA decode attention reference: float32 math, result cast to the output dtype."""

import torch


def reference(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, *, scale: float) -> torch.Tensor:
    batch, hq, dim = q.shape
    hkv = k_cache.shape[1]
    if hq % hkv:
        raise ValueError(f"Hq={hq} is not a multiple of Hkv={hkv}")
    group = hq // hkv
    # Query heads h*group .. h*group+group-1 share KV head h.
    qf = q.float().view(batch, hkv, group, dim)
    scores = torch.einsum("bhgd,bhld->bhgl", qf, k_cache.float()) * scale
    probs = torch.softmax(scores, dim=-1)
    o = torch.einsum("bhgl,bhld->bhgd", probs, v_cache.float())
    return o.reshape(batch, hq, dim).to(q.dtype)
