// JFJOCH_HD marks functions compiled for both the CPU and (under nvcc) the GPU.
#pragma once
#if defined(__CUDACC__)
#define JFJOCH_HD __host__ __device__ __forceinline__
#else
#define JFJOCH_HD inline
#endif
