// Prediction: setup, CPU loops over the per-line functions of predict_impl.hpp, dispatch by backend.
#include <cmath>
#include <stdexcept>

#include "integrate/predict.hpp"
#include "integrate/predict_impl.hpp"

namespace jfjoch {

namespace predict_impl {

LineSetup make_line_setup(const Mat3d& A, double d_min, double d_max) {
    if (!(d_min > 0) || !(d_max > d_min))
        throw std::invalid_argument("prediction: need 0 < d_min < d_max");
    Mat3d real;
    if (!inverse(A, real))
        throw std::invalid_argument("prediction: the crystal matrix is singular");
    LineSetup su{};
    su.A = A;
    su.res_max2 = 1.0 / (d_min * d_min);
    su.res_min2 = 1.0 / (d_max * d_max);
    double len[3];
    int nmax[3];
    for (int r = 0; r < 3; ++r) {
        len[r] = std::sqrt(real.m[r][0] * real.m[r][0] + real.m[r][1] * real.m[r][1] +
                           real.m[r][2] * real.m[r][2]);
        if (!std::isfinite(len[r]) || len[r] / d_min > 1.0e4)
            throw std::invalid_argument("prediction: cell too large for the resolution limit");
        nmax[r] = int(std::floor(len[r] / d_min));
    }
    su.in = len[0] >= len[1] ? (len[0] >= len[2] ? 0 : 2) : (len[1] >= len[2] ? 1 : 2);
    su.o1 = su.in == 0 ? 1 : 0;
    su.o2 = su.in == 2 ? 1 : 2;
    su.n1 = nmax[su.o1];
    su.n2 = nmax[su.o2];
    return su;
}

namespace {

struct StillSink {
    Predictions* out;
    void operator()(int h, int k, int l, double x, double y, double d, double eps, double part, double lp) {
        out->h.push_back(h);
        out->k.push_back(k);
        out->l.push_back(l);
        out->x.push_back(x);
        out->y.push_back(y);
        out->d.push_back(d);
        out->eps.push_back(eps);
        out->phi.push_back(NAN);
        out->partiality.push_back(part);
        out->lp.push_back(lp);
        out->zeta.push_back(1.0);
        out->event.push_back(-1);
    }
};

struct EventSink {
    RotationEvents* out;
    void operator()(int h, int k, int l, double phi, double sigma, double reach) {
        out->hkl.push_back(h);
        out->hkl.push_back(k);
        out->hkl.push_back(l);
        out->phi.push_back(phi);
        out->sigma.push_back(sigma);
        out->reach.push_back(reach);
    }
};

} // namespace
} // namespace predict_impl

namespace {

void check_geometry(const ExperimentGeometry& g) {
    if (!(g.det.wavelength_A > 0) || !(g.det.pixel_mm > 0) || g.nx < 1 || g.ny < 1)
        throw std::invalid_argument("prediction: invalid detector geometry");
}

} // namespace

Predictions predict_still(const ExperimentGeometry& g, const Mat3d& A, const StillPredictionSettings& s,
                          Backend backend) {
    check_geometry(g);
    if (!(s.profile_radius >= 0) || !(s.bandwidth >= 0) || !(s.cutoff_sigmas > 0))
        throw std::invalid_argument("prediction: profile radius and bandwidth must be >= 0");
    if (use_cuda(backend, "prediction"))
        return predict_detail::predict_still_cuda(g, A, s);
    using namespace predict_impl;
    const LineSetup su = make_line_setup(A, s.d_min_A, s.d_max_A);
    Predictions out;
    StillSink sink{&out};
    const long long n = line_count(su);
    for (long long line = 0; line < n; ++line)
        still_line(g, su, s, line, sink);
    return out;
}

RotationEvents rotation_events(const ExperimentGeometry& g, const Mat3d& A0,
                               const RotationPredictionSettings& s) {
    check_geometry(g);
    if (!g.rotation())
        throw std::invalid_argument("rotation prediction: the experiment has no goniometer increment");
    if (!(s.phi_max >= s.phi_min) || !(s.mosaicity_rad >= 0))
        throw std::invalid_argument("rotation prediction: bad angle range or mosaicity");
    using namespace predict_impl;
    const LineSetup su = make_line_setup(A0, s.d_min_A, s.d_max_A);
    RotationEvents out;
    EventSink sink{&out};
    const long long n = line_count(su);
    for (long long line = 0; line < n; ++line)
        rotation_line(g, su, s, line, sink);
    return out;
}

Predictions predict_rotation_image(const ExperimentGeometry& g, const Mat3d& A0_image,
                                   const RotationEvents& ev, const int32_t* event_index, size_t n_events,
                                   double lo, double hi, const RotationPredictionSettings& s) {
    check_geometry(g);
    Predictions out;
    for (size_t k = 0; k < n_events; ++k) {
        const int32_t e = event_index[k];
        if (e < 0 || size_t(e) >= ev.size())
            throw std::invalid_argument("rotation prediction: event index out of range");
        const int hkl[3] = {ev.hkl[3 * e], ev.hkl[3 * e + 1], ev.hkl[3 * e + 2]};
        double x, y, phi, frac, lp, zeta, d;
        if (!predict_impl::rotation_observation(g, A0_image, hkl, ev.phi[e], lo, hi, s, x, y, phi, frac, lp,
                                                zeta, d))
            continue;
        out.h.push_back(hkl[0]);
        out.k.push_back(hkl[1]);
        out.l.push_back(hkl[2]);
        out.x.push_back(x);
        out.y.push_back(y);
        out.d.push_back(d);
        out.eps.push_back(0.0);
        out.phi.push_back(phi);
        out.partiality.push_back(frac);
        out.lp.push_back(lp);
        out.zeta.push_back(zeta);
        out.event.push_back(e);
    }
    return out;
}

#ifndef JFJOCH_WITH_CUDA
namespace predict_detail {
Predictions predict_still_cuda(const ExperimentGeometry&, const Mat3d&, const StillPredictionSettings&) {
    throw std::runtime_error("prediction: this build has no CUDA backend");
}
} // namespace predict_detail
#endif

} // namespace jfjoch
