// Bindings of csrc/azint (filled in by the azint work).
#include <pybind11/pybind11.h>

namespace py = pybind11;

void add_azint(py::module_& m) { (void)m; }
