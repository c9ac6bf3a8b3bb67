"""TileLang tiled GEMM for task `matmul`: c[M, N] = a[M, K] @ b[K, N], fp32 accumulation.

A 128x128 output tile per block of 128 threads; per 32-wide k-step, a[128, 32] and b[32, 128] are
copied to shared memory in a 3-stage software pipeline and multiplied with T.gemm (TileLang picks the
tensor-core instruction for the target), then the fp32 fragment is stored to c.

`make_kernel(M, N, K, dtype)` builds the kernel for one shape (what ksearch lowers without a GPU);
`run(a, b, c)` is the destination-passing entry the harness calls on a GPU.
"""

import tilelang
import tilelang.language as T

BLOCK_M, BLOCK_N, BLOCK_K = 128, 128, 32
NUM_STAGES = 3
THREADS = 128


def make_kernel(M, N, K, dtype="bfloat16"):
    accum_dtype = "float32"

    @T.prim_func
    def gemm(
        A: T.Tensor((M, K), dtype),
        B: T.Tensor((K, N), dtype),
        C: T.Tensor((M, N), dtype),
    ):
        with T.Kernel(T.ceildiv(N, BLOCK_N), T.ceildiv(M, BLOCK_M), threads=THREADS) as (bx, by):
            A_shared = T.alloc_shared((BLOCK_M, BLOCK_K), dtype)
            B_shared = T.alloc_shared((BLOCK_K, BLOCK_N), dtype)
            C_local = T.alloc_fragment((BLOCK_M, BLOCK_N), accum_dtype)
            T.clear(C_local)
            for ko in T.Pipelined(T.ceildiv(K, BLOCK_K), num_stages=NUM_STAGES):
                T.copy(A[by * BLOCK_M, ko * BLOCK_K], A_shared)
                T.copy(B[ko * BLOCK_K, bx * BLOCK_N], B_shared)
                T.gemm(A_shared, B_shared, C_local)
            T.copy(C_local, C[by * BLOCK_M, bx * BLOCK_N])

    return gemm


def run(a, b, c):
    M, K = a.shape
    N = b.shape[1]
    kernel = tilelang.compile(make_kernel(M, N, K, dtype=str(a.dtype).removeprefix("torch.")))
    kernel(a, b, c)
