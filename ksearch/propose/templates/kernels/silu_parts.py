"""Jit helpers of the SiLU-and-mul templates."""

import triton
import triton.language as tl


@triton.jit
def silu_mul(g, u, SIGMOID: tl.constexpr):
    # silu(g) * u in fp32, through tl.sigmoid or the explicit exp form
    if SIGMOID:
        return g * tl.sigmoid(g) * u
    return g / (1.0 + tl.exp(-g)) * u
