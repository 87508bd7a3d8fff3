// Bindings of csrc/index (filled in by the index work).
#include <pybind11/pybind11.h>

namespace py = pybind11;

void add_index(py::module_& m) { (void)m; }
