// CUDA backend of the TORO indexer: device memory handling and launches over the per-item functions of
// toro_impl.hpp (the same code the CPU loops in toro_cpu.cpp run). Host pointers in and out.
#include <cuda_runtime.h>

#include "core/cuda_util.cuh"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "index/toro/toro_kernels.hpp"

namespace jfjoch::toro {
namespace {

void check(cudaError_t e, const char* what) {
    cuda::check(e, "toro CUDA", what);
}

__global__ void k_directions(const float* sx, const float* sy, const float* sz, int n, const float* lens,
                             int nlen, int num_dir, float trim2, float* out) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= nlen * num_dir)
        return;
    int g = i / num_dir, j = i % num_dir;
    out[i] = direction_score(sx, sy, sz, n, spiral_direction(j, num_dir), lens[g], trim2);
}

__global__ void k_refine_candidates(const float* sx, const float* sy, const float* sz, int n, Candidate* c,
                                    int nc, const float* vec_len, float trim2, float step, int iterations) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= nc)
        return;
    refine_candidate(sx, sy, sz, n, c[i], vec_len[c[i].vec], trim2, step, iterations);
}

__global__ void k_rotations(const float* sx, const float* sy, const float* sz, int n, const float* B,
                            const Candidate* top, int total, int num_rot, float trim2, float* out) {
    int q = blockIdx.x * blockDim.x + threadIdx.x;
    if (q >= total)
        return;
    float L[9];
    out[q] = rotation_item(sx, sy, sz, n, B, top, num_rot, q, trim2, L);
}

__global__ void k_refine_cells(const float* sx, const float* sy, const float* sz, int n, double* cells,
                               int ncells, int iterations, float thr_start, float thr_end, int min_spots,
                               float indexed_thr, int* counts) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= ncells)
        return;
    counts[i] =
        refine_cell(sx, sy, sz, n, cells + 9 * i, iterations, thr_start, thr_end, min_spots, indexed_thr);
}

int blocks(int items, int threads) {
    return (items + threads - 1) / threads;
}

} // namespace

struct CudaBuffers {
    ToroSizes sizes;
    cudaStream_t stream = nullptr;
    float *sx = nullptr, *sy = nullptr, *sz = nullptr;
    float* lens = nullptr;      // 3
    float* B = nullptr;         // 9
    float* scores = nullptr;    // 3 * num_directions, then reused for rotation scores
    Candidate* cands = nullptr; // 3 * num_candidates
    double* cells = nullptr;    // num_cells * 9
    int* counts = nullptr;      // num_cells
};

CudaBuffers* cuda_alloc(const ToroSizes& z) {
    auto* b = new CudaBuffers;
    b->sizes = z;
    try {
        check(cudaStreamCreateWithFlags(&b->stream, cudaStreamNonBlocking), "stream");
        size_t ns = size_t(z.max_spots);
        size_t nscore =
            std::max(size_t(3) * z.num_directions, size_t(z.num_top_vectors) * 2 * z.num_rotations);
        check(cudaMalloc(&b->sx, ns * sizeof(float)), "malloc");
        check(cudaMalloc(&b->sy, ns * sizeof(float)), "malloc");
        check(cudaMalloc(&b->sz, ns * sizeof(float)), "malloc");
        check(cudaMalloc(&b->lens, 3 * sizeof(float)), "malloc");
        check(cudaMalloc(&b->B, 9 * sizeof(float)), "malloc");
        check(cudaMalloc(&b->scores, nscore * sizeof(float)), "malloc");
        check(cudaMalloc(&b->cands, size_t(3) * z.num_candidates * sizeof(Candidate)), "malloc");
        check(cudaMalloc(&b->cells, size_t(z.num_cells) * 9 * sizeof(double)), "malloc");
        check(cudaMalloc(&b->counts, size_t(z.num_cells) * sizeof(int)), "malloc");
    } catch (...) {
        cuda_free(b);
        throw;
    }
    return b;
}

void cuda_free(CudaBuffers* b) {
    if (!b)
        return;
    cudaFree(b->sx);
    cudaFree(b->sy);
    cudaFree(b->sz);
    cudaFree(b->lens);
    cudaFree(b->B);
    cudaFree(b->scores);
    cudaFree(b->cands);
    cudaFree(b->cells);
    cudaFree(b->counts);
    if (b->stream)
        cudaStreamDestroy(b->stream);
    delete b;
}

