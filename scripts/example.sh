#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run jfjoch_process on the example data: the HEWL rotation sweep in
# ../shared/data when it is beside the checkout, else a small dataset made with jfjoch_simulate.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p example
master=../shared/data/hewl_rot1/hewl_rot1_master.h5
if [ ! -f "$master" ]; then
  jfjoch_simulate example/sim --detector 1M --mode rotation --images 40 --seed 1
  master=example/sim_master.h5
fi
jfjoch_process "$master" -R -S 96 -M -P rot -N 2 -o example/hewl_rot1
