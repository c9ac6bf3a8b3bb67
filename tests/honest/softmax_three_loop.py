"""Softmax with three loops over the row: max, sum of exponentials, normalize and store.

task: softmax
"""

import triton
import triton.language as tl


@triton.jit
def softmax_3loop(x_ptr, out_ptr, N, stride_x, stride_o, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    src = x_ptr + row * stride_x
    dst = out_ptr + row * stride_o
    # loop 1: the row max
    mx = tl.full([BLOCK], -float("inf"), tl.float32)
    for off in range(0, N, BLOCK):
        idx = off + tl.arange(0, BLOCK)
        mx = tl.maximum(mx, tl.load(src + idx, mask=idx < N, other=-float("inf")).to(tl.float32))
    row_max = tl.max(mx, axis=0)
    # loop 2: the sum of exp(x - max)
    acc = tl.zeros([BLOCK], tl.float32)
    for off in range(0, N, BLOCK):
        idx = off + tl.arange(0, BLOCK)
        v = tl.load(src + idx, mask=idx < N, other=-float("inf")).to(tl.float32)
        acc += tl.exp(v - row_max)
    inv = 1.0 / tl.sum(acc, axis=0)
    # loop 3: normalize
    for off in range(0, N, BLOCK):
        idx = off + tl.arange(0, BLOCK)
        m = idx < N
        v = tl.load(src + idx, mask=m, other=0.0).to(tl.float32)
        tl.store(dst + idx, (tl.exp(v - row_max) * inv).to(dst.dtype.element_ty), mask=m)


def run(x, out):
    rows, n = x.shape
    block = 512 if n >= 512 else triton.next_power_of_2(n)
    softmax_3loop[(rows,)](x, out, n, x.stride(0), out.stride(0), BLOCK=block, num_warps=4)
