# ksearch template: rmsnorm/row_block
# task: rmsnorm
# knobs: {"EVICT": "none", "num_warps": "auto"}
"""rmsnorm/row_block: one row per program, the whole row in one power-of-two block (masked tail)."""

import torch
import triton

import triton.language as tl


def launch_warps(knob: int | str, tile: int) -> int:
    # "auto": one warp per 512 elements of the tile, 1..16. A number: that many warps, raised (up to 16)
    # so no thread holds more than 256 elements: a whole-row block of a 128K-wide row on one warp
    # would take the compiler minutes to spill.
    if knob == "auto":
        return max(1, min(16, tile // 512))
    return max(int(knob), min(16, tile // (32 * 256)))


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


# knobs (set by the renderer)
num_warps = 'auto'
EVICT = 'none'
# the task's eps (set by the renderer)
eps = 1e-06


def launch(x: torch.Tensor, args: tuple, meta: dict) -> None:
    block_n = triton.next_power_of_2(x.shape[1])
    rmsnorm_whole_row_kernel[(x.shape[0],)](
        *args, **meta, BLOCK_N=block_n, num_warps=launch_warps(num_warps, block_n)
    )


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


def eviction_policies(knob: str) -> tuple[str, str]:
    # (policy of streamed loads, policy of reused loads): "stream" evicts the streamed data first and
    # keeps the reused (weights); "none" gives no hint.
    return ("evict_first", "evict_last") if knob == "stream" else ("", "")


def run(x: torch.Tensor, weight: torch.Tensor, out: torch.Tensor) -> None:
    launch(x, *kernel_args(x, None, weight, out, None, eps, EVICT))
