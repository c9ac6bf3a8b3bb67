/* ksearch:launch
kernels:
  - name: gemm_bf16_mfma_64x64x32
    block: [256]
    grid: ["ceil(N / 64)", "ceil(M / 64)"]
    args: [a, b, c, M, N, K]
*/
// bf16 GEMM c[M, N] = a[M, K] @ b[K, N] (row-major, fp32 accumulation) for gfx950 (CDNA4).
//
// One 256-thread workgroup (4 waves of 64) owns a 64x64 tile of c; each wave owns a 32x32
// sub-tile and accumulates it with v_mfma_f32_32x32x16_bf16 over K in steps of 16.
// Per k-tile (32 wide) the workgroup stages a[64, 32] and b[32, 64] in LDS; b is stored
// transposed (n-major) so both MFMA operands are 8 contiguous bf16 (one 16-byte LDS read).
//
// MFMA 32x32x16 operand layout (lane l of 64): A row l%32, k = 8*(l/32) .. +8; B column l%32,
// the same k; D element i of 16: row 8*(i/4) + 4*(l/32) + i%4, column l%32. Ragged edges are
// zero-filled on load and masked on store, so any M, N, K >= 1 works.
#include <hip/hip_runtime.h>

typedef __bf16 bf16x8 __attribute__((ext_vector_type(8)));
typedef float f32x16 __attribute__((ext_vector_type(16)));

#define BM 64
#define BN 64
#define BK 32
#define LDS_STRIDE (BK + 8)  // bf16 elements per LDS row; +8 keeps rows 16-byte aligned, skews banks

extern "C" __global__ void __launch_bounds__(256)
gemm_bf16_mfma_64x64x32(const __bf16* __restrict__ a, const __bf16* __restrict__ b,
                        __bf16* __restrict__ c, int M, int N, int K) {
  __shared__ __attribute__((aligned(16))) __bf16 a_tile[BM * LDS_STRIDE];  // [m][k]
  __shared__ __attribute__((aligned(16))) __bf16 b_tile[BN * LDS_STRIDE];  // [n][k] (transposed)

  const int tid = threadIdx.x;
  const int lane = tid & 63;
  const int wave = tid >> 6;
  const int wave_m = (wave >> 1) * 32;
  const int wave_n = (wave & 1) * 32;
  const int block_m = blockIdx.y * BM;
  const int block_n = blockIdx.x * BN;

  // Global -> LDS assignment: each thread moves 8 elements of a and 8 of b per k-tile.
  const int a_row = tid >> 2;          // 0..63
  const int a_col = (tid & 3) * 8;     // 0, 8, 16, 24
  const int b_row = tid >> 3;          // k within the tile, 0..31
  const int b_col = (tid & 7) * 8;     // n within the tile, 0..56

  f32x16 acc = {};

  for (int k0 = 0; k0 < K; k0 += BK) {
    // a[block_m + a_row, k0 + a_col .. +8] -> a_tile[a_row][a_col ..]
    {
      const int gm = block_m + a_row;
      const int gk = k0 + a_col;
      bf16x8 v;
      if (gm < M && gk + 8 <= K && (K & 7) == 0) {
        v = *reinterpret_cast<const bf16x8*>(a + (long)gm * K + gk);
      } else {
        for (int j = 0; j < 8; ++j)
          v[j] = (gm < M && gk + j < K) ? a[(long)gm * K + gk + j] : (__bf16)0.0f;
      }
      *reinterpret_cast<bf16x8*>(&a_tile[a_row * LDS_STRIDE + a_col]) = v;
    }
    // b[k0 + b_row, block_n + b_col .. +8] -> b_tile[b_col + j][b_row]
    {
      const int gk = k0 + b_row;
      const int gn = block_n + b_col;
      bf16x8 v;
      if (gk < K && gn + 8 <= N && (N & 7) == 0) {
        v = *reinterpret_cast<const bf16x8*>(b + (long)gk * N + gn);
      } else {
        for (int j = 0; j < 8; ++j)
          v[j] = (gk < K && gn + j < N) ? b[(long)gk * N + gn + j] : (__bf16)0.0f;
      }
      for (int j = 0; j < 8; ++j) b_tile[(b_col + j) * LDS_STRIDE + b_row] = v[j];
    }
    __syncthreads();

#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      const int k_off = kk + 8 * (lane >> 5);
      const bf16x8 a_frag =
          *reinterpret_cast<const bf16x8*>(&a_tile[(wave_m + (lane & 31)) * LDS_STRIDE + k_off]);
      const bf16x8 b_frag =
          *reinterpret_cast<const bf16x8*>(&b_tile[(wave_n + (lane & 31)) * LDS_STRIDE + k_off]);
      acc = __builtin_amdgcn_mfma_f32_32x32x16_bf16(a_frag, b_frag, acc, 0, 0, 0);
    }
    __syncthreads();
  }

  const int col = block_n + wave_n + (lane & 31);
#pragma unroll
  for (int i = 0; i < 16; ++i) {
    const int row = block_m + wave_m + 8 * (i >> 2) + 4 * (lane >> 5) + (i & 3);
    if (row < M && col < N) c[(long)row * N + col] = (__bf16)acc[i];
  }
}
