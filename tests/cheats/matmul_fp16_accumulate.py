"""Half-precision accumulator: tiled GEMM whose tl.dot accumulates in float16 (out_dtype=float16,
the fp16-accumulate MMA mode with twice the tensor-core rate on some parts), rounding the running
sum once per 16-deep K step.

With K = 64 or 72 a few roundings stay far inside the 1e-2 tolerance, so the kernel passes every
shallow workload on every distribution. On a deep reduction (K = 8192: 512 roundings) whose
partial sums run far from the result (activations with a per-channel mean), the float16 rounding
error of the partial sums exceeds the tolerance.

layer: dynamic (numerics on a deep-K workload; nothing in the source is forbidden)
expect: numerical_mismatch
task: matmul
"""

import torch
import triton
import triton.language as tl


@triton.jit
def gemm_half_acc(a_ptr, b_ptr, c_ptr, M, N, K, sam, sak, sbk, sbn, scm, scn,
                  BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    pm = tl.program_id(0)
    pn = tl.program_id(1)
    rm = pm * BM + tl.arange(0, BM)
    rn = pn * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    acc = tl.zeros((BM, BN), dtype=tl.float16)
    for k0 in range(0, K, BK):
        kk = k0 + rk
        a = tl.load(a_ptr + rm[:, None] * sam + kk[None, :] * sak,
                    mask=(rm[:, None] < M) & (kk[None, :] < K), other=0.0).to(tl.float16)
        b = tl.load(b_ptr + kk[:, None] * sbk + rn[None, :] * sbn,
                    mask=(kk[:, None] < K) & (rn[None, :] < N), other=0.0).to(tl.float16)
        acc = tl.dot(a, b, acc, out_dtype=tl.float16)
    tl.store(c_ptr + rm[:, None] * scm + rn[None, :] * scn, acc.to(c_ptr.dtype.element_ty),
             mask=(rm[:, None] < M) & (rn[None, :] < N))


def run(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> None:
    M, K = a.shape
    N = b.shape[1]
    BM, BN, BK = 32, 32, 16
    gemm_half_acc[(triton.cdiv(M, BM), triton.cdiv(N, BN))](
        a, b, c, M, N, K, a.stride(0), a.stride(1), b.stride(0), b.stride(1), c.stride(0), c.stride(1),
        BM=BM, BN=BN, BK=BK)
