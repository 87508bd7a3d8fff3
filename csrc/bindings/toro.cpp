// Bindings of csrc/index/toro (filled in by the toro work).
#include <pybind11/pybind11.h>

namespace py = pybind11;

void add_toro(py::module_& m) { (void)m; }
