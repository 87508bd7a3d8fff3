"""Indexing acceptance on the shared simulated data, through the CLI and shared/checks/check_orientation.py."""

from __future__ import annotations

import subprocess
import sys

import pytest

from jfjoch.cli.process import main

from .conftest import SHARED_CHECKS, shared


def check_orientation(dataset, ph5, *args) -> tuple[int, str]:
    p = subprocess.run([sys.executable, str(SHARED_CHECKS / "check_orientation.py"), str(dataset), str(ph5),
                        *map(str, args)], capture_output=True, text=True, timeout=600)
    return p.returncode, p.stdout + p.stderr


def test_stills_ffbidx_known_cell(tmp_path, capsys):
    master = shared("hewl_stills1", "hewl_stills1_master.h5")
    code = main([str(master), "-X", "ffbidx", "-C", "79.3,79.3,37.8,90,90,90", "-S", "96", "-N", "2",
                 "-o", str(tmp_path / "s")])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "images indexed" in out.out
    rc, text = check_orientation(master.parent, tmp_path / "s_process.h5")
    print(text)
    assert rc == 0, text


@pytest.mark.slow
def test_stills_fft_no_cell(tmp_path, capsys):
    master = shared("hewl_stills1", "hewl_stills1_master.h5")
    code = main([str(master), "-X", "fftw", "-N", "2", "-o", str(tmp_path / "f")])
    out = capsys.readouterr()
    assert code == 0, out.err
    rc, text = check_orientation(master.parent, tmp_path / "f_process.h5")
    print(text)
    assert rc == 0, text


def test_rotation_two_pass(tmp_path, capsys):
    master = shared("hewl_rot1", "hewl_rot1_master.h5")
    code = main([str(master), "-R", "-S", "96", "-N", "2", "-o", str(tmp_path / "r")])
    out = capsys.readouterr()
    assert code == 0, out.err
    rc, text = check_orientation(master.parent, tmp_path / "r_process.h5", "0.05", "1.0")
    print(text)
    assert rc == 0, text
    # the cell is within 0.1% of the truth (79.344, 79.344, 37.81)
    from jfjoch.io.process_h5 import read_process_h5

    r = read_process_h5(tmp_path / "r_process.h5")
    mean, _ = r.mean_cell()
    for got, want in zip(mean[:3], (79.344, 79.344, 37.81)):
        assert abs(got / want - 1) < 1e-3, mean


def test_rotation_single_pass_and_forced(tmp_path, capsys):
    import numpy as np

    master = shared("hewl_rot1", "hewl_rot1_master.h5")
    code = main([str(master), "--single-pass-rotation=5", "-S", "96", "-o", str(tmp_path / "sp")])
    out = capsys.readouterr()
    assert code == 0, out.err
    from jfjoch.io.process_h5 import read_process_h5

    r = read_process_h5(tmp_path / "sp_process.h5")
    idx = [im.indexed for im in r.images]
    assert not any(idx[:9]) and all(idx[9:])  # 10 images x 0.5 deg = 5 deg before the lattice is known
    lat = r.indexing.rotation_lattice
    code = main([str(master), "--force-rotation-lattice", ",".join(f"{v:.5f}" for v in lat.ravel()),
                 "-o", str(tmp_path / "fo")])
    assert code == 0, capsys.readouterr().err
    rc, text = check_orientation(master.parent, tmp_path / "fo_process.h5", "0.05", "1.0")
    assert rc == 0, text
    assert np.all([im.indexed for im in read_process_h5(tmp_path / "fo_process.h5").images])
