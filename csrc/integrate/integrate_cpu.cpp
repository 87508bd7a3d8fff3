// CPU backend of the Bragg integration: loops over the per-reflection functions of integrate_impl.hpp.
// One call = one image = one thread (the caller runs images in parallel); all buffers are owned by the call.
#include <cstdint>
#include <vector>

#include "integrate/integrate.hpp"
#include "integrate/integrate_impl.hpp"

namespace jfjoch {

void integrate_detail::integrate_cpu(const Job& job, const IntegrationOutput& out) {
    using namespace integrate_impl;
    const ImageView im{job.image, job.mask, job.nx, job.ny, job.sat_threshold};
    const Params p = make_params(job.settings);
    for (int64_t k = 0; k < job.n; ++k) {
        const int32_t i = job.order[k];
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
