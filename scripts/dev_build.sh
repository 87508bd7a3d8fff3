#!/usr/bin/env bash
# Development build: compiles jfjoch._core into build/dev and copies it to python/jfjoch/,
# so that `PYTHONPATH=python pytest` runs against the source tree. JFJOCH_CUDA=OFF by default here.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build/dev -G Ninja -DCMAKE_BUILD_TYPE=Release -DJFJOCH_DEV_INPLACE=ON \
  -DJFJOCH_CUDA="${JFJOCH_CUDA:-OFF}" -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)" >/dev/null
cmake --build build/dev -j"${JOBS:-2}"
