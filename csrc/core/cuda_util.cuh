// Small CUDA helpers shared by the .cu launchers: error checks and RAII device memory / streams.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <stdexcept>
#include <string>

namespace jfjoch::cuda {

/// Throw std::runtime_error "<family>: <what>: <CUDA error>" when e is not cudaSuccess.
inline void check(cudaError_t e, const char* family, const char* what) {
    if (e != cudaSuccess)
        throw std::runtime_error(std::string(family) + ": " + what + ": " + cudaGetErrorString(e));
}

/// Device buffer of n elements owned by one call (freed on every path, including exceptions).
template <typename T> struct DeviceBuffer {
    T* p = nullptr;
    explicit DeviceBuffer(size_t n) {
        check(cudaMalloc(&p, (n > 0 ? n : 1) * sizeof(T)), "CUDA", "cudaMalloc");
    }
    ~DeviceBuffer() { cudaFree(p); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

/// A non-blocking stream owned by one call.
struct Stream {
    cudaStream_t s = nullptr;
    Stream() { check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "CUDA", "cudaStreamCreate"); }
    ~Stream() { cudaStreamDestroy(s); }
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;
};

} // namespace jfjoch::cuda
