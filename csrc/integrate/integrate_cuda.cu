// CUDA backend of the Bragg integration: memory handling and launches only. The per-reflection work is the
// same JFJOCH_HD functions the CPU backend runs (integrate_impl.hpp); the host steps between the kernels
// (reference selection, profile finalization) are the shared ones of integrate.cpp.
//  1. summation: one thread per reflection;
//  2. profile accumulation: one block per group, looping over the group's references in list order with
//     __syncthreads() between them; the lanes of a block split one reference's pixels, each cell being
//     written by one lane only, so every cell sums in the same order as on the CPU (deterministic);
//  3. profile fit: one thread per reflection.
// Everything is allocated and copied per call (reentrant; the caller's host arrays are the only state).
#include <cuda_runtime.h>

#include "core/cuda_util.cuh"

#include <cstdint>
#include <vector>

#include "integrate/integrate.hpp"
#include "integrate/integrate_impl.hpp"

namespace jfjoch {
namespace {

using namespace integrate_impl;
using cuda::DeviceBuffer;
using cuda::Stream;

constexpr int kBlock = 128;

void check(cudaError_t e, const char* what) {
    cuda::check(e, "integration (CUDA)", what);
}

template <typename T>
void upload(DeviceBuffer<T>& d, const T* h, size_t n, const Stream& s, const char* what) {
    if (n > 0)
        check(cudaMemcpyAsync(d.p, h, n * sizeof(T), cudaMemcpyHostToDevice, s.s), what);
}
template <typename T>
void download(T* h, const DeviceBuffer<T>& d, size_t n, const Stream& s, const char* what) {
    if (n > 0)
        check(cudaMemcpyAsync(h, d.p, n * sizeof(T), cudaMemcpyDeviceToHost, s.s), what);
}

unsigned grid_for(int64_t n) {
    return unsigned((n + kBlock - 1) / kBlock);
}

__global__ void sum_kernel(ImageView im, Params p, const double* x, const double* y, const int32_t* order,
                           int64_t n, const int64_t* nbr_offsets, const int32_t* nbr_indices, double* I,
                           double* sigma, double* bg, int32_t* n_disc, int32_t* n_bg, uint32_t* flags) {
    const int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (k >= n)
        return;
    const int32_t i = order[k]; // neighbouring threads read neighbouring image rows
    const int64_t b = nbr_offsets[i];
    const SumResult r = sum_one(im, p, x, y, i, nbr_indices + b, nbr_offsets[i + 1] - b);
    I[i] = r.I;
    sigma[i] = r.sigma;
    bg[i] = r.bg;
    n_disc[i] = r.n_disc;
    n_bg[i] = r.n_bg;
    flags[i] = r.flags;
}

__global__ void accumulate_kernel(ImageView im, Params p, const double* x, const double* y, const double* I,
                                  const double* bg, const int64_t* ref_offsets, const int32_t* ref_indices,
                                  double* cell_sum, int32_t* cell_count) {
    const int64_t g = blockIdx.x;
    const int64_t cells = int64_t(2 * p.half + 1) * (2 * p.half + 1);
    double* s = cell_sum + g * cells;
    int32_t* c = cell_count + g * cells;
    for (int64_t k = ref_offsets[g]; k < ref_offsets[g + 1]; ++k) {
        const int32_t i = ref_indices[k];
        accumulate_one(im, p, x[i], y[i], I[i], bg[i], s, c, int32_t(threadIdx.x), int32_t(blockDim.x));
        __syncthreads();
    }
}

__global__ void fit_kernel(ImageView im, Params p, const double* x, const double* y, const int32_t* group,
                           const int32_t* order, int64_t n, const double* profiles, const double* fit_radius,
                           const double* I_sum, const double* sigma_sum, const double* bg,
                           const int32_t* n_bg, uint32_t* flags, double* I_prf, double* sigma_prf) {
    const int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (k >= n)
        return;
    const int32_t i = order[k];
    const int64_t cells = int64_t(2 * p.half + 1) * (2 * p.half + 1);
    const int32_t g = group[i];
    const double* prof = fit_radius[g] >= 0.0 ? profiles + g * cells : nullptr;
    uint32_t f = flags[i];
    double ip, sp;
    fit_reflection(im, p, prof, fit_radius[g], x[i], y[i], I_sum[i], sigma_sum[i], bg[i], n_bg[i], f, ip, sp);
    flags[i] = f;
    I_prf[i] = ip;
    sigma_prf[i] = sp;
}

} // namespace

void integrate_detail::integrate_cuda(const Job& job, const IntegrationOutput& out) {
    const size_t n = size_t(job.n), npix = size_t(job.nx * job.ny), n_nbr = size_t(job.nbr_offsets[job.n]);
    const Params p = make_params(job.settings);
    const size_t cells = size_t(2 * p.half + 1) * size_t(2 * p.half + 1), ng = size_t(job.n_groups);
    for (size_t i = 0; i < n; ++i) { // not fitted unless the profile stage says otherwise
        out.I_prf[i] = NAN;
        out.sigma_prf[i] = NAN;
    }
    if (n == 0 && !job.profile)
        return;
    Stream stream;
    DeviceBuffer<int32_t> d_image(npix);
    DeviceBuffer<uint8_t> d_mask(job.mask ? npix : 0);
    DeviceBuffer<double> d_x(n), d_y(n), d_I(n), d_sigma(n), d_bg(n), d_Iprf(n), d_sprf(n);
    DeviceBuffer<int32_t> d_group(n), d_order(n), d_ndisc(n), d_nbg(n), d_nbr_idx(n_nbr);
    DeviceBuffer<int64_t> d_nbr_off(n + 1);
    DeviceBuffer<uint32_t> d_flags(n);
    upload(d_image, job.image, npix, stream, "copy image");
    if (job.mask)
        upload(d_mask, job.mask, npix, stream, "copy mask");
    upload(d_x, job.x, n, stream, "copy x");
    upload(d_y, job.y, n, stream, "copy y");
    upload(d_group, job.group, n, stream, "copy groups");
    upload(d_order, job.order, n, stream, "copy order");
    upload(d_nbr_off, job.nbr_offsets, n + 1, stream, "copy neighbour offsets");
    upload(d_nbr_idx, job.nbr_indices, n_nbr, stream, "copy neighbours");
    const ImageView im{d_image.p, job.mask ? d_mask.p : nullptr, job.nx, job.ny, job.sat_threshold};

    if (n > 0) {
        sum_kernel<<<grid_for(job.n), kBlock, 0, stream.s>>>(im, p, d_x.p, d_y.p, d_order.p, job.n,
                                                             d_nbr_off.p, d_nbr_idx.p, d_I.p, d_sigma.p,
                                                             d_bg.p, d_ndisc.p, d_nbg.p, d_flags.p);
        check(cudaGetLastError(), "summation kernel launch");
    }
    download(out.I_sum, d_I, n, stream, "copy I_sum");
    download(out.sigma_sum, d_sigma, n, stream, "copy sigma_sum");
    download(out.background, d_bg, n, stream, "copy background");
    download(out.n_disc, d_ndisc, n, stream, "copy n_disc");
    download(out.n_background, d_nbg, n, stream, "copy n_background");
    download(out.flags, d_flags, n, stream, "copy flags");
    check(cudaStreamSynchronize(stream.s), "synchronize (summation)");
    if (!job.profile)
        return;

    std::vector<int64_t> ref_offsets;
    std::vector<int32_t> ref_indices;
    select_references(job, out, ref_offsets, ref_indices);
    DeviceBuffer<int64_t> d_ref_off(ng + 1);
    DeviceBuffer<int32_t> d_ref_idx(ref_indices.size());
    DeviceBuffer<double> d_cell_sum(ng * cells);
    DeviceBuffer<int32_t> d_cell_count(ng * cells);
    upload(d_ref_off, ref_offsets.data(), ng + 1, stream, "copy reference offsets");
    upload(d_ref_idx, ref_indices.data(), ref_indices.size(), stream, "copy references");
    check(cudaMemsetAsync(d_cell_sum.p, 0, ng * cells * sizeof(double), stream.s), "clear cell sums");
    check(cudaMemsetAsync(d_cell_count.p, 0, ng * cells * sizeof(int32_t), stream.s), "clear cell counts");
    accumulate_kernel<<<unsigned(ng), kBlock, 0, stream.s>>>(im, p, d_x.p, d_y.p, d_I.p, d_bg.p, d_ref_off.p,
                                                             d_ref_idx.p, d_cell_sum.p, d_cell_count.p);
    check(cudaGetLastError(), "accumulation kernel launch");
    std::vector<double> cell_sum(ng * cells);
    std::vector<int32_t> cell_count(ng * cells);
    download(cell_sum.data(), d_cell_sum, ng * cells, stream, "copy cell sums");
    download(cell_count.data(), d_cell_count, ng * cells, stream, "copy cell counts");
    check(cudaStreamSynchronize(stream.s), "synchronize (accumulation)");

    std::vector<double> profiles, fit_radius;
    finalize_profiles(job, ref_offsets, cell_sum.data(), cell_count.data(), out, profiles, fit_radius);
    if (n == 0)
        return;
    DeviceBuffer<double> d_profiles(ng * cells), d_fit_radius(ng);
    upload(d_profiles, profiles.data(), ng * cells, stream, "copy profiles");
    upload(d_fit_radius, fit_radius.data(), ng, stream, "copy fit radii");
    fit_kernel<<<grid_for(job.n), kBlock, 0, stream.s>>>(im, p, d_x.p, d_y.p, d_group.p, d_order.p, job.n,
                                                         d_profiles.p, d_fit_radius.p, d_I.p, d_sigma.p,
                                                         d_bg.p, d_nbg.p, d_flags.p, d_Iprf.p, d_sprf.p);
    check(cudaGetLastError(), "fit kernel launch");
    download(out.flags, d_flags, n, stream, "copy flags");
    download(out.I_prf, d_Iprf, n, stream, "copy I_prf");
    download(out.sigma_prf, d_sprf, n, stream, "copy sigma_prf");
    check(cudaStreamSynchronize(stream.s), "synchronize (fit)");
}

} // namespace jfjoch
