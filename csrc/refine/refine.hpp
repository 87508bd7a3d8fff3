// Geometry refinement: least squares on spot positions (and, for rotation data, diffraction angles).
//
// Model (docs/integration.md, "Geometry refinement"):
//  - detector: beam centre (bx, by) in pixels and distance D (mm) along the plane normal; the plane keeps
//    its fast/slow directions. The direct beam (+z) meets the plane at L z with L = D / (n . z), and the
//    centre of pixel (0, 0) sits at L z - (bx fast + by slow) * pixel;
//  - crystal: A = R(theta) U0 B(cell), columns a*, b*, c* (1/A). U0 is a fixed rotation, R(theta) a
//    rotation by the vector theta = t1 e1 + t2 e2 + t3 e3 (radians, about the unit axes e1, e2, e3), and
//    B(cell) = inverse of the real-space basis (rows a, b, c; a along x, b in the xy plane) of the cell
//    made from the free parameters of its crystal system (tetragonal: a, c; ...), so the lattice keeps its
//    symmetry;
//  - stills: the spot of hkl is where the ray along A h + s0 meets the detector; residuals dx, dy (px);
//  - rotation: A is the crystal at omega = 0; hkl diffracts at the angle w_c nearest the observation's
//    image mid-angle w_obs (closed form); its spot is recorded at the angle of the image's frame
//    [w_obs - dw/2, w_obs + dw/2] closest to w_c, a = clamp(w_c), at R(axis, a) A h; residuals dx, dy (px)
//    and angle_weight * zeta * (w_c - a) / |dw| (frames scaled to pixels, 0 when w_c lies in the frame; zeta
//    = 1/L, so the angle error counts as the Ewald offset it stands for). Observations with zeta < 0.05 (near
//    the spindle: in diffraction over many degrees) are left out.
// Parameters: [bx, by, D, t1, t2, t3, cell...] with a free/fixed flag each. Solver: Levenberg-Marquardt
// on Huber-weighted residuals (iteratively reweighted, scale from the median absolute residual), Jacobian
// by central differences. Everything runs on the CPU; the per-spot prediction is the host+device code of
// core/experiment.hpp. Thread-safe: no shared state.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/experiment.hpp"

namespace jfjoch {

/// Crystal systems by their metric constraints (trigonal/rhombohedral groups use hexagonal axes).
enum class CellSystem : int32_t {
    Triclinic = 0,    ///< a, b, c, alpha, beta, gamma
    Monoclinic = 1,   ///< a, b, c, beta (b unique)
    Orthorhombic = 2, ///< a, b, c
    Tetragonal = 3,   ///< a = b, c
    Hexagonal = 4,    ///< a = b, c, gamma = 120
    Cubic = 5,        ///< a = b = c
};

/// Number of free cell parameters of a system (1..6).
int cell_param_count(CellSystem system);
/// Cell (a, b, c in A; alpha, beta, gamma in degrees) from the free parameters.
void cell_from_params(CellSystem system, const double* params, double cell[6]);
/// Free parameters from a cell (averaging the lengths the system makes equal).
void params_from_cell(CellSystem system, const double cell[6], double* params);
/// Real-space basis (rows a, b, c in A) of a cell: a along x, b in the xy plane. False if impossible.
bool real_basis_from_cell(const double cell[6], Mat3d& basis);

/// Detector plane of the experiment moved to beam centre (bx, by) px and distance D mm (see above).
DetectorGeometry detector_with_beam(const DetectorGeometry& det, double bx, double by, double distance_mm);
/// Beam centre (px) and distance (mm) of a detector plane.
void beam_of_detector(const DetectorGeometry& det, double& bx, double& by, double& distance_mm);

constexpr int kRefineFixedParams = 6; ///< bx, by, D, t1, t2, t3
constexpr double kRefineMinZeta =
    0.05; ///< rotation: observations nearer the spindle (zeta = 1/L) are left out
constexpr int kRefineMaxParams = 12;

struct RefineSettings {
    int max_iterations = 30;    ///< Levenberg-Marquardt iterations
    double huber_k = 3.0;       ///< Huber threshold in units of the residual scale (1.5: non-convex)
    double min_scale_px = 0.25; ///< floor of the residual scale (px)
    double tolerance = 1e-7;    ///< stop when the relative cost change is below this
};

/// A refinement problem: fixed geometry, starting parameters, which are free, and the observations.
struct RefineProblem {
    ExperimentGeometry geometry; ///< starting geometry (its detector plane orientation is kept)
    CellSystem system = CellSystem::Triclinic;
    Mat3d U0{};    ///< fixed rotation part of the crystal
    Vec3d axes[3]; ///< rotation axes e1, e2, e3 of the orientation parameters
    double params[kRefineMaxParams] = {};
    uint8_t free[kRefineMaxParams] = {};
    bool rotation = false;     ///< rotation residuals (needs geometry.gonio and the observation angles)
    double angle_weight = 0.5; ///< rotation: pixels per frame of diffraction-angle error
    // observations (n of them): pixel position, Miller indices, and for rotation the angle (radians) of
    // the image the spot was seen on (its mid-angle)
    size_t n = 0;
    const double* x = nullptr;
    const double* y = nullptr;
    const int32_t* hkl = nullptr;
    const double* angle = nullptr;
};

struct RefineResult {
    double params[kRefineMaxParams] = {};
    int n_params = 0;
    int iterations = 0;
    bool converged = false;
    double rms_px = 0.0;           ///< RMS position residual of the observations with full weight (px)
    double rms_angle_frames = 0.0; ///< rotation: RMS angle residual of those observations (frames)
    size_t n_used = 0;             ///< observations with full (Huber) weight at the end
};

/// Number of parameters of a problem: 6 + the cell parameters of its system.
int refine_param_count(const RefineProblem& p);

/// Crystal A (columns a*, b*, c*, 1/A) for a parameter vector.
Mat3d refine_crystal(const RefineProblem& p, const double* params);

/// Residuals of every observation for a parameter vector: 2 per observation (stills) or 3 (rotation);
/// an observation that does not diffract/misses the detector gets NaN residuals. out has n * stride values.
void refine_residuals(const RefineProblem& p, const double* params, double* out);

/// Run the solver from p.params; throws std::invalid_argument on inconsistent input.
RefineResult refine_geometry(const RefineProblem& p, const RefineSettings& settings);

} // namespace jfjoch
