"""SwiGLU over the flattened [M, I] output, 1-D grid, silu through tl.sigmoid.

(No multi-config @triton.autotune here: benchmarking configs needs a GPU driver, which the CPU
interpreter does not have.)

task: silu_and_mul
"""

import torch
import triton
import triton.language as tl


@triton.jit
def swiglu_flat(x_ptr, out_ptr, total, I, stride_x, stride_o, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < total
    row = offs // I
    col = offs % I
    gate = tl.load(x_ptr + row * stride_x + col, mask=mask, other=0.0).to(tl.float32)
    up = tl.load(x_ptr + row * stride_x + I + col, mask=mask, other=0.0).to(tl.float32)
    silu = gate * tl.sigmoid(gate)
    tl.store(out_ptr + row * stride_o + col, (silu * up).to(out_ptr.dtype.element_ty), mask=mask)


def run(x: torch.Tensor, out: torch.Tensor) -> None:
    m, two_i = x.shape
    i = two_i // 2
    total = m * i
    block = 2048 if total >= 1 << 16 else 512
    swiglu_flat[lambda meta: (triton.cdiv(total, meta["BLOCK"]),)](
        x, out, total, i, x.stride(0), out.stride(0), BLOCK=block, num_warps=8 if block == 2048 else 4)
