// Lattice helpers for the indexers: reduction, least-squares refinement, indexing a spot list.
// Bases are row-major Mat3d with rows a, b, c (real space, Angstrom); s vectors in 1/Angstrom (no 2 pi);
// h = basis * s (h_i = a_i . s). All functions are thread-safe (no shared state) and allocate nothing.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/vec3.hpp"

namespace jfjoch {

/// Reduce a real-space basis (rows) to the three shortest non-coplanar lattice vectors that form a basis
/// (Buerger/Minkowski-reduced in 3-D), signs chosen so that the basis is right-handed and the off-diagonal
/// metric terms are all of one sign where possible (Niggli's type I/II convention). Returns false when the
/// basis is degenerate. The lattice is unchanged: the result is an integer unimodular change of basis.
bool reduce_basis(Mat3d& basis);

/// Count spots whose fractional indices h = basis * s are all within tolerance of integers; when hkl/indexed
/// are not null, write the rounded indices (n*3) and a 0/1 mask.
size_t index_spots(const float* s_xyz, size_t n, const Mat3d& basis, double tolerance, int32_t* hkl,
                   uint8_t* indexed);

/// Least-squares fit of the reciprocal basis A* to s_i ~ A* h_i over the given pairs (reciprocal-space
/// residuals), returned as the real-space basis inv(A*) (rows a, b, c). mask (may be null) selects pairs.
/// Returns false (basis untouched) when fewer than 3 independent hkl are selected.
bool refine_basis_lsq(const float* s_xyz, const int32_t* hkl, const uint8_t* mask, size_t n, Mat3d& basis);

/// Index, refine by least squares on the indexed spots, re-index; `cycles` times. Returns the indexed count.
size_t refine_and_index(const float* s_xyz, size_t n, Mat3d& basis, double tolerance, int cycles,
                        int32_t* hkl_scratch, uint8_t* mask_scratch);

/// Supercell removal: when at least min_fraction of the indexed spots satisfy v . h = 0 (mod p) for some
/// v (p = 2 or 3), the basis is a supercell of the lattice the spots lie on (index p); replace it by the
/// finer lattice (volume / p), reduce, and repeat. Returns the number of such reductions made. hkl_scratch
/// (n*3) and mask_scratch (n) are work buffers.
int remove_supercell(const float* s_xyz, size_t n, Mat3d& basis, double tolerance, double min_fraction,
                     int32_t* hkl_scratch, uint8_t* mask_scratch);

} // namespace jfjoch
