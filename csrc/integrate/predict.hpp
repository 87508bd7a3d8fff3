// Prediction of Bragg reflections (docs/integration.md, "Prediction").
//
// Stills: every hkl (d >= d_min) whose reciprocal point A h lies within R_eff of the Ewald sphere, with
//   R_eff^2 = R0^2 + (b lambda)^2 / (2 d^4) (R0 the image's profile radius, b the relative bandwidth FWHM);
//   partiality exp(-eps^2 / (2 rho^2)) from the Ewald offset eps = |A h + s0| - 1/lambda with
//   rho = R_eff / cutoff_sigmas; lp = polarisation (Lorentz 1 for stills).
//   Enumeration: for each pair of indices along the two shortest real-space axes, the indices along the
//   third that can lie in the Ewald shell follow from two quadratic equations, so the work grows with
//   the number of predictions, not with the volume of the resolution sphere.
// Rotation: every hkl (d >= d_min) with its diffraction angles (closed form, core/experiment.hpp) inside
//   the sweep (+- a margin): one "event" per (hkl, angle) with its rocking sigma sigma_phi = mosaicity * L.
//   Per image, the fraction of each event recorded on it is Phi((hi - w)/sigma_phi) - Phi((lo -
//   w)/sigma_phi); an observation is predicted when that fraction is >= min_fraction, or when the reciprocal
//   point comes within ewald_cutoff of the Ewald sphere during the image (points near the spindle stay close
//   to the sphere over many degrees, beyond any Gaussian rocking curve). lp = L * polarisation with L the
//   rotation Lorentz factor; the spot position is the one at the angle of the image closest to w.
// All per-candidate work is host+device code in predict_impl.hpp; the CPU loops over it here, the CUDA
// backend (predict_cuda.cu) launches a grid over the same functions. Thread-safe, no shared state.
#pragma once
#include <cstdint>
#include <vector>

#include "core/backend.hpp"
#include "core/experiment.hpp"

namespace jfjoch {

struct StillPredictionSettings {
    double d_min_A = 1.5;       ///< high-resolution limit (A)
    double d_max_A = 1.0e4;     ///< low-resolution limit (A)
    double profile_radius = 0;  ///< R0 (1/A): largest Ewald offset predicted (monochromatic part)
    double bandwidth = 0;       ///< relative bandwidth FWHM b (0: monochromatic)
    double cutoff_sigmas = 3.0; ///< R_eff / rho: the cutoff in units of the Gaussian profile sigma
    double edge_margin_px = 0;  ///< keep predictions within [-margin, n - 1 + margin] px
};

/// One predicted observation (structure of arrays on output).
struct Predictions {
    std::vector<int32_t> h, k, l;
    std::vector<double> x, y; ///< pixel position (pixel centre at integer)
    std::vector<double> d;    ///< resolution (A)
    std::vector<double> eps;  ///< stills: Ewald offset (1/A); rotation: 0
    std::vector<double> phi;  ///< rotation: diffraction angle (radians); stills: NaN
    std::vector<double> partiality;
    std::vector<double> lp;     ///< Lorentz x polarisation (multiplies I_true)
    std::vector<double> zeta;   ///< rotation: 1/L; stills: 1
    std::vector<int32_t> event; ///< rotation: index of the sweep event; stills: -1
    size_t size() const { return h.size(); }
};

/// Reflections of one still with crystal A (columns a*, b*, c*, 1/A).
Predictions predict_still(const ExperimentGeometry& g, const Mat3d& A, const StillPredictionSettings& s,
                          Backend backend = Backend::CPU);

/// Sweep events (hkl, diffraction angle) of a rotation crystal A0 (at omega = 0).
struct RotationEvents {
    std::vector<int32_t> hkl;  ///< 3 per event
    std::vector<double> phi;   ///< diffraction angle (radians)
    std::vector<double> sigma; ///< rocking sigma (radians)
    std::vector<double> reach; ///< half-width (radians) of the angle range the event can be predicted in
    size_t size() const { return phi.size(); }
};

struct RotationPredictionSettings {
    double d_min_A = 1.5;
    double d_max_A = 1.0e4;
    double mosaicity_rad = 0.001;  ///< Gaussian sigma of the mosaic spread (radians)
    double max_sigma_rad = 0.0873; ///< cap of the rocking sigma near the rotation axis (5 degrees)
    double phi_min = 0;            ///< events are kept when their angle lies in [phi_min, phi_max]
    double phi_max = 0;
    double min_fraction = 0.001;   ///< per image: smallest recorded fraction predicted
    double ewald_cutoff = 0.0;     ///< ... or |Ewald offset| (1/A) within the image at most this (0: off)
    double max_reach_rad = 0.7854; ///< cap of an event's reach (45 degrees)
    double edge_margin_px = 0;
};

RotationEvents rotation_events(const ExperimentGeometry& g, const Mat3d& A0,
                               const RotationPredictionSettings& s);

/// The observations on one image [lo, hi] (radians) of the given events, predicted with crystal A0_image
/// (at omega = 0; the sweep crystal with this image's orientation correction). Each event's angle is
/// recomputed for A0_image (the solution nearest the event's angle).
Predictions predict_rotation_image(const ExperimentGeometry& g, const Mat3d& A0_image,
                                   const RotationEvents& ev, const int32_t* event_index, size_t n_events,
                                   double lo, double hi, const RotationPredictionSettings& s);

namespace predict_detail {
Predictions predict_still_cuda(const ExperimentGeometry& g, const Mat3d& A, const StillPredictionSettings& s);
}

} // namespace jfjoch
