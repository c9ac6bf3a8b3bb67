"""Jit helpers of the RMSNorm templates. Every RMSNorm kernel serves both tasks: FUSED adds the
residual first, stores the sum in the output dtype and normalizes that rounded sum, as the unfused
add-then-norm would; unfused launches pass None for the residual pointers and 0 for their strides."""

import triton
import triton.language as tl


@triton.jit
def load_row(
    x_ptr, r_ptr, rout_ptr, row, cols, mask, stride_x, stride_r, stride_ro,
    FUSED: tl.constexpr, STREAM: tl.constexpr,
):  # fmt: skip
    # the fp32 values to normalize: x, or the stored x + residual
    xa = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=0.0, eviction_policy=STREAM).to(tl.float32)
    if FUSED:
        xr = tl.load(r_ptr + row * stride_r + cols, mask=mask, other=0.0, eviction_policy=STREAM).to(
            tl.float32
        )
        h = (xa + xr).to(rout_ptr.dtype.element_ty)
        tl.store(rout_ptr + row * stride_ro + cols, h, mask=mask)
        xa = h.to(tl.float32)
    return xa


@triton.jit
def normalize_whole_row(
    x_ptr, r_ptr, w_ptr, out_ptr, rout_ptr, N, stride_x, stride_r, stride_o, stride_ro, eps,
    FUSED: tl.constexpr, BLOCK_N: tl.constexpr, STREAM: tl.constexpr, KEEP: tl.constexpr,
):  # fmt: skip
    # one whole row in one BLOCK_N block: the row-block and fixed-block templates differ only in how
    # their launch picks BLOCK_N
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_N)
    mask = cols < N
    x = load_row(x_ptr, r_ptr, rout_ptr, row, cols, mask, stride_x, stride_r, stride_ro, FUSED, STREAM)
    rstd = tl.rsqrt(tl.sum(x * x, axis=0) / N + eps)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0, eviction_policy=KEEP).to(tl.float32)
    tl.store(out_ptr + row * stride_o + cols, (x * rstd * w).to(out_ptr.dtype.element_ty), mask=mask)
