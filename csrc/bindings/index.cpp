// Bindings of csrc/index (FFT indexer, lattice helpers). Convert arrays, release the GIL, call the kernel.
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>

#include "bindings/common.hpp"
#include "core/backend.hpp"
#include "index/fft/fft.hpp"
#include "index/lattice/lattice.hpp"

namespace py = pybind11;
using jfjoch::bind::CArray;
using jfjoch::bind::require_2d;

namespace {

jfjoch::Mat3d to_mat(const CArray<double>& a) {
    if (a.ndim() != 2 || a.shape(0) != 3 || a.shape(1) != 3)
        throw std::invalid_argument("lattice must be 3x3");
    jfjoch::Mat3d m{};
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
            m.m[i][j] = a.at(i, j);
    return m;
}

py::array_t<double> from_mat(const jfjoch::Mat3d& m) {
    py::array_t<double> a({3, 3});
    auto r = a.mutable_unchecked<2>();
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
            r(i, j) = m.m[i][j];
    return a;
}

} // namespace

void add_index(py::module_& m) {
    m.def(
        "fft_index",
        [](CArray<float> s, int n_directions, float min_cell_A, float max_cell_A, float oversampling,
           int n_candidates, float min_candidate_angle_deg, float index_tolerance, float count_fraction,
           int refine_cycles, int min_indexed, float min_indexed_fraction, const std::string& backend) {
            require_2d(s, 3, "s");
            jfjoch::FftIndexerSettings st;
            st.n_directions = n_directions;
            st.min_cell_A = min_cell_A;
            st.max_cell_A = max_cell_A;
            st.oversampling = oversampling;
            st.n_candidates = n_candidates;
            st.min_candidate_angle_deg = min_candidate_angle_deg;
            st.index_tolerance = index_tolerance;
            st.count_fraction = count_fraction;
            st.refine_cycles = refine_cycles;
            st.min_indexed = min_indexed;
            st.min_indexed_fraction = min_indexed_fraction;
            const auto be = jfjoch::parse_backend(backend);
            const size_t n = size_t(s.shape(0));
            py::array_t<int32_t> hkl({py::ssize_t(n), py::ssize_t(3)});
            py::array_t<bool> indexed{py::ssize_t(n)};
            jfjoch::FftIndexerResult r;
            {
                py::gil_scoped_release release;
                r = jfjoch::fft_index(s.data(), n, st, be, hkl.mutable_data(),
                                      reinterpret_cast<uint8_t*>(indexed.mutable_data()));
            }
            py::dict times;
            times["histogram_s"] = r.times.histogram_s;
            times["fft_s"] = r.times.fft_s;
            times["candidates_s"] = r.times.candidates_s;
            times["refine_s"] = r.times.refine_s;
            py::dict out;
            out["ok"] = r.ok;
            out["lattice"] = from_mat(r.lattice);
            out["hkl"] = hkl;
            out["indexed"] = indexed;
            out["n_indexed"] = r.n_indexed;
            out["backend"] = std::string(r.backend == jfjoch::Backend::CUDA ? "cuda" : "cpu");
            out["times"] = times;
            return out;
        },
        py::arg("s"), py::arg("n_directions"), py::arg("min_cell_A"), py::arg("max_cell_A"),
        py::arg("oversampling"), py::arg("n_candidates"), py::arg("min_candidate_angle_deg"),
        py::arg("index_tolerance"), py::arg("count_fraction"), py::arg("refine_cycles"),
        py::arg("min_indexed"), py::arg("min_indexed_fraction"), py::arg("backend"),
        "FFT indexer on reciprocal vectors s (n,3) 1/A; returns a dict (ok, lattice rows a,b,c A, hkl, "
        "indexed, "
        "n_indexed, backend, times).");

    m.def(
        "reduce_basis",
        [](CArray<double> lattice) {
            jfjoch::Mat3d b = to_mat(lattice);
            bool ok;
            {
                py::gil_scoped_release release;
                ok = jfjoch::reduce_basis(b);
            }
            if (!ok)
                throw std::invalid_argument("reduce_basis: degenerate basis");
            return from_mat(b);
        },
        py::arg("lattice"), "Buerger-reduced, right-handed basis (rows a,b,c A) of the same lattice.");

    m.def(
        "index_spots",
        [](CArray<float> s, CArray<double> lattice, double tolerance) {
            require_2d(s, 3, "s");
            const jfjoch::Mat3d b = to_mat(lattice);
            const size_t n = size_t(s.shape(0));
            py::array_t<int32_t> hkl({py::ssize_t(n), py::ssize_t(3)});
            py::array_t<bool> indexed{py::ssize_t(n)};
            {
                py::gil_scoped_release release;
                jfjoch::index_spots(s.data(), n, b, tolerance, hkl.mutable_data(),
                                    reinterpret_cast<uint8_t*>(indexed.mutable_data()));
            }
            return py::make_tuple(hkl, indexed);
        },
        py::arg("s"), py::arg("lattice"), py::arg("tolerance"),
        "Rounded hkl (n,3) and mask of spots with every |h - round(h)| < tolerance.");

    m.def(
        "refine_lattice",
        [](CArray<float> s, CArray<int32_t> hkl, CArray<double> lattice, py::object mask) {
            require_2d(s, 3, "s");
            require_2d(hkl, 3, "hkl");
            if (hkl.shape(0) != s.shape(0))
                throw std::invalid_argument("s and hkl differ in length");
            jfjoch::Mat3d b = to_mat(lattice);
            const size_t n = size_t(s.shape(0));
            CArray<uint8_t> mk;
            const uint8_t* mp = nullptr;
            if (!mask.is_none()) {
                mk = CArray<uint8_t>::ensure(mask);
                if (!mk || mk.ndim() != 1 || size_t(mk.shape(0)) != n)
                    throw std::invalid_argument("mask must be (n,)");
                mp = mk.data();
            }
            bool ok;
            {
                py::gil_scoped_release release;
                ok = jfjoch::refine_basis_lsq(s.data(), hkl.data(), mp, n, b);
            }
            return py::make_tuple(from_mat(b), ok);
        },
        py::arg("s"), py::arg("hkl"), py::arg("lattice"), py::arg("mask") = py::none(),
        "Least-squares reciprocal basis fit s ~ A* h; returns (lattice rows a,b,c A, ok).");
}
