"""Helpers of the RMSNorm templates. Every RMSNorm kernel serves both tasks: FUSED adds the
residual first, stores the sum in the output dtype and normalizes that rounded sum, as the unfused
add-then-norm would; unfused launches pass None for the residual pointers and 0 for their strides.

Every kernel takes the same leading arguments (`kernel_args`), so a kernel file holds its kernel and
a `launch(x, args, meta)` picking the grid and block sizes; `rmsnorm_entries(launch, eps, EVICT)`
makes its two task entries."""

import torch
import triton
import triton.language as tl

from ksearch.propose.templates.kernels.launch import eviction_policies


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
def rmsnorm_whole_row_kernel(
    x_ptr, r_ptr, w_ptr, out_ptr, rout_ptr, M, N, stride_x, stride_r, stride_o, stride_ro, eps,
    FUSED: tl.constexpr, STREAM: tl.constexpr, KEEP: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    # one row per program, the whole row in one BLOCK_N block: the row-block and fixed-block templates
    # differ only in how their launch picks BLOCK_N
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_N)
    mask = cols < N
    x = load_row(x_ptr, r_ptr, rout_ptr, row, cols, mask, stride_x, stride_r, stride_ro, FUSED, STREAM)
    rstd = tl.rsqrt(tl.sum(x * x, axis=0) / N + eps)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0, eviction_policy=KEEP).to(tl.float32)
    tl.store(out_ptr + row * stride_o + cols, (x * rstd * w).to(out_ptr.dtype.element_ty), mask=mask)


def kernel_args(
    x: torch.Tensor,
    residual: torch.Tensor | None,
    weight: torch.Tensor,
    out: torch.Tensor,
    residual_out: torch.Tensor | None,
    eps: float,
    evict: str,
) -> tuple[tuple, dict]:
    # the arguments every RMSNorm kernel starts with (x_ptr ... eps), and its FUSED, STREAM and KEEP
    M, N = x.shape
    stride_r = residual.stride(0) if residual is not None else 0
    stride_ro = residual_out.stride(0) if residual_out is not None else 0
    stream, keep = eviction_policies(evict)
    args = (
        x,
        residual,
        weight,
        out,
        residual_out,
        M,
        N,
        x.stride(0),
        stride_r,
        out.stride(0),
        stride_ro,
        eps,
    )
    return args, {"FUSED": residual is not None, "STREAM": stream, "KEEP": keep}


def rmsnorm_entries(launch, eps: float, EVICT: str) -> tuple:
    """The `rmsnorm` and `fused_add_rmsnorm` entries of a kernel file whose `launch(x, args, meta)`
    starts its kernel with `kernel_args` (the renderer copies the task's one in as `run`)."""

    def rmsnorm(x: torch.Tensor, weight: torch.Tensor, out: torch.Tensor) -> None:
        launch(x, *kernel_args(x, None, weight, out, None, eps, EVICT))

    def fused_add_rmsnorm(
        x: torch.Tensor,
        residual: torch.Tensor,
        weight: torch.Tensor,
        out: torch.Tensor,
        residual_out: torch.Tensor,
    ) -> None:
        launch(x, *kernel_args(x, residual, weight, out, residual_out, eps, EVICT))

    return rmsnorm, fused_add_rmsnorm
