// The one extension module jfjoch._core: each family registers itself from its own binding file.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void add_core(py::module_& m);
void add_codec(py::module_& m);
void add_spots(py::module_& m);
void add_azint(py::module_& m);
void add_index(py::module_& m);
void add_toro(py::module_& m);
void add_simulate(py::module_& m);
void add_experiment(py::module_& m);
void add_predict(py::module_& m);
void add_refine(py::module_& m);
void add_integrate(py::module_& m);
void add_frame(py::module_& m);

PYBIND11_MODULE(_core, m) {
    m.doc() = "jfjoch compiled kernels (C++ with an optional CUDA backend)";
#ifdef JFJOCH_VERSION
    m.attr("__version__") = JFJOCH_VERSION;
#endif
#ifdef JFJOCH_WITH_CUDA
    m.attr("cuda_compiled") = true;
#else
    m.attr("cuda_compiled") = false;
#endif
    add_core(m);
    add_codec(m);
    add_spots(m);
    add_azint(m);
    add_index(m);
    add_toro(m);
    add_simulate(m);
    add_experiment(m);
    add_predict(m);
    add_refine(m);
    add_integrate(m);
    add_frame(m);
}
