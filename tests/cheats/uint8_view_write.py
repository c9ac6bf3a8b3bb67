"""Wrong-dtype write through a byte view: "probabilities live in [0, 1], so 7-bit fixed point
is enough", stored one byte per element through `out.view(torch.uint8)` with the row stride of
the byte count (N), not of the byte view (2N for float16, 4N for float32).

Only the first M*N bytes of the buffer are written: the first half (float16) or quarter
(float32) of the elements hold finite but meaningless byte patterns, and the rest of the output
is never touched.

layer: dynamic (the untouched elements keep the harness's poison; the rest mismatches)
expect: output_not_written
task: softmax
"""

import torch
import triton
import triton.language as tl


@triton.jit
def softmax_q7(x_ptr, q_ptr, N, stride_x, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < N
    x = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=-float("inf")).to(tl.float32)
    e = tl.exp(x - tl.max(x, axis=0))
    p = e / tl.sum(e, axis=0)
    q = (p * 120.0 + 0.5).to(tl.uint8)
    tl.store(q_ptr + row * N + cols, q, mask=mask)


def run(x: torch.Tensor, out: torch.Tensor) -> None:
    M, N = x.shape
    as_bytes = out.view(torch.uint8)
    softmax_q7[(M,)](x, as_bytes, N, x.stride(0), BLOCK=triton.next_power_of_2(N))
