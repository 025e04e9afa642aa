// CUDA side of the core. The descriptor kernels' CUDA twins arrive in a later issue; for now this
// translation unit carries the CUDA build option and reports the devices visible at run time.
#include <cuda_runtime.h>

namespace atomforge {

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error (no driver / no device)
    return 0;
  }
  return n;
}

}  // namespace atomforge
