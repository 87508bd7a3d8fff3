// Which backend a kernel runs on, and whether a CUDA device is usable.
#pragma once
#include <string>

namespace jfjoch {

enum class Backend { Auto, CPU, CUDA };

/// Number of usable CUDA devices: 0 in a CPU-only build or when no driver/device is present.
/// Thread-safe.
int cuda_device_count();

/// True when this build contains the CUDA backend.
bool cuda_compiled();

/// "auto" | "cpu" | "cuda" -> Backend; throws std::invalid_argument otherwise.
Backend parse_backend(const std::string& name);

/// Whether a kernel runs on the GPU: Auto -> CUDA when compiled in and a device is present, else CPU;
/// CUDA asked for but unavailable -> std::runtime_error naming `what` (e.g. "spot finder").
bool use_cuda(Backend backend, const char* what);

} // namespace jfjoch
