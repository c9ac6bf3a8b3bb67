/* ksearch:launch
kernels:
  - name: gemm_mxfp4_mfma_scale_32x32x64
    block: [64]
    grid: ["ceil(N / 32)", "ceil(M / 32)"]
    args: [a, a_scale, b, b_scale, c, M, N, K]
*/
// MXFP4 GEMM for gfx950: c[M, N] (bf16) = (a * 2^a_scale) @ (b * 2^b_scale)^T with
//   a:       [M, K/2] uint8, two e2m1 (fp4) values per byte, low nibble first
//   a_scale: [M, K/32] uint8 e8m0 block scales (one per 32 values along K)
//   b:       [N, K/2] uint8 (b is stored n-major, "NT"), b_scale: [N, K/32]
// K must be a multiple of 64. One wave (64 lanes) owns a 32x32 tile of c and issues
// v_mfma_scale_f32_32x32x64_f8f6f4 with cbsz = blgp = 4 (both operands fp4) per 64-wide k step.
// Lane l supplies row (or column) l%32, k = 32*(l/32) .. +32 (16 bytes, 4 dwords; the upper four
// dwords of the 8-dword operand are unused for fp4) and the e8m0 scale of that 32-value block.
#include <hip/hip_runtime.h>
#include <stdint.h>

typedef int i32x8 __attribute__((ext_vector_type(8)));
typedef int i32x4 __attribute__((ext_vector_type(4)));
typedef float f32x16 __attribute__((ext_vector_type(16)));

__device__ inline i32x8 load_fp4x32(const uint8_t* __restrict__ p, bool valid) {
  i32x8 v = {};
  if (valid) {
    const i32x4 q = *reinterpret_cast<const i32x4*>(p);
    v[0] = q[0]; v[1] = q[1]; v[2] = q[2]; v[3] = q[3];
  }
  return v;
}

extern "C" __global__ void __launch_bounds__(64)
gemm_mxfp4_mfma_scale_32x32x64(const uint8_t* __restrict__ a, const uint8_t* __restrict__ a_scale,
                               const uint8_t* __restrict__ b, const uint8_t* __restrict__ b_scale,
                               __bf16* __restrict__ c, int M, int N, int K) {
  const int lane = threadIdx.x;
  const int row = blockIdx.y * 32 + (lane & 31);
  const int col = blockIdx.x * 32 + (lane & 31);
  const int half = lane >> 5;
  const bool row_ok = row < M;
  const bool col_ok = col < N;
  const long a_row = (long)row * (K / 2);
  const long b_row = (long)col * (K / 2);
  const int scale_cols = K / 32;

  f32x16 acc = {};
  for (int k0 = 0; k0 < K; k0 += 64) {
    const int kb = k0 + 32 * half;  // first k of this lane's 32-value block
    const i32x8 a_frag = load_fp4x32(a + a_row + kb / 2, row_ok);
    const i32x8 b_frag = load_fp4x32(b + b_row + kb / 2, col_ok);
    const int sa = row_ok ? a_scale[(long)row * scale_cols + kb / 32] : 127;  // 127: 2^0
    const int sb = col_ok ? b_scale[(long)col * scale_cols + kb / 32] : 127;
    acc = __builtin_amdgcn_mfma_scale_f32_32x32x64_f8f6f4(a_frag, b_frag, acc,
                                                          /*cbsz: a is fp4*/ 4, /*blgp: b is fp4*/ 4,
                                                          /*opsel a*/ 0, sa, /*opsel b*/ 0, sb);
  }

  const int out_col = blockIdx.x * 32 + (lane & 31);
#pragma unroll
  for (int i = 0; i < 16; ++i) {
    const int out_row = blockIdx.y * 32 + 8 * (i >> 2) + 4 * half + (i & 3);
    if (out_row < M && out_col < N) c[(long)out_row * N + out_col] = (__bf16)acc[i];
  }
}
