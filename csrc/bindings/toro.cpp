// Bindings of csrc/index/toro: the known-cell fast-feedback (TORO) indexer. Convert arrays, release the GIL.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>

#include "bindings/common.hpp"
#include "core/backend.hpp"
#include "index/toro/toro.hpp"

namespace py = pybind11;
using jfjoch::bind::CArray;
using jfjoch::bind::require_2d;

void add_toro(py::module_& m) {
    py::class_<jfjoch::ToroSizes>(m, "ToroSizes")
        .def(py::init<>())
        .def_readwrite("max_spots", &jfjoch::ToroSizes::max_spots)
        .def_readwrite("max_search_spots", &jfjoch::ToroSizes::max_search_spots)
        .def_readwrite("num_directions", &jfjoch::ToroSizes::num_directions)
        .def_readwrite("num_candidates", &jfjoch::ToroSizes::num_candidates)
        .def_readwrite("num_rotations", &jfjoch::ToroSizes::num_rotations)
        .def_readwrite("num_top_vectors", &jfjoch::ToroSizes::num_top_vectors)
        .def_readwrite("num_cells", &jfjoch::ToroSizes::num_cells);

    py::class_<jfjoch::ToroThresholds>(m, "ToroThresholds")
        .def(py::init<>())
        .def_readwrite("vector_trim", &jfjoch::ToroThresholds::vector_trim)
        .def_readwrite("cell_trim", &jfjoch::ToroThresholds::cell_trim)
        .def_readwrite("direction_refine_iterations", &jfjoch::ToroThresholds::direction_refine_iterations)
        .def_readwrite("refine_iterations", &jfjoch::ToroThresholds::refine_iterations)
        .def_readwrite("refine_threshold_start", &jfjoch::ToroThresholds::refine_threshold_start)
        .def_readwrite("refine_threshold_end", &jfjoch::ToroThresholds::refine_threshold_end)
        .def_readwrite("indexed_threshold", &jfjoch::ToroThresholds::indexed_threshold)
        .def_readwrite("min_spots_ls", &jfjoch::ToroThresholds::min_spots_ls)
        .def_readwrite("min_indexed", &jfjoch::ToroThresholds::min_indexed)
        .def_readwrite("min_fraction", &jfjoch::ToroThresholds::min_fraction)
        .def_readwrite("max_cell_deviation", &jfjoch::ToroThresholds::max_cell_deviation);

    py::class_<jfjoch::ToroIndexer>(m, "ToroIndexer")
        .def(py::init([](const jfjoch::ToroSizes& sizes, const std::string& backend) {
                 return new jfjoch::ToroIndexer(sizes, jfjoch::parse_backend(backend));
             }),
             py::arg("sizes"), py::arg("backend") = "auto")
        .def_property_readonly("backend",
                               [](const jfjoch::ToroIndexer& t) {
                                   return t.backend() == jfjoch::Backend::CUDA ? std::string("cuda")
                                                                               : std::string("cpu");
                               })
        .def(
            "index",
            [](jfjoch::ToroIndexer& t, CArray<float> s, CArray<double> cell,
               const jfjoch::ToroThresholds& th) {
                require_2d(s, 3, "s");
                if (cell.size() != 9)
                    throw std::invalid_argument("cell: expected 9 numbers (rows a, b, c)");
                const int n = int(s.shape(0));
                CArray<int32_t> hkl({py::ssize_t(n), py::ssize_t(3)});
                py::array_t<bool> ix{py::ssize_t(n)};
                jfjoch::ToroResult r;
                {
                    py::gil_scoped_release release;
                    r = t.index(s.data(), n, cell.data(), th, hkl.mutable_data(),
                                reinterpret_cast<uint8_t*>(ix.mutable_data()));
                }
                CArray<double> lat({py::ssize_t(3), py::ssize_t(3)});
                for (int i = 0; i < 9; ++i)
                    lat.mutable_data()[i] = r.lattice[i / 3][i % 3];
                py::dict d;
                d["lattice"] = lat;
                d["hkl"] = hkl;
                d["indexed"] = ix;
                d["score"] = r.score;
                d["n_indexed"] = r.indexed;
                d["fraction"] = r.fraction;
                d["ok"] = r.ok;
                d["stage_seconds"] = py::make_tuple(r.stage_seconds[0], r.stage_seconds[1],
                                                    r.stage_seconds[2], r.stage_seconds[3]);
                return d;
            },
            py::arg("s"), py::arg("cell"), py::arg("thresholds"));

    m.def(
        "toro_direction_scores",
        [](CArray<float> s, float len_A, int num_directions, float trim) {
            require_2d(s, 3, "s");
            if (num_directions < 1)
                throw std::invalid_argument("num_directions must be positive");
            CArray<float> out(num_directions);
            {
                py::gil_scoped_release release;
                jfjoch::toro_direction_scores_cpu(s.data(), int(s.shape(0)), len_A, num_directions, trim,
                                                  out.mutable_data());
            }
            return out;
        },
        py::arg("s"), py::arg("length"), py::arg("num_directions"), py::arg("trim"),
        "Direction scores of all spiral samples (CPU loop), for tests.");
    m.def(
        "toro_direction_score_one",
        [](CArray<float> s, CArray<float> dir, float len_A, float trim) {
            require_2d(s, 3, "s");
            if (dir.size() != 3)
                throw std::invalid_argument("dir: expected 3 numbers");
            py::gil_scoped_release release;
            return jfjoch::toro_direction_score_one(s.data(), int(s.shape(0)), dir.data(), len_A, trim);
        },
        py::arg("s"), py::arg("direction"), py::arg("length"), py::arg("trim"),
        "One direction scored by a direct call of the per-item function, for tests.");
    m.def(
        "toro_spiral",
        [](int j, int num_directions) {
            if (num_directions < 1 || j < 0 || j >= num_directions)
                throw std::invalid_argument("need 0 <= j < num_directions");
            float d[3];
            jfjoch::toro_spiral(j, num_directions, d);
            return py::make_tuple(d[0], d[1], d[2]);
        },
        py::arg("j"), py::arg("num_directions"), "j-th unit vector of the half-sphere spiral.");
}
