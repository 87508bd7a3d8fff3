#include "core/backend.hpp"

#include <stdexcept>

namespace jfjoch {

#ifdef JFJOCH_WITH_CUDA
int cuda_device_count_impl(); // core/backend_cuda.cu
int cuda_device_count() {
    return cuda_device_count_impl();
}
bool cuda_compiled() {
    return true;
}
#else
int cuda_device_count() {
    return 0;
}
bool cuda_compiled() {
    return false;
}
#endif

Backend parse_backend(const std::string& name) {
    if (name == "auto")
        return Backend::Auto;
    if (name == "cpu")
        return Backend::CPU;
    if (name == "cuda")
        return Backend::CUDA;
    throw std::invalid_argument("backend must be 'auto', 'cpu' or 'cuda', not '" + name + "'");
}

bool use_cuda(Backend backend, const char* what) {
    switch (backend) {
    case Backend::CPU:
        return false;
    case Backend::CUDA:
        if (!cuda_compiled())
            throw std::runtime_error(std::string(what) +
                                     ": the CUDA backend was requested but this build has no CUDA");
        if (cuda_device_count() == 0)
            throw std::runtime_error(std::string(what) +
                                     ": the CUDA backend was requested but no CUDA device is present");
        return true;
    case Backend::Auto:
    default:
        return cuda_compiled() && cuda_device_count() > 0;
    }
}

} // namespace jfjoch
