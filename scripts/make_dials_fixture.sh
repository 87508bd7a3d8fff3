#!/usr/bin/env bash
# Provenance of tests/data/thaumatin_dials/integrated.npz: rebuilds it from scratch with DIALS.
# Not run in CI (it needs root for apt-get, ~3 min of install and ~3 min of DIALS on 2 cores).
#
#   bash scripts/make_dials_fixture.sh            # writes tests/data/thaumatin_dials/integrated.npz
#
# Environment (all optional):
#   DATA=...   folder with thau_3_2_00{01..10}.cbf.bz2 (default: ../shared/data/thaumatin_grid_stills)
#   IMG=...    scratch folder for the decompressed CBFs   (default: /tmp/thau)
#   WORK=...   scratch folder where DIALS runs             (default: /tmp/dials_thau)
#   OUT=...    output .npz                                  (default: tests/data/thaumatin_dials/integrated.npz)
#
# DIALS comes from Debian (python3-dials 3.12.1, bookworm) and runs with the system python /usr/bin/python3,
# not the project's python; its programs are called by full path so that no other python is picked up.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DATA="${DATA:-$ROOT/../shared/data/thaumatin_grid_stills}"
IMG="${IMG:-/tmp/thau}"
WORK="${WORK:-/tmp/dials_thau}"
OUT="${OUT:-$ROOT/tests/data/thaumatin_dials/integrated.npz}"
D=/usr/bin

if [ ! -x "$D/dials.integrate" ]; then
  echo "== installing DIALS (Debian python3-dials)"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-dials
fi
"$D/dials.version"

echo "== decompressing the 10 stills to $IMG (DIALS 3.12 does not read .cbf.bz2)"
mkdir -p "$IMG"
for f in "$DATA"/thau_3_2_00*.cbf.bz2; do
  bunzip2 -c "$f" > "$IMG/$(basename "$f" .bz2)"
done
ls "$IMG"/thau_3_2_00*.cbf | wc -l

rm -rf "$WORK"
mkdir -p "$WORK"
cd "$WORK"
: > timings.txt
step() { # step NAME CMD...: run a DIALS program, log its output, record its wall time
  local name=$1
  shift
  echo "== $name: $*"
  local t0 t1
  t0=$(date +%s.%N)
  "$@" > "$name.out" 2>&1 || { tail -30 "$name.out"; echo "$name failed" >&2; exit 1; }
  t1=$(date +%s.%N)
  awk -v n="$name" -v a="$t0" -v b="$t1" 'BEGIN { printf "%s %.1f s\n", n, b - a }' | tee -a timings.txt
}

# Stills: without convert_sequences_to_stills=True DIALS 3.12 builds one ImageSequence of ten
# zero-width scans, and dials.index (sequences indexer, joint_indexing=False) then fails on every image.
step import "$D/dials.import" "$IMG"/thau_3_2_00*.cbf convert_sequences_to_stills=True
step find_spots "$D/dials.find_spots" imported.expt nproc=2
# indexing.nproc stays 1: with joint_indexing=False, DIALS 3.12 indexes each image in a process pool
# and appends the results in completion order; one worker keeps them in image order.
step index "$D/dials.index" imported.expt strong.refl unit_cell=58,58,151,90,90,90 space_group=P41212 \
  stills.indexer=sequences joint_indexing=False
step integrate "$D/dials.integrate" indexed.expt indexed.refl profile.gaussian_rs.min_spots.overall=10 \
  profile.gaussian_rs.min_spots.per_degree=0 nproc=2
"$D/dials.show" imported.expt > show_imported.txt 2>&1
"$D/dials.show" integrated.expt > show_integrated.txt 2>&1

echo "== exporting to $OUT"
mkdir -p "$(dirname "$OUT")"
/usr/bin/python3 "$ROOT/scripts/export_dials_fixture.py" "$WORK" "$OUT"
cat timings.txt
