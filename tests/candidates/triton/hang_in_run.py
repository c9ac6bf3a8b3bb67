"""A candidate whose `run` never returns: capturing its launches hangs, so the compile service must
kill the compile at its timeout and report compile_timeout."""

import triton
import triton.language as tl


@triton.jit
def copy_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out_ptr + offs, tl.load(x_ptr + offs, mask=offs < n), mask=offs < n)


def run(x, weight, out):
    while True:  # the hang
        pass
