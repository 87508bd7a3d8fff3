#!/usr/bin/env bash
# Set up jfjoch on a fresh Debian/Ubuntu machine: system libraries (apt-get, when missing) and the
# package itself built from source with pip (CUDA backend too when nvcc is found; JFJOCH_CUDA=OFF skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

need=()
for pc in fftw3f liblz4 libzstd; do
  pkg-config --exists "$pc" 2>/dev/null || need+=("$pc")
done
if ! command -v pkg-config >/dev/null || ((${#need[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends pkg-config libfftw3-dev liblz4-dev libzstd-dev >/dev/null
fi
extras="${JFJOCH_EXTRAS:-test}"
$PY -m pip install -q ".[${extras}]"
$PY -c "import jfjoch, jfjoch._core as c; print('jfjoch', jfjoch.__version__, 'installed; CUDA backend compiled:', c.cuda_compiled)"
