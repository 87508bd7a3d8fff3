#include <cuda_runtime.h>

namespace jfjoch {

int cuda_device_count_impl() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); // clear the sticky error: no driver or no device means CPU
        return 0;
    }
    return n;
}

} // namespace jfjoch
