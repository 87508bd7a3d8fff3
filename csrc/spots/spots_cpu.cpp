// CPU backend of the spot finder: loops over the per-pixel functions of spots_impl.hpp.
//
// Strong pixels: one pass over the image with a summed-area table (SAT) of value, value^2 and valid
// count kept as a ring of 2w+2 table rows (the table rows a window needs), so each pixel costs O(1) and
// the work memory is a few hundred kB whatever the image size. Unsigned wrap-around sums keep the window
// differences exact (spots_impl.hpp). Labelling works on the sparse list of strong pixels (raster order)
// with a union-find, so nothing proportional to the image size is allocated.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

#include "spots/spots.hpp"
#include "spots/spots_impl.hpp"

namespace jfjoch {
namespace spots_detail {

using namespace spots_impl;

void validate(const SpotFinderSettings& s, int64_t nx, int64_t ny) {
    if (nx <= 0 || ny <= 0)
        throw std::invalid_argument("spot finder: empty image");
    if (s.window_half < 1 || s.window_half > kSpotMaxWindowHalf)
        throw std::invalid_argument("spot finder: window_half must be in 1.." +
                                    std::to_string(kSpotMaxWindowHalf));
    if (!(s.sigma >= 0))
        throw std::invalid_argument("spot finder: sigma must be >= 0");
    if (s.min_pixels < 1 || s.max_pixels < s.min_pixels)
        throw std::invalid_argument("spot finder: need 1 <= min_pixels <= max_pixels");
    if (!(s.min_isigma >= 0) || !std::isfinite(s.min_isigma))
        throw std::invalid_argument("spot finder: min_isigma must be a finite number >= 0");
    if (s.photon_threshold < 1)
        throw std::invalid_argument("spot finder: photon_threshold must be >= 1");
}

void strong_pixels_cpu(const int32_t* image, const uint8_t* flags, int64_t nx, int64_t ny, int32_t saturation,
                       const SpotFinderSettings& settings, StrongPixels& out) {
    validate(settings, nx, ny);
    const int64_t w = settings.window_half;
    const int64_t R = 2 * w + 2; // ring rows: S[y0] .. S[y1] with y1 - y0 <= 2w + 1
    const int64_t ncol = nx + 1;
    const int32_t sat_eff = effective_saturation(saturation);
    const int32_t threshold = settings.photon_threshold;
    const double sigma2 = double(settings.sigma) * double(settings.sigma);

    // Ring of SAT rows. Sums of value and count fit 32 bits over any window (|v| < 2^22, <= 441 pixels);
    // value^2 needs 64 bits. Row 0 of the table (all zero) sits in ring slot 0.
    std::vector<uint32_t> s1(R * ncol, 0u), sc(R * ncol, 0u);
    std::vector<uint64_t> s2(R * ncol, 0u);

    int64_t max_value = INT32_MIN, n_sat = 0, n_err = 0;
    int64_t built = 0; // SAT rows 0..built are in the ring

    // Appends SAT row r = built + 1 (image row built), and the statistics of that image row.
    auto build_next = [&]() {
        const int64_t yr = built;
        const uint32_t* p1 = &s1[(yr % R) * ncol];
        const uint32_t* pc = &sc[(yr % R) * ncol];
        const uint64_t* p2 = &s2[(yr % R) * ncol];
        uint32_t* q1 = &s1[((yr + 1) % R) * ncol];
        uint32_t* qc = &sc[((yr + 1) % R) * ncol];
        uint64_t* q2 = &s2[((yr + 1) % R) * ncol];
        const int32_t* row = image + yr * nx;
        const uint8_t* frow = flags + yr * nx;
        uint32_t a1 = 0, ac = 0;
        uint64_t a2 = 0;
        int32_t mx = INT32_MIN;
        int64_t ns = 0, ne = 0;
        q1[0] = 0;
        qc[0] = 0;
        q2[0] = 0;
        for (int64_t x = 0; x < nx; ++x) {
            const int32_t v = row[x];
            const uint8_t kind = classify_pixel(v, frow[x], sat_eff);
            const bool valid = kind == kValid;
            const int32_t vs = valid ? v : 0;
            a1 += uint32_t(vs);
            a2 += uint64_t(int64_t(vs) * vs);
            ac += valid ? 1u : 0u;
            q1[x + 1] = p1[x + 1] + a1;
            q2[x + 1] = p2[x + 1] + a2;
            qc[x + 1] = pc[x + 1] + ac;
            mx = valid && v > mx ? v : mx;
            ns += kind == kSaturated;
            ne += kind == kError;
        }
        max_value = std::max<int64_t>(max_value, mx);
        n_sat += ns;
        n_err += ne;
        ++built;
    };

    out.index.clear();
    out.value.clear();
    out.kind.clear();
    int64_t n_strong = 0;
    for (int64_t y = 0; y < ny; ++y) {
        const int64_t y0 = std::max<int64_t>(0, y - w), y1 = std::min<int64_t>(ny, y + w + 1);
        while (built < y1)
            build_next();
        const uint32_t* lo1 = &s1[(y0 % R) * ncol];
        const uint32_t* hi1 = &s1[(y1 % R) * ncol];
        const uint32_t* loc = &sc[(y0 % R) * ncol];
        const uint32_t* hic = &sc[(y1 % R) * ncol];
        const uint64_t* lo2 = &s2[(y0 % R) * ncol];
        const uint64_t* hi2 = &s2[(y1 % R) * ncol];
        const int32_t* row = image + y * nx;
        const uint8_t* frow = flags + y * nx;
        for (int64_t x = 0; x < nx; ++x) {
            const int32_t v = row[x];
            if (v < threshold) // cheap early-out: most pixels are background (is_candidate repeats it)
                continue;
            const uint8_t f = frow[x];
            const uint8_t kind = classify_pixel(v, f, sat_eff);
            if (kind == kSaturated && !(f & kSpotPixelOutOfRange)) {
                out.index.push_back(y * nx + x);
                out.value.push_back(v);
                out.kind.push_back(2);
                continue;
            }
            if (!is_candidate(v, kind, f, threshold))
                continue;
            const int64_t x0 = std::max<int64_t>(0, x - w), x1 = std::min<int64_t>(nx, x + w + 1);
            const int64_t sum = int32_t(sat_window(lo1, hi1, x0, x1));
            const int64_t sum2 = int64_t(sat_window(lo2, hi2, x0, x1));
            const int64_t n = int32_t(sat_window(loc, hic, x0, x1));
            if (strong_pixel_test(v, sum, sum2, n, sigma2)) {
                out.index.push_back(y * nx + x);
                out.value.push_back(v);
                out.kind.push_back(1);
                ++n_strong;
            }
        }
    }
    out.max_value = max_value;
    out.n_saturated = n_sat;
    out.n_error = n_err;
    out.n_strong = n_strong;
}

namespace {

int64_t find_root(std::vector<int64_t>& parent, int64_t i) {
    int64_t r = i;
    while (parent[r] != r)
        r = parent[r];
    while (parent[i] != r) { // path compression
        const int64_t next = parent[i];
        parent[i] = r;
        i = next;
    }
    return r;
}

// Union keeping the smaller list index as the root: the root of a component is its first pixel in raster
// order, which makes the output order independent of the union sequence.
void unite(std::vector<int64_t>& parent, int64_t a, int64_t b) {
    a = find_root(parent, a);
    b = find_root(parent, b);
    if (a == b)
        return;
    if (a < b)
        parent[b] = a;
    else
        parent[a] = b;
}

} // namespace

void spots_from_strong_pixels(const StrongPixels& sp, const int32_t* image, const uint8_t* flags, int64_t nx,
                              int64_t ny, int32_t saturation, const DetectorGeometry& geom,
                              const SpotFinderSettings& settings, SpotFinderResult& out) {
    const int64_t m = int64_t(sp.index.size());
    std::vector<int64_t> parent(m);
    std::iota(parent.begin(), parent.end(), int64_t(0));

    // 8-connectivity on the raster-ordered list: the left neighbour is the previous entry; the three
    // upper neighbours are found with a pointer that walks the previous row's entries.
    int64_t cur_row = -1, cur_start = 0, prev_row = -2, prev_start = 0, prev_end = 0, j = 0;
    for (int64_t i = 0; i < m; ++i) {
        const int64_t idx = sp.index[i];
        const int64_t y = idx / nx, x = idx - y * nx;
        if (y != cur_row) {
            prev_row = cur_row;
            prev_start = cur_start;
            prev_end = i;
            cur_row = y;
            cur_start = i;
            j = prev_start;
        }
        if (i > cur_start && sp.index[i - 1] == idx - 1)
            unite(parent, i, i - 1);
        if (prev_row == y - 1) {
            const int64_t lo = (y - 1) * nx + std::max<int64_t>(0, x - 1);
            const int64_t hi = (y - 1) * nx + std::min<int64_t>(nx - 1, x + 1);
            while (j < prev_end && sp.index[j] < lo)
                ++j;
            for (int64_t k = j; k < prev_end && sp.index[k] <= hi; ++k)
                unite(parent, i, k);
        }
    }

    // Accumulate per component (indexed by its root = first pixel).
    struct Acc {
        double w = 0, wx = 0, wy = 0;
        int64_t n = 0;
        SpotIsigmaTerms t;
    };
    const bool isigma_test = settings.min_isigma > 0;
    const int32_t sat_eff = effective_saturation(saturation);
    std::vector<int64_t> comp_of_root(m, -1);
    std::vector<Acc> acc;
    std::vector<int64_t> first;
    for (int64_t i = 0; i < m; ++i) {
        const int64_t r = find_root(parent, i);
        if (comp_of_root[r] < 0) {
            comp_of_root[r] = int64_t(acc.size());
            acc.emplace_back();
            first.push_back(sp.index[r]);
        }
        Acc& a = acc[comp_of_root[r]];
        const int64_t idx = sp.index[i];
        const int64_t y = idx / nx, x = idx - y * nx;
        const double wv = double(sp.value[i]);
        a.w += wv;
        a.wx += wv * double(x);
        a.wy += wv * double(y);
        a.n += 1;
        // the background of the pixel's window, read again (the same sums as the strong-pixel test)
        if (isigma_test) {
            if (sp.kind[i] == 2) {
                a.t.saturated = true;
            } else {
                int64_t sum, sum2, n, n_bg;
                double mean, var;
                if (sp.sum.empty()) {
                    direct_window_sums(image, flags, nx, ny, x, y, settings.window_half, sat_eff, sum, sum2,
                                       n);
                } else {
                    sum = sp.sum[size_t(i)];
                    sum2 = sp.sum2[size_t(i)];
                    n = sp.n[size_t(i)];
                }
                pixel_background(sp.value[i], sum, sum2, n, mean, var, n_bg);
                spot_isigma_add(a.t, sp.value[i], mean, var, n_bg);
            }
        }
    }

    struct Cand {
        Spot s;
        int64_t first;
    };
    std::vector<Cand> cands;
    cands.reserve(acc.size());
    for (size_t c = 0; c < acc.size(); ++c) {
        const Acc& a = acc[c];
        if (a.n < settings.min_pixels || a.n > settings.max_pixels || !(a.w > 0))
            continue;
        if (!spot_significant(a.t, a.n, settings.min_isigma))
            continue;
        const double cx = a.wx / a.w, cy = a.wy / a.w;
        const double d = pixel_to_resolution(geom, cx, cy);
        if (!resolution_ok(d, settings.high_resolution_A, settings.low_resolution_A))
            continue;
        Spot s;
        s.x = float(cx);
        s.y = float(cy);
        s.intensity = float(a.w);
        s.n_pixels = int32_t(a.n);
        s.d = float(d);
        s.ice_ring = ice_ring_flag(d, settings.ice_ring_width_q);
        cands.push_back({s, first[c]});
    }
    // Strongest first; equal intensities by raster position of the first pixel (deterministic).
    auto stronger = [](const Cand& a, const Cand& b) {
        if (a.s.intensity != b.s.intensity)
            return a.s.intensity > b.s.intensity;
        return a.first < b.first;
    };
    const size_t keep =
        settings.max_spots > 0 ? std::min(cands.size(), size_t(settings.max_spots)) : cands.size();
    std::partial_sort(cands.begin(), cands.begin() + keep, cands.end(), stronger);
    out.spots.clear();
    out.spots.reserve(keep);
    for (size_t i = 0; i < keep; ++i)
        out.spots.push_back(cands[i].s);
    out.max_value = sp.max_value;
    out.n_saturated = sp.n_saturated;
    out.n_error = sp.n_error;
    out.n_strong_pixels = sp.n_strong;
}

} // namespace spots_detail

void spot_pixel_flags(const uint8_t* mask, int64_t nx, int64_t ny, const DetectorGeometry& geom,
                      const SpotFinderSettings& settings, uint8_t* flags_out) {
    for (int64_t y = 0; y < ny; ++y)
        for (int64_t x = 0; x < nx; ++x) {
            const int64_t i = y * nx + x;
            const double d = pixel_to_resolution(geom, double(x), double(y));
            flags_out[i] = spots_impl::pixel_flag(mask != nullptr && mask[i] != 0, d,
                                                  settings.high_resolution_A, settings.low_resolution_A);
        }
}

} // namespace jfjoch
