// Bindings of csrc/codec (filled in by the codec work).
#include <pybind11/pybind11.h>

namespace py = pybind11;

void add_codec(py::module_& m) { (void)m; }
