// Which backend a kernel runs on, and whether a CUDA device is usable.
#pragma once

namespace jfjoch {

enum class Backend { Auto, CPU, CUDA };

/// Number of usable CUDA devices: 0 in a CPU-only build or when no driver/device is present.
/// Thread-safe.
int cuda_device_count();

/// True when this build contains the CUDA backend.
bool cuda_compiled();

} // namespace jfjoch
