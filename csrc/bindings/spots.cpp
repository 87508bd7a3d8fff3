// Bindings of csrc/spots (filled in by the spots work).
#include <pybind11/pybind11.h>

namespace py = pybind11;

void add_spots(py::module_& m) { (void)m; }
