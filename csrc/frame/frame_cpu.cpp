// CPU backend of the frame pass: one sweep over the rows, looping over the per-pixel functions of
// frame_impl.hpp / spots_impl.hpp / azint_impl.hpp (docs/frame_pass.md).
//
// Row r enters once: it is classified for the spot finder (valid value and valid flag into a ring of
// 2w + 2 rows, statistics), integrated azimuthally, and added to running column sums of value, value^2
// and valid count over the 2w + 1 rows of the window (the row that leaves is subtracted in the same
// loop). The strong-pixel test of row y runs when row y + w has entered: a candidate's window sums are
// the sums of 2w + 1 column sums. Everything a row touches stays in cache; work memory is a few hundred kB.
//
// The hot row loops are compiled twice (AVX2 and the baseline instruction set, chosen at run time); they
// use no fused multiply-add and no reassociation, so both versions give the same bits.
#include <algorithm>
#include <cstring>
#include <vector>

#include "frame/frame.hpp"
#include "frame/frame_impl.hpp"

#if defined(__x86_64__) && defined(__ELF__) && (defined(__GNUC__) || defined(__clang__))
#define JFJOCH_ROW_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define JFJOCH_ROW_CLONES
#endif
#define RESTRICT __restrict__ // row buffers never overlap

namespace jfjoch {
namespace frame_detail {

using namespace frame_impl;
using namespace spots_impl;

namespace {

constexpr int64_t kLanes = 16; // partial sums per azimuthal run (azint_run_sum)
constexpr int64_t kChunk = 64; // candidate search: pixels tested together before any branch

/// Statistics of the classified rows (spot finder's image statistics).
struct RowStats {
    int32_t max_value = INT32_MIN;
    int64_t n_saturated = 0, n_error = 0;
};

// GCC/Clang vector extensions: one AVX2 register each (two SSE2 registers in the baseline version). The
// vector loops restate the per-pixel functions of frame_impl.hpp lane by lane (comparisons give -1 / 0
// lane masks); the row tails call those functions, and the tests compare both with the separate kernels.
typedef int32_t V8i __attribute__((vector_size(32)));
typedef int32_t V4s __attribute__((vector_size(16)));
typedef float V4f __attribute__((vector_size(16)));
typedef double V4d __attribute__((vector_size(32)));
typedef int64_t V4i __attribute__((vector_size(32)));
typedef float V8f __attribute__((vector_size(32)));
typedef double V8d __attribute__((vector_size(64)));

template <typename V, typename T> inline void load(V& v, const T* p) {
    std::memcpy(&v, p, sizeof(V));
}
template <typename V, typename T> inline void store(T* p, const V& v) {
    std::memcpy(p, &v, sizeof(V));
}

/// Spot-finder classification of one row into its ring slot: the raw values, ok = -1 for a pixel valid
/// for the window sums (frame_impl::spot_valid), 0 otherwise (masked runs: 0); the row's statistics; and
/// returns the number of unmasked pixels at or above `threshold` (the strong-pixel test's early-out).
/// fend / fid: the row's runs of constant flags.
JFJOCH_ROW_CLONES int64_t classify_row(const int32_t* RESTRICT row, const int32_t* fend, const uint8_t* fid,
                                       int64_t n_runs, int32_t sat_eff, int32_t threshold,
                                       int32_t* RESTRICT v_out, int32_t* RESTRICT ok, RowStats& st) {
    int64_t x0 = 0;
    int32_t mx = st.max_value;
    int64_t n_err = 0, n_sat = 0, n_cand = 0;
    const V8i neg = V8i{} - kSpotMaxValue, sat = V8i{} + sat_eff, lowest = V8i{} + INT32_MIN,
              thr = V8i{} + (threshold - 1);
    for (int64_t k = 0; k < n_runs; ++k) {
        const int64_t x1 = fend[k];
        if (fid[k] & kSpotPixelInvalid) {
            std::memcpy(v_out + x0, row + x0, size_t(x1 - x0) * sizeof(int32_t));
            std::memset(ok + x0, 0, size_t(x1 - x0) * sizeof(int32_t));
            x0 = x1;
            continue;
        }
        V8i m = lowest, e = {}, s = {}, c = {};
        int64_t x = x0;
        for (; x + 8 <= x1; x += 8) {
            V8i v;
            load(v, row + x);
            store(v_out + x, v);
            const V8i er = v <= neg;         // spot_valid: err
            const V8i sa = ~er & (v >= sat); // sat
            const V8i o = ~(er | sa);        // ok
            store(ok + x, o);
            const V8i val = (v & o) | (lowest & ~o); // o ? v : INT32_MIN
            const V8i gt = val > m;
            m = (val & gt) | (m & ~gt);
            e -= er;
            s -= sa;
            c -= v > thr;
        }
        for (int l = 0; l < 8; ++l) {
            mx = std::max(mx, m[l]);
            n_err += e[l];
            n_sat += s[l];
            n_cand += c[l];
        }
        for (; x < x1; ++x) {
            const int32_t v = row[x];
            int32_t vv, o, er, sa;
            spot_valid(v, sat_eff, vv, o, er, sa);
            v_out[x] = v;
            ok[x] = -o;
            mx = std::max(mx, o ? v : INT32_MIN);
            n_err += er;
            n_sat += sa;
            n_cand += v >= threshold;
        }
        x0 = x1;
    }
    st.max_value = mx;
    st.n_error += n_err;
    st.n_saturated += n_sat;
    return n_cand;
}

/// Column sums of the window: add row `in`, subtract row `out` (raw values and ok masks of ring slots;
/// either may be the zero row). A pixel enters the sums as v & ok (frame_impl::spot_valid's vs).
JFJOCH_ROW_CLONES void update_columns(const int32_t* RESTRICT v_in, const int32_t* RESTRICT ok_in,
                                      const int32_t* RESTRICT v_out, const int32_t* RESTRICT ok_out,
                                      uint32_t* RESTRICT c1, uint32_t* RESTRICT cn, int64_t nx) {
    for (int64_t x = 0; x < nx; ++x) {
        c1[x] += uint32_t((v_in[x] & ok_in[x]) - (v_out[x] & ok_out[x]));
        cn[x] += uint32_t(ok_out[x] - ok_in[x]); // ok = -1 for a valid pixel
    }
}

/// The same for the column sums of value^2 (kept only while rows have many candidates).
JFJOCH_ROW_CLONES void update_columns2(const int32_t* RESTRICT v_in, const int32_t* RESTRICT ok_in,
                                       const int32_t* RESTRICT v_out, const int32_t* RESTRICT ok_out,
                                       uint64_t* RESTRICT c2, int64_t nx) {
    for (int64_t x = 0; x < nx; ++x) {
        const int32_t a = v_in[x] & ok_in[x], b = v_out[x] & ok_out[x]; // |a|, |b| < 2^22
        c2[x] += uint64_t(int64_t(a - b) * int64_t(a + b));             // a^2 - b^2, exact
    }
}

/// Column sums of value^2 from scratch over the window's rows (ring slots).
JFJOCH_ROW_CLONES void rebuild_columns2(const int32_t* const* v, const int32_t* const* ok, int64_t n_rows,
                                        uint64_t* RESTRICT c2, int64_t nx) {
    std::memset(c2, 0, size_t(nx) * sizeof(uint64_t));
    for (int64_t r = 0; r < n_rows; ++r) {
        const int32_t* RESTRICT vr = v[r];
        const int32_t* RESTRICT okr = ok[r];
        for (int64_t x = 0; x < nx; ++x) {
            const int64_t a = vr[x] & okr[x];
            c2[x] += uint64_t(a * a);
        }
    }
}

/// Sum of value^2 over columns [x0, x1) of the window's rows, read directly (sparse rows).
inline int64_t window_sum2(const int32_t* const* v, const int32_t* const* ok, int64_t n_rows, int64_t x0,
                           int64_t x1) {
    uint64_t s = 0;
    for (int64_t r = 0; r < n_rows; ++r)
        for (int64_t x = x0; x < x1; ++x) {
            const int64_t a = v[r][x] & ok[r][x];
            s += uint64_t(a * a);
        }
    return int64_t(s);
}

/// Corrected values of one row (d, 0 where the value does not count); returns whether an integrated pixel
/// of the row does not count (then the runs count their pixels one by one). w_next: weights to prefetch.
JFJOCH_ROW_CLONES bool azint_terms(const int32_t* RESTRICT row, const float* RESTRICT w, const float* w_next,
                                   int64_t nx, int32_t max_value, double* RESTRICT d) {
    const V4s lowest = V4s{} + INT32_MIN, maxv = V4s{} + max_value;
    V4s bad = {};
    int64_t x = 0;
    for (; x + 8 <= nx; x += 8) {
        __builtin_prefetch(w_next + x); // the weights stream from memory: fetch a row ahead
        for (int64_t h = 0; h < 8; h += 4) {
            V4s v;
            V4f wf;
            load(v, row + x + h);
            load(wf, w + x + h);
            const V4s o = (v != lowest) & (v <= maxv); // azint_term: ok
            const V4d t = __builtin_convertvector(V4s(v & o), V4d) * __builtin_convertvector(wf, V4d);
            store(d + x + h, t);
            bad |= ~o & (wf != 0.0f);
        }
    }
    int32_t any = bad[0] | bad[1] | bad[2] | bad[3];
    for (; x < nx; ++x) {
        int32_t o;
        d[x] = azint_term(row[x], w[x], max_value, o);
        any |= !o & (w[x] != 0.0f);
    }
    return any != 0;
}

/// Lane masks of a last, partial step: kTailMask[r] keeps lanes 0 .. r-1 of the kLanes.
struct TailMasks {
    alignas(32) int64_t m[kLanes + 1][kLanes];
    TailMasks() {
        for (int64_t r = 0; r <= kLanes; ++r)
            for (int64_t l = 0; l < kLanes; ++l)
                m[r][l] = l < r ? int64_t(-1) : int64_t(0);
    }
};
const TailMasks kTailMask;

/// a += p[0..3] (the helpers take and give vectors by reference: no dependence on the vector ABI).
inline void add4(V4d& a, const double* p) {
    V4d v;
    load(v, p);
    a += v;
}

/// a += p[0..3] where mask is all ones, + 0 elsewhere.
inline void add4_masked(V4d& a, const double* p, const int64_t* mask) {
    V4i v, m;
    load(v, p);
    load(m, mask);
    a += V4d(v & m);
}

/// Adds the sum of d[x0, x1) to a bin's four lane sums `acc`. The run is summed as kLanes = 16 interleaved
/// partial sums (lane l adds d[x0 + l], d[x0 + l + 16], ... in order; lanes past x1 in the last step add
/// +0), folded to four (lane l += lane l + 8, then lane l += lane l + 4), which are added to acc[0..3]; the
/// bin's sum is (acc0 + acc2) + (acc1 + acc3) once every run is in (azint_bin_sum). A fixed order, the
/// same on every instruction set. d must be readable up to x1 + kLanes (padding).
inline void azint_run_add(const double* RESTRICT d, int64_t x0, int64_t x1, double* RESTRICT acc) {
    V4d a0 = {0, 0, 0, 0}, a1 = a0, a2 = a0, a3 = a0; // lanes 0-3, 4-7, 8-11, 12-15
    int64_t x = x0;
    for (; x + kLanes <= x1; x += kLanes) {
        add4(a0, d + x);
        add4(a1, d + x + 4);
        add4(a2, d + x + 8);
        add4(a3, d + x + 12);
    }
    const int64_t rest = x1 - x;
    if (rest > 0) {
        const int64_t* m = kTailMask.m[rest];
        add4_masked(a0, d + x, m);
        add4_masked(a1, d + x + 4, m + 4);
        add4_masked(a2, d + x + 8, m + 8);
        add4_masked(a3, d + x + 12, m + 12);
    }
    a0 += a2;
    a1 += a3;
    a0 += a1;
    V4d s;
    load(s, acc);
    s += a0;
    store(acc, s);
}

/// A bin's sum from its four lane sums (azint_run_add).
inline double azint_bin_sum(const double* acc) {
    return (acc[0] + acc[2]) + (acc[1] + acc[3]);
}

/// Azimuthal integration of one row: per run of constant bin, the run sum (into the bin's lane sums acc,
/// 4 per bin) and its pixel count.
JFJOCH_ROW_CLONES void azint_runs(const int32_t* RESTRICT row, const double* RESTRICT d, bool any_bad,
                                  const int32_t* RESTRICT bend, const int32_t* RESTRICT bid, int64_t n_runs,
                                  int32_t max_value, double* RESTRICT acc, int64_t* RESTRICT count) {
    int64_t x0 = 0;
    for (int64_t k = 0; k < n_runs; ++k) {
        const int64_t x1 = bend[k];
        const int32_t b = bid[k];
        if (b >= 0) {
            azint_run_add(d, x0, x1, acc + 4 * b);
            int64_t c = x1 - x0;
            if (any_bad)
                for (int64_t x = x0; x < x1; ++x) {
                    int32_t ok;
                    (void)azint_term(row[x], 1.0f, max_value, ok);
                    c -= !ok;
                }
            count[b] += c;
        }
        x0 = x1;
    }
}

/// Prefix sums of the column sums (dense rows): P[x] = sum of c[0, x) (wrap-around, exact differences).
void prefix_columns(const uint32_t* c1, const uint64_t* c2, const uint32_t* cn, int64_t nx, uint32_t* p1,
                    uint64_t* p2, uint32_t* pn) {
    p1[0] = 0;
    p2[0] = 0;
    pn[0] = 0;
    for (int64_t x = 0; x < nx; ++x) {
        p1[x + 1] = p1[x] + c1[x];
        p2[x + 1] = p2[x] + c2[x];
        pn[x + 1] = pn[x] + cn[x];
    }
}

/// Work buffers of one thread (frame_pass is reentrant: each thread has its own).
struct Workspace {
    std::vector<int32_t> ring_v, ring_ok, zero; // ring of 2w + 2 rows: raw values, ok masks
    std::vector<int64_t> ring_cand;             // candidates per ring row
    std::vector<uint32_t> c1, cn, p1, pn;
    std::vector<uint64_t> c2, p2;
    std::vector<double> d, acc; // corrected values of a row; lane sums of the bins
};

} // namespace

void pass_cpu(RowSource& rows, const FrameMap& map, const FrameSettings& settings,
              spots_detail::StrongPixels& sp, std::vector<double>& sum, std::vector<int64_t>& count) {
    validate(map, settings);
    const SpotFinderSettings& ss = settings.spots;
    const int64_t nx = map.nx, ny = map.ny;
    const int64_t w = ss.window_half;
    const int64_t R = 2 * w + 2;
    const int32_t sat_eff = effective_saturation(settings.spot_saturation);
    const int32_t threshold = ss.photon_threshold;
    const double sigma2 = double(ss.sigma) * double(ss.sigma);
    const int32_t az_max = azint_max_value(settings.azint_saturation);

    // work buffers of this thread, kept between calls (no allocation, no page faults per frame)
    thread_local Workspace ws;
    ws.ring_v.resize(size_t(R * nx));
    ws.ring_ok.resize(size_t(R * nx));
    ws.ring_cand.assign(size_t(R), 0);
    ws.zero.assign(size_t(nx), 0);
    ws.c1.assign(size_t(nx), 0u);
    ws.cn.assign(size_t(nx), 0u);
    ws.c2.resize(size_t(nx)); // built when needed
    ws.d.assign(size_t(nx + kLanes), 0.0);
    const int32_t* zero = ws.zero.data();
    uint32_t* c1 = ws.c1.data();
    uint32_t* cn = ws.cn.data();
    uint64_t* c2 = ws.c2.data();
    double* d = ws.d.data();
    ws.acc.assign(4 * size_t(map.n_bins), 0.0);
    count.assign(size_t(map.n_bins), 0);
    RowStats st;
    sp.index.clear();
    sp.value.clear();
    sp.kind.clear();
    sp.sum.clear();
    sp.sum2.clear();
    sp.n.clear();
    int64_t n_strong = 0;

    auto slot_v = [&](int64_t r) { return ws.ring_v.data() + (r % R) * nx; };
    auto slot_ok = [&](int64_t r) { return ws.ring_ok.data() + (r % R) * nx; };
    // row r enters: classified into its ring slot, integrated azimuthally
    auto enter = [&](int64_t r) {
        const int32_t* row = rows.row(r);
        const int64_t f0 = map.flag_row[size_t(r)], f1 = map.flag_row[size_t(r) + 1];
        ws.ring_cand[size_t(r % R)] = classify_row(row, map.flag_end.data() + f0, map.flag_id.data() + f0,
                                                   f1 - f0, sat_eff, threshold, slot_v(r), slot_ok(r), st);
        const float* wr = map.weight.data() + r * nx;
        const bool bad = azint_terms(row, wr, r + 4 < ny ? wr + 4 * nx : wr, nx, az_max, d);
        const int64_t b0 = map.bin_row[size_t(r)], b1 = map.bin_row[size_t(r) + 1];
        azint_runs(row, d, bad, map.bin_end.data() + b0, map.bin_id.data() + b0, b1 - b0, az_max,
                   ws.acc.data(), count.data());
    };

    // The column sums of value^2 cost as much as the other two together and are needed only where a
    // row has candidates: while candidates are few, a candidate's sum of squares is read from the ring
    // rows directly ((2w + 1)^2 terms); a row whose candidates would cost more than rebuilding the column
    // sums switches to keeping them, until 2w + 1 rows in a row are sparse again. Same integers either way.
    bool c2_live = false;
    int64_t quiet = 0;
    const int64_t direct_cost = (2 * w + 1) * (2 * w + 1), rebuild_cost = (2 * w + 1) * nx;
    const int32_t* win_v[2 * kSpotMaxWindowHalf + 1];
    const int32_t* win_ok[2 * kSpotMaxWindowHalf + 1];

    for (int64_t r = 0; r < std::min(w, ny); ++r) {
        enter(r);
        update_columns(slot_v(r), slot_ok(r), zero, zero, c1, cn, nx);
    }
    for (int64_t y = 0; y < ny; ++y) {
        const int64_t r_in = y + w, r_out = y - w - 1;
        if (r_in < ny)
            enter(r_in);
        const int32_t* vi = r_in < ny ? slot_v(r_in) : zero;
        const int32_t* oi = r_in < ny ? slot_ok(r_in) : zero;
        const int32_t* vo = r_out >= 0 ? slot_v(r_out) : zero;
        const int32_t* oo = r_out >= 0 ? slot_ok(r_out) : zero;
        if (r_in < ny || r_out >= 0) {
            update_columns(vi, oi, vo, oo, c1, cn, nx);
            if (c2_live)
                update_columns2(vi, oi, vo, oo, c2, nx);
        }

        // strong-pixel test of row y (the separate spot finder's loop, spots_cpu.cpp)
        const int64_t n_cand = ws.ring_cand[size_t(y % R)];
        if (c2_live && n_cand * direct_cost < nx / 2 && ++quiet > 2 * w)
            c2_live = false;
        if (n_cand == 0)
            continue;
        const int64_t wy0 = std::max<int64_t>(0, y - w), wy1 = std::min<int64_t>(ny, y + w + 1);
        for (int64_t rr = wy0; rr < wy1; ++rr) {
            win_v[rr - wy0] = slot_v(rr);
            win_ok[rr - wy0] = slot_ok(rr);
        }
        if (!c2_live && n_cand * direct_cost > rebuild_cost) {
            rebuild_columns2(win_v, win_ok, wy1 - wy0, c2, nx);
            c2_live = true;
        }
        if (n_cand * direct_cost >= nx / 2)
            quiet = 0;
        const int32_t* row = slot_v(y);
        const bool dense = n_cand * (2 * w + 1) > 2 * nx; // then c2_live
        if (dense) {
            ws.p1.resize(size_t(nx + 1));
            ws.p2.resize(size_t(nx + 1));
            ws.pn.resize(size_t(nx + 1));
            prefix_columns(c1, c2, cn, nx, ws.p1.data(), ws.p2.data(), ws.pn.data());
        }
        const uint32_t* p1 = ws.p1.data();
        const uint64_t* p2 = ws.p2.data();
        const uint32_t* pn = ws.pn.data();
        const int32_t* fend = map.flag_end.data();
        const uint8_t* fid = map.flag_id.data();
        int64_t k = map.flag_row[size_t(y)];
        for (int64_t xc = 0; xc < nx; xc += kChunk) {
            const int64_t xe = std::min(nx, xc + kChunk);
            int32_t any = 0;
            for (int64_t x = xc; x < xe; ++x)
                any |= row[x] >= threshold;
            if (!any)
                continue;
            for (int64_t x = xc; x < xe; ++x) {
                const int32_t v = row[x];
                if (v < threshold)
                    continue;
                k = run_at(fend, k, x);
                const uint8_t f = fid[k];
                const uint8_t kind = classify_pixel(v, f, sat_eff);
                if (kind == kSaturated && !(f & kSpotPixelOutOfRange)) {
                    sp.index.push_back(y * nx + x);
                    sp.value.push_back(v);
                    sp.kind.push_back(2);
                    sp.sum.push_back(0);
                    sp.sum2.push_back(0);
                    sp.n.push_back(0);
                    continue;
                }
                if (!is_candidate(v, kind, f, threshold))
                    continue;
                const int64_t x0 = std::max<int64_t>(0, x - w), x1 = std::min<int64_t>(nx, x + w + 1);
                int64_t s1, s2, n;
                if (dense) {
                    s1 = int32_t(uint32_t(p1[x1] - p1[x0]));
                    s2 = int64_t(uint64_t(p2[x1] - p2[x0]));
                    n = int32_t(uint32_t(pn[x1] - pn[x0]));
                } else {
                    column_window_sums(c1, c2_live ? c2 : nullptr, cn, x0, x1, s1, s2, n);
                    if (!c2_live)
                        s2 = window_sum2(win_v, win_ok, wy1 - wy0, x0, x1);
                }
                if (strong_pixel_test(v, s1, s2, n, sigma2)) {
                    sp.index.push_back(y * nx + x);
                    sp.value.push_back(v);
                    sp.kind.push_back(1);
                    sp.sum.push_back(s1);
                    sp.sum2.push_back(s2);
                    sp.n.push_back(n);
                    ++n_strong;
                }
            }
        }
    }
    rows.finish();
    sum.resize(size_t(map.n_bins));
    for (int64_t b = 0; b < map.n_bins; ++b)
        sum[size_t(b)] = azint_bin_sum(ws.acc.data() + 4 * b);
    sp.max_value = st.max_value;
    sp.n_saturated = st.n_saturated;
    sp.n_error = st.n_error;
    sp.n_strong = n_strong;
}

} // namespace frame_detail
} // namespace jfjoch
