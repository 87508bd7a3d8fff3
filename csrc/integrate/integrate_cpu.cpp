// CPU backend of the Bragg integration: loops over the per-reflection functions of integrate_impl.hpp.
// One call = one image = one thread (the caller runs images in parallel); all buffers are owned by the call.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "integrate/integrate.hpp"
#include "integrate/integrate_impl.hpp"

namespace jfjoch {

namespace {

/// Prefetch the image (and mask) rows of the box of radius r around (x, y): the boxes of reflections spread
/// over a large frame miss every cache level, and the per-pixel tests are too branchy for the processor to
/// overlap those misses by itself. Results do not depend on it.
void prefetch_box(const integrate_impl::ImageView& im, double x, double y, double r) {
    if (!integrate_impl::in_range(x, y, im.nx, im.ny, r))
        return;
    const int64_t c0 = std::max<int64_t>(int64_t(std::floor(x - r)), 0);
    const int64_t c1 = std::min<int64_t>(int64_t(std::ceil(x + r)), im.nx - 1);
    const int64_t w0 = std::max<int64_t>(int64_t(std::floor(y - r)), 0);
    const int64_t w1 = std::min<int64_t>(int64_t(std::ceil(y + r)), im.ny - 1);
    constexpr int64_t kLine = 64;
    for (int64_t row = w0; row <= w1; ++row) {
        const char* a = reinterpret_cast<const char*>(im.image + row * im.nx + c0);
        const char* b = reinterpret_cast<const char*>(im.image + row * im.nx + c1);
        for (const char* q = a; q <= b + kLine - 1; q += kLine)
            __builtin_prefetch(q);
        if (im.mask)
            __builtin_prefetch(im.mask + row * im.nx + c0);
    }
}

} // namespace

void integrate_detail::integrate_cpu(const Job& job, const IntegrationOutput& out) {
    using namespace integrate_impl;
    const ImageView im{job.image, job.mask, job.nx, job.ny, job.sat_threshold};
    const Params p = make_params(job.settings);
    constexpr int64_t kAhead = 2; // reflections prefetched ahead
    for (int64_t k = 0; k < std::min<int64_t>(kAhead, job.n); ++k)
        prefetch_box(im, job.x[job.order[k]], job.y[job.order[k]], p.r3);
    for (int64_t k = 0; k < job.n; ++k) {
        const int32_t i = job.order[k];
        if (k + kAhead < job.n)
            prefetch_box(im, job.x[job.order[k + kAhead]], job.y[job.order[k + kAhead]], p.r3);
        const int64_t b = job.nbr_offsets[i];
        const SumResult r = sum_one(im, p, job.x, job.y, i, job.nbr_indices + b, job.nbr_offsets[i + 1] - b);
        out.I_sum[i] = r.I;
        out.sigma_sum[i] = r.sigma;
        out.background[i] = r.bg;
        out.n_disc[i] = r.n_disc;
        out.n_background[i] = r.n_bg;
        out.flags[i] = r.flags;
        out.I_prf[i] = NAN;
        out.sigma_prf[i] = NAN;
    }
    if (!job.profile)
        return;

    std::vector<int64_t> ref_offsets;
    std::vector<int32_t> ref_indices;
    select_references(job, out, ref_offsets, ref_indices);
    const size_t G = size_t(2 * p.half + 1), cells = G * G;
    std::vector<double> cell_sum(size_t(job.n_groups) * cells, 0.0);
    std::vector<int32_t> cell_count(size_t(job.n_groups) * cells, 0);
    for (int32_t g = 0; g < job.n_groups; ++g)
        for (int64_t k = ref_offsets[size_t(g)]; k < ref_offsets[size_t(g) + 1]; ++k) {
            const int32_t i = ref_indices[size_t(k)];
            accumulate_one(im, p, job.x[i], job.y[i], out.I_sum[i], out.background[i],
                           cell_sum.data() + size_t(g) * cells, cell_count.data() + size_t(g) * cells, 0, 1);
        }
    std::vector<double> profiles, fit_radius;
    finalize_profiles(job, ref_offsets, cell_sum.data(), cell_count.data(), out, profiles, fit_radius);
    for (int64_t k = 0; k < job.n; ++k) {
        const int32_t i = job.order[k];
        const int32_t g = job.group[i];
        const double* prof = fit_radius[size_t(g)] >= 0.0 ? profiles.data() + size_t(g) * cells : nullptr;
        fit_reflection(im, p, prof, fit_radius[size_t(g)], job.x[i], job.y[i], out.I_sum[i], out.sigma_sum[i],
                       out.background[i], out.n_background[i], out.flags[i], out.I_prf[i], out.sigma_prf[i]);
    }
}

} // namespace jfjoch
