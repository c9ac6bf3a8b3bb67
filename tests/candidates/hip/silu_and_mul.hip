/* ksearch:launch
kernels:
  - name: silu_and_mul_bf16
    block: [256]
    grid: ["ceil(I / 256)", M]
    args: [x, out, I]
*/
// out[m, i] = silu(x[m, i]) * x[m, I + i], bf16 in and out, float32 math (task silu_and_mul).
// One thread per output element; blockIdx.y is the row.
#include <hip/hip_runtime.h>

extern "C" __global__ void __launch_bounds__(256)
silu_and_mul_bf16(const __bf16* __restrict__ x, __bf16* __restrict__ out, int I) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const long row = blockIdx.y;
  if (i >= I) return;
  const float gate = (float)x[row * 2 * I + i];
  const float up = (float)x[row * 2 * I + I + i];
  out[row * I + i] = (__bf16)(gate / (1.0f + expf(-gate)) * up);
}
