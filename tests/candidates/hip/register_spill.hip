/* ksearch:launch
kernels:
  - name: many_accumulators
    block: [1024]
    grid: [1]
    args: [a, b, c, K]
*/
// Deliberately over-subscribed: 20 live 32x32 MFMA accumulators (320 fp32 values per lane) in a
// kernel bounded to 1024-thread workgroups (at most 128 VGPRs + AGPRs per lane), so the compiler
// must spill to scratch. A fixture for spill and scratch reporting, not a useful kernel.
#include <hip/hip_runtime.h>

typedef __bf16 bf16x8 __attribute__((ext_vector_type(8)));
typedef float f32x16 __attribute__((ext_vector_type(16)));

extern "C" __global__ void __launch_bounds__(1024)
many_accumulators(const bf16x8* __restrict__ a, const bf16x8* __restrict__ b, float* __restrict__ c, int K) {
  f32x16 acc[20] = {};
  for (int k = 0; k < K; ++k) {
#pragma unroll
    for (int j = 0; j < 20; ++j)
      acc[j] = __builtin_amdgcn_mfma_f32_32x32x16_bf16(a[(k * 20 + j) * 1024 + threadIdx.x],
                                                       b[k * 1024 + threadIdx.x], acc[j], 0, 0, 0);
  }
#pragma unroll
  for (int j = 0; j < 20; ++j)
#pragma unroll
    for (int i = 0; i < 16; ++i) c[(j * 16 + i) * 1024 + threadIdx.x] = acc[j][i];
}