void cuda_upload_spots(CudaBuffers* b, const SpotsSoA& s) {
    size_t bytes = size_t(s.n) * sizeof(float);
    check(cudaMemcpyAsync(b->sx, s.x, bytes, cudaMemcpyHostToDevice, b->stream), "upload spots");
    check(cudaMemcpyAsync(b->sy, s.y, bytes, cudaMemcpyHostToDevice, b->stream), "upload spots");
    check(cudaMemcpyAsync(b->sz, s.z, bytes, cudaMemcpyHostToDevice, b->stream), "upload spots");
}

void cuda_directions(CudaBuffers* b, int n, const float* lens, int nlen, int num_dir, float trim2,
                     float* out) {
    check(cudaMemcpyAsync(b->lens, lens, nlen * sizeof(float), cudaMemcpyHostToDevice, b->stream), "upload");
    const int items = nlen * num_dir, threads = 256;
    k_directions<<<blocks(items, threads), threads, 0, b->stream>>>(b->sx, b->sy, b->sz, n, b->lens, nlen,
                                                                    num_dir, trim2, b->scores);
    check(cudaGetLastError(), "launch directions");
    check(cudaMemcpyAsync(out, b->scores, size_t(items) * sizeof(float), cudaMemcpyDeviceToHost, b->stream),
          "download");
    check(cudaStreamSynchronize(b->stream), "directions");
}

void cuda_refine_candidates(CudaBuffers* b, int n, Candidate* c, int nc, const float* vec_len, float trim2,
                            float step, int iterations) {
    check(cudaMemcpyAsync(b->lens, vec_len, 3 * sizeof(float), cudaMemcpyHostToDevice, b->stream), "upload");
    check(cudaMemcpyAsync(b->cands, c, nc * sizeof(Candidate), cudaMemcpyHostToDevice, b->stream), "upload");
    const int threads = 64;
    k_refine_candidates<<<blocks(nc, threads), threads, 0, b->stream>>>(b->sx, b->sy, b->sz, n, b->cands, nc,
                                                                        b->lens, trim2, step, iterations);
    check(cudaGetLastError(), "launch refine candidates");
    check(cudaMemcpyAsync(c, b->cands, nc * sizeof(Candidate), cudaMemcpyDeviceToHost, b->stream),
          "download");
    check(cudaStreamSynchronize(b->stream), "refine candidates");
}

void cuda_rotations(CudaBuffers* b, int n, const float* B, const Candidate* top, int ntop, int num_rot,
                    float trim2, float* out) {
    check(cudaMemcpyAsync(b->B, B, 9 * sizeof(float), cudaMemcpyHostToDevice, b->stream), "upload");
    check(cudaMemcpyAsync(b->cands, top, ntop * sizeof(Candidate), cudaMemcpyHostToDevice, b->stream),
          "upload");
    const int total = ntop * 2 * num_rot, threads = 256;
    k_rotations<<<blocks(total, threads), threads, 0, b->stream>>>(b->sx, b->sy, b->sz, n, b->B, b->cands,
                                                                   total, num_rot, trim2, b->scores);
    check(cudaGetLastError(), "launch rotations");
    check(cudaMemcpyAsync(out, b->scores, size_t(total) * sizeof(float), cudaMemcpyDeviceToHost, b->stream),
          "download");
    check(cudaStreamSynchronize(b->stream), "rotations");
}

void cuda_refine_cells(CudaBuffers* b, int n, double* cells, int ncells, const ToroThresholds& th,
                       int* counts) {
    check(cudaMemcpyAsync(b->cells, cells, size_t(ncells) * 9 * sizeof(double), cudaMemcpyHostToDevice,
                          b->stream),
          "upload");
    const int threads = 32;
    k_refine_cells<<<blocks(ncells, threads), threads, 0, b->stream>>>(
        b->sx, b->sy, b->sz, n, b->cells, ncells, th.refine_iterations, th.refine_threshold_start,
        th.refine_threshold_end, th.min_spots_ls, th.indexed_threshold, b->counts);
    check(cudaGetLastError(), "launch refine cells");
    check(cudaMemcpyAsync(cells, b->cells, size_t(ncells) * 9 * sizeof(double), cudaMemcpyDeviceToHost,
                          b->stream),
          "download");
    check(cudaMemcpyAsync(counts, b->counts, size_t(ncells) * sizeof(int), cudaMemcpyDeviceToHost, b->stream),
          "download");
    check(cudaStreamSynchronize(b->stream), "refine cells");
}

} // namespace jfjoch::toro
