// Bragg integration: validation, the host-side steps shared by both backends (neighbour lists, reference
// selection, profile finalization) and the dispatch by backend.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "integrate/integrate.hpp"
#include "integrate/integrate_impl.hpp"

namespace jfjoch {

namespace {

[[noreturn]] void fail(const std::string& what) {
    throw std::invalid_argument("integration: " + what);
}

} // namespace

int32_t integration_profile_half(double r1, int32_t oversampling) {
    return int32_t(std::ceil(r1 * double(oversampling))) + 1;
}

void integration_validate(const IntegrationSettings& s) {
    if (!std::isfinite(s.r1) || !std::isfinite(s.r2) || !std::isfinite(s.r3))
        fail("radii must be finite");
    if (!(s.r1 > 0.0 && s.r1 < s.r2 && s.r2 < s.r3))
        fail("radii must satisfy 0 < r1 < r2 < r3 (got " + std::to_string(s.r1) + ", " +
             std::to_string(s.r2) + ", " + std::to_string(s.r3) + ")");
    if (s.r3 > kIntegrationMaxRadius)
        fail("r3 must be <= " + std::to_string(int(kIntegrationMaxRadius)) + " pixels");
    if (!(s.bg_clip_sigma > 0.0))
        fail("bg_clip_sigma must be > 0");
    if (s.min_background_pixels < 1)
        fail("min_background_pixels must be >= 1");
    if (!(s.profile_min_isigma >= 0.0) || !std::isfinite(s.profile_min_isigma))
        fail("profile_min_isigma must be >= 0");
    if (s.profile_min_reflections < 1)
        fail("profile_min_reflections must be >= 1");
    if (!(s.profile_multiplier > 0.0) || !std::isfinite(s.profile_multiplier))
        fail("profile_multiplier must be > 0");
    if (s.oversampling < 1 || s.oversampling > kIntegrationMaxOversampling)
        fail("oversampling must be in 1.." + std::to_string(kIntegrationMaxOversampling));
}

void integrate_detail::build_neighbours(const double* x, const double* y, int64_t n, int64_t nx, int64_t ny,
                                        const IntegrationSettings& s, std::vector<int64_t>& offsets,
                                        std::vector<int32_t>& indices) {
    const double reach = s.r1 + s.r3 + 0.5;
    const double reach_sq = reach * reach;
    // A neighbour matters only to a reflection that is integrated (in_range), so only predictions within
    // `reach` of that range enter the grid: [-r3 - 1 - reach, n + r3 + reach] on each axis.
    const double lo = -s.r3 - 1.0 - reach;
    const int64_t gx = int64_t(std::ceil((double(nx) + s.r3 + reach - lo) / reach)) + 1;
    const int64_t gy = int64_t(std::ceil((double(ny) + s.r3 + reach - lo) / reach)) + 1;
    auto cell_of = [&](double v) { return int64_t(std::floor((v - lo) / reach)); };
    std::vector<int64_t> cell(size_t(n), -1);
    std::vector<int64_t> start(size_t(gx * gy + 1), 0);
    for (int64_t i = 0; i < n; ++i) {
        if (!integrate_impl::is_finite(x[i]) || !integrate_impl::is_finite(y[i]))
            continue;
        const int64_t cx = cell_of(x[i]), cy = cell_of(y[i]);
        if (cx < 0 || cx >= gx || cy < 0 || cy >= gy)
            continue;
        cell[size_t(i)] = cy * gx + cx;
        ++start[size_t(cell[size_t(i)] + 1)];
    }
    for (size_t c = 1; c < start.size(); ++c)
        start[c] += start[c - 1];
    std::vector<int32_t> members(size_t(start.back()));
    {
        std::vector<int64_t> fill(start.begin(), start.end() - 1);
        for (int64_t i = 0; i < n; ++i) // ascending i within each cell
            if (cell[size_t(i)] >= 0)
                members[size_t(fill[size_t(cell[size_t(i)])]++)] = int32_t(i);
    }
    offsets.assign(size_t(n + 1), 0);
    indices.clear();
    std::vector<int32_t> found;
    for (int64_t i = 0; i < n; ++i) {
        offsets[size_t(i)] = int64_t(indices.size());
        if (cell[size_t(i)] < 0 || !integrate_impl::in_range(x[i], y[i], nx, ny, s.r3))
            continue;
        const int64_t cx = cell[size_t(i)] % gx, cy = cell[size_t(i)] / gx;
        found.clear();
        for (int64_t yy = std::max<int64_t>(cy - 1, 0); yy <= std::min<int64_t>(cy + 1, gy - 1); ++yy)
            for (int64_t xx = std::max<int64_t>(cx - 1, 0); xx <= std::min<int64_t>(cx + 1, gx - 1); ++xx) {
                const int64_t c = yy * gx + xx;
                for (int64_t k = start[size_t(c)]; k < start[size_t(c + 1)]; ++k) {
                    const int32_t j = members[size_t(k)];
                    if (j != i && integrate_impl::sq_dist(x[j] - x[i], y[j] - y[i]) <= reach_sq)
                        found.push_back(j);
                }
            }
        std::sort(found.begin(), found.end());
        indices.insert(indices.end(), found.begin(), found.end());
    }
    offsets[size_t(n)] = int64_t(indices.size());
}

void integrate_detail::spatial_order(const double* x, const double* y, int64_t n, int64_t nx, int64_t ny,
                                     double r3, std::vector<int32_t>& order) {
    std::vector<int64_t> key(static_cast<size_t>(n));
    std::vector<int64_t> start(static_cast<size_t>(ny) + 2, 0);
    for (int64_t i = 0; i < n; ++i) {
        int64_t k = ny; // not integrated: last
        if (integrate_impl::in_range(x[i], y[i], nx, ny, r3))
            k = std::min<int64_t>(std::max<int64_t>(int64_t(std::floor(y[i])), 0), ny - 1);
        key[size_t(i)] = k;
        ++start[size_t(k) + 1];
    }
    for (size_t k = 1; k < start.size(); ++k)
        start[k] += start[k - 1];
    order.assign(size_t(n), 0);
    for (int64_t i = 0; i < n; ++i)
        order[size_t(start[size_t(key[size_t(i)])]++)] = int32_t(i);
}

void integrate_detail::select_references(const Job& job, const IntegrationOutput& out,
                                         std::vector<int64_t>& offsets, std::vector<int32_t>& indices) {
    offsets.assign(size_t(job.n_groups) + 1, 0);
    const double min_isigma = job.settings.profile_min_isigma;
    for (int64_t i = 0; i < job.n; ++i)
        if (integrate_impl::is_reference(out.flags[i], out.I_sum[i], out.sigma_sum[i], min_isigma))
            ++offsets[size_t(job.group[i]) + 1];
    for (size_t g = 1; g < offsets.size(); ++g)
        offsets[g] += offsets[g - 1];
    indices.assign(size_t(offsets.back()), 0);
    std::vector<int64_t> fill(offsets.begin(), offsets.end() - 1);
    for (int64_t k = 0; k < job.n; ++k) { // visiting order: neighbouring references read neighbouring rows
        const int32_t i = job.order[k];
        if (integrate_impl::is_reference(out.flags[i], out.I_sum[i], out.sigma_sum[i], min_isigma))
            indices[size_t(fill[size_t(job.group[i])]++)] = i;
    }
}

void integrate_detail::finalize_profiles(const Job& job, const std::vector<int64_t>& ref_offsets,
                                         const double* cell_sum, const int32_t* cell_count,
                                         const IntegrationOutput& out, std::vector<double>& profiles,
                                         std::vector<double>& fit_radius) {
    const IntegrationSettings& s = job.settings;
    const integrate_impl::Params p = integrate_impl::make_params(s);
    const size_t G = size_t(2 * p.half + 1), cells = G * G, ng = size_t(job.n_groups);
    std::vector<double> tmp(cells), gsum(cells, 0.0), gval(cells);
    std::vector<int32_t> gcount(cells, 0);
    std::vector<uint8_t> have(cells), have_tmp(cells);
    profiles.assign(ng * cells, 0.0);
    fit_radius.assign(ng, -1.0);
    // global profile: the groups' sums added in group order (deterministic)
    for (size_t g = 0; g < ng; ++g)
        for (size_t c = 0; c < cells; ++c) {
            gsum[c] += cell_sum[g * cells + c];
            gcount[c] += cell_count[g * cells + c];
        }
    const int64_t n_total = ref_offsets[ng];
    bool need_global = false; // only when a group has too few references of its own
    for (size_t g = 0; g < ng; ++g)
        need_global = need_global || ref_offsets[g + 1] - ref_offsets[g] < s.profile_min_reflections;
    double global_width = NAN;
    if (need_global && n_total >= s.profile_min_reflections)
        global_width = integrate_impl::finalize_profile(gsum.data(), gcount.data(), p, gval.data(),
                                                        tmp.data(), have.data(), have_tmp.data());
    for (size_t g = 0; g < ng; ++g) {
        const int64_t n_ref = ref_offsets[g + 1] - ref_offsets[g];
        double* prof = profiles.data() + g * cells;
        int32_t source = kProfileNone;
        double width = NAN;
        if (n_ref >= s.profile_min_reflections) {
            width = integrate_impl::finalize_profile(cell_sum + g * cells, cell_count + g * cells, p, prof,
                                                     tmp.data(), have.data(), have_tmp.data());
            if (std::isfinite(width))
                source = kProfileOwn;
        }
        if (source == kProfileNone && std::isfinite(global_width)) {
            std::copy(gval.begin(), gval.end(), prof);
            width = global_width;
            source = kProfileGlobal;
        }
        if (source == kProfileNone) {
            std::fill(prof, prof + cells, 0.0);
            width = NAN;
        } else {
            fit_radius[g] = std::min(s.r1, s.profile_multiplier * width / 2.0);
        }
        if (out.profiles)
            std::copy(prof, prof + cells, out.profiles + g * cells);
        if (out.profile_width)
            out.profile_width[g] = width;
        if (out.profile_n_reference)
            out.profile_n_reference[g] = int32_t(n_ref);
        if (out.profile_source)
            out.profile_source[g] = source;
    }
}

void integrate_image(const int32_t* image, const uint8_t* mask, int64_t nx, int64_t ny, double saturation,
                     const double* x, const double* y, const int32_t* group, int64_t n, int32_t n_groups,
                     const IntegrationSettings& settings, bool profile, const IntegrationOutput& out,
                     Backend backend) {
    integration_validate(settings);
    if (nx < 1 || ny < 1)
        fail("image size must be positive");
    if (n < 0 || n > int64_t(INT32_MAX))
        fail("number of reflections out of range");
    if (n_groups < 1)
        fail("n_groups must be >= 1");
    if (!out.I_sum || !out.sigma_sum || !out.I_prf || !out.sigma_prf || !out.background || !out.n_disc ||
        !out.n_background || !out.flags)
        fail("missing per-reflection output array");
    std::vector<int32_t> group0;
    if (group == nullptr) {
        group0.assign(size_t(n), 0);
        group = group0.data();
    } else {
        for (int64_t i = 0; i < n; ++i)
            if (group[i] < 0 || group[i] >= n_groups)
                fail("group " + std::to_string(group[i]) + " of reflection " + std::to_string(i) +
                     " is outside 0.." + std::to_string(n_groups - 1));
    }
    const bool cuda = use_cuda(backend, "integration");
    std::vector<int64_t> nbr_offsets;
    std::vector<int32_t> nbr_indices;
    integrate_detail::build_neighbours(x, y, n, nx, ny, settings, nbr_offsets, nbr_indices);
    std::vector<int32_t> order;
    integrate_detail::spatial_order(x, y, n, nx, ny, settings.r3, order);
    integrate_detail::Job job;
    job.image = image;
    job.mask = mask;
    job.nx = nx;
    job.ny = ny;
    job.sat_threshold = (saturation > 0.0 && std::isfinite(saturation) && saturation <= 2147483647.0)
                            ? int64_t(std::ceil(saturation))
                            : INT64_MAX;
    job.x = x;
    job.y = y;
    job.group = group;
    job.n = n;
    job.n_groups = n_groups;
    job.order = order.data();
    job.nbr_offsets = nbr_offsets.data();
    job.nbr_indices = nbr_indices.data();
    job.settings = settings;
    job.profile = profile;
    if (cuda)
        integrate_detail::integrate_cuda(job, out);
    else
        integrate_detail::integrate_cpu(job, out);
}

#ifndef JFJOCH_WITH_CUDA
void integrate_detail::integrate_cuda(const Job&, const IntegrationOutput&) {
    throw std::runtime_error("integration: this build has no CUDA backend");
}
#endif

} // namespace jfjoch
