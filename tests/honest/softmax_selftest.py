"""Softmax, one row per program, with the self-test block a developer leaves at the bottom.

The `if __name__ == "__main__":` block never runs when the harness imports the module, so it may
compare against torch and time itself.

task: softmax
"""

import torch
import triton
import triton.language as tl


@triton.jit
def softmax_kernel(x_ptr, y_ptr, n_cols, x_row_stride, y_row_stride, BLOCK_SIZE: tl.constexpr):
    row = tl.program_id(0)
    offs = tl.arange(0, BLOCK_SIZE)
    mask = offs < n_cols
    x = tl.load(x_ptr + row * x_row_stride + offs, mask=mask, other=-float("inf")).to(tl.float32)
    z = x - tl.max(x, axis=0)
    num = tl.exp(z)
    den = tl.sum(num, axis=0)
    tl.store(y_ptr + row * y_row_stride + offs, (num / den).to(y_ptr.dtype.element_ty), mask=mask)


def run(x: torch.Tensor, out: torch.Tensor) -> None:
    n_rows, n_cols = x.shape
    BLOCK_SIZE = triton.next_power_of_2(n_cols)
    num_warps = 4
    if BLOCK_SIZE >= 2048:
        num_warps = 8
    if BLOCK_SIZE >= 4096:
        num_warps = 16
    softmax_kernel[(n_rows,)](x, out, n_cols, x.stride(0), out.stride(0),
                              BLOCK_SIZE=BLOCK_SIZE, num_warps=num_warps)


if __name__ == "__main__":
    import time

    x = torch.randn(17, 1000, device="cuda", dtype=torch.float16)
    y = torch.empty_like(x)
    run(x, y)
    torch.testing.assert_close(y, torch.softmax(x.float(), dim=-1).half(), atol=1e-3, rtol=1e-2)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(100):
        run(x, y)
    torch.cuda.synchronize()
    print(f"{(time.perf_counter() - t0) * 1e4:.1f} us per call")
