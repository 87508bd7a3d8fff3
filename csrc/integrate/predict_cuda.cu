// CUDA backend of stills prediction: memory handling and launches only. One thread per line runs the same
// JFJOCH_HD still_line() as the CPU: a counting pass, a prefix sum on the host, then a writing pass at
// each line's offset, so the output order equals the CPU's.
#include <cuda_runtime.h>

#include "core/cuda_util.cuh"

#include <cmath>
#include <vector>

#include "integrate/predict.hpp"
#include "integrate/predict_impl.hpp"

namespace jfjoch {
namespace {

using namespace predict_impl;

struct CountSink {
    int32_t n = 0;
    __device__ void operator()(int, int, int, double, double, double, double, double, double) { ++n; }
};

struct DeviceRows {
    int32_t *h, *k, *l;
    double *x, *y, *d, *eps, *part, *lp;
};

struct WriteSink {
    DeviceRows rows;
    int64_t pos;
    __device__ void operator()(int h, int k, int l, double x, double y, double d, double eps, double part,
                               double lp) {
        rows.h[pos] = h;
        rows.k[pos] = k;
        rows.l[pos] = l;
        rows.x[pos] = x;
        rows.y[pos] = y;
        rows.d[pos] = d;
        rows.eps[pos] = eps;
        rows.part[pos] = part;
        rows.lp[pos] = lp;
        ++pos;
    }
};

__global__ void count_kernel(ExperimentGeometry g, LineSetup su, StillPredictionSettings s, long long n_lines,
                             int32_t* counts) {
    const long long line = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (line >= n_lines)
        return;
    CountSink sink;
    still_line(g, su, s, line, sink);
    counts[line] = sink.n;
}

__global__ void write_kernel(ExperimentGeometry g, LineSetup su, StillPredictionSettings s, long long n_lines,
                             const int64_t* offsets, DeviceRows rows) {
    const long long line = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (line >= n_lines)
        return;
    WriteSink sink{rows, offsets[line]};
    still_line(g, su, s, line, sink);
}

} // namespace

namespace predict_detail {

Predictions predict_still_cuda(const ExperimentGeometry& g, const Mat3d& A,
                               const StillPredictionSettings& s) {
    const char* fam = "prediction";
    const LineSetup su = make_line_setup(A, s.d_min_A, s.d_max_A);
    const long long n_lines = line_count(su);
    Predictions out;
    if (n_lines <= 0)
        return out;
    cuda::Stream stream;
    cuda::DeviceBuffer<int32_t> d_counts{static_cast<size_t>(n_lines)};
    const int threads = 128;
    const unsigned blocks = unsigned((n_lines + threads - 1) / threads);
    count_kernel<<<blocks, threads, 0, stream.s>>>(g, su, s, n_lines, d_counts.p);
    cuda::check(cudaGetLastError(), fam, "count kernel");
    std::vector<int32_t> counts(static_cast<size_t>(n_lines));
    cuda::check(cudaMemcpyAsync(counts.data(), d_counts.p, counts.size() * sizeof(int32_t),
                                cudaMemcpyDeviceToHost, stream.s),
                fam, "copy counts");
    cuda::check(cudaStreamSynchronize(stream.s), fam, "synchronize");
    std::vector<int64_t> offsets(static_cast<size_t>(n_lines));
    int64_t total = 0;
    for (long long i = 0; i < n_lines; ++i) {
        offsets[size_t(i)] = total;
        total += counts[size_t(i)];
    }
    if (total == 0)
        return out;
    cuda::DeviceBuffer<int64_t> d_off{static_cast<size_t>(n_lines)};
    const size_t nt = static_cast<size_t>(total);
    cuda::DeviceBuffer<int32_t> dh{nt}, dk{nt}, dl{nt};
    cuda::DeviceBuffer<double> dx{nt}, dy{nt}, dd{nt}, de{nt}, dp{nt}, dlp{nt};
    cuda::check(cudaMemcpyAsync(d_off.p, offsets.data(), offsets.size() * sizeof(int64_t),
                                cudaMemcpyHostToDevice, stream.s),
                fam, "copy offsets");
    DeviceRows rows{dh.p, dk.p, dl.p, dx.p, dy.p, dd.p, de.p, dp.p, dlp.p};
    write_kernel<<<blocks, threads, 0, stream.s>>>(g, su, s, n_lines, d_off.p, rows);
    cuda::check(cudaGetLastError(), fam, "write kernel");
    const size_t n = size_t(total);
    out.h.resize(n);
    out.k.resize(n);
    out.l.resize(n);
    out.x.resize(n);
    out.y.resize(n);
    out.d.resize(n);
    out.eps.resize(n);
    out.partiality.resize(n);
    out.lp.resize(n);
    auto copy = [&](void* dst, const void* src, size_t bytes) {
        cuda::check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream.s), fam, "copy rows");
    };
    copy(out.h.data(), dh.p, n * sizeof(int32_t));
    copy(out.k.data(), dk.p, n * sizeof(int32_t));
    copy(out.l.data(), dl.p, n * sizeof(int32_t));
    copy(out.x.data(), dx.p, n * sizeof(double));
    copy(out.y.data(), dy.p, n * sizeof(double));
    copy(out.d.data(), dd.p, n * sizeof(double));
    copy(out.eps.data(), de.p, n * sizeof(double));
    copy(out.partiality.data(), dp.p, n * sizeof(double));
    copy(out.lp.data(), dlp.p, n * sizeof(double));
    cuda::check(cudaStreamSynchronize(stream.s), fam, "synchronize");
    out.phi.assign(n, NAN);
    out.zeta.assign(n, 1.0);
    out.event.assign(n, -1);
    return out;
}

} // namespace predict_detail
} // namespace jfjoch
