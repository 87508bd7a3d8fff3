"""Scaling and merging acceptance on the shared simulated data, end to end through jfjoch_process -M:
shared/checks/check_merging.py (merged intensities vs truth.mtz after a per-shell scale) and the files."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import gemmi
import h5py
import pytest

from jfjoch.cli.process import main

from .conftest import SHARED_CHECKS, shared


def _check(dataset, prefix, min_cc) -> tuple[int, float, str]:
    p = subprocess.run([sys.executable, str(SHARED_CHECKS / "check_merging.py"), str(dataset), str(prefix),
                        str(min_cc)], capture_output=True, text=True, timeout=600)
    text = p.stdout + p.stderr
    m = re.search(r"merged CC to truth ([0-9.]+)", text)
    assert m, text
    return p.returncode, float(m.group(1)), text


@pytest.mark.parametrize(
    ("name", "args", "bar"),
    [
        ("hewl_rot1", ["-R", "-S", "96", "-M", "-P", "rot"], 0.997),  # DIALS import -> merge: 0.9954
        ("hewl_stills1", ["-X", "ffbidx", "-C", "79.3,79.3,37.8,90,90,90", "-S", "96", "-M"], 0.95),
    ],
)
def test_merged_intensities_match_the_truth(tmp_path, capsys, name, args, bar):
    master = shared(name, f"{name}_master.h5")
    code = main([str(master), *args, "-N", "2", "-o", str(tmp_path / "m")])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "Merging statistics" in out.out and "error model" in out.out
    rc, cc, text = _check(master.parent, tmp_path / "m", bar)
    print(text)
    assert rc in (0, 1) and cc >= bar, text
    stats = json.loads((tmp_path / "m_merging_stats.json").read_text())
    assert len(stats["shells"]) >= 10 and {"cc_half", "r_meas", "completeness"} <= set(stats["overall"])
    mtz = gemmi.read_mtz_file(str(tmp_path / "m.mtz"))
    assert {"IMEAN", "SIGIMEAN"} <= {c.label for c in mtz.columns} and mtz.spacegroup.number == 96
    unmerged = gemmi.read_mtz_file(str(tmp_path / "m_unmerged.mtz"))
    assert "M/ISYM" in {c.label for c in unmerged.columns} and len(unmerged.batches) > 0
    with h5py.File(tmp_path / "m_process.h5") as f:
        sc = f["entry/scaling"]
        assert {"image", "scale", "b_factor", "accepted"} <= set(sc) and sc.attrs["isa"] > 0
    assert (tmp_path / "m_report.html").exists()
