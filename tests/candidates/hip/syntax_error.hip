/* ksearch:launch
kernels:
  - name: scale
    block: [256]
    grid: ["ceil(M * I / 256)"]
    args: [x, out, "M * I"]
*/
#include <hip/hip_runtime.h>

extern "C" __global__ void scale(const float* x, float* out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = 2.0f * x[i]   // line 12: missing semicolon
}
