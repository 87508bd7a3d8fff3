#include "core/backend.hpp"

namespace jfjoch {

#ifdef JFJOCH_WITH_CUDA
int cuda_device_count_impl(); // core/backend_cuda.cu
int cuda_device_count() { return cuda_device_count_impl(); }
bool cuda_compiled() { return true; }
#else
int cuda_device_count() { return 0; }
bool cuda_compiled() { return false; }
#endif

} // namespace jfjoch
