"""Integration acceptance on the shared simulated data: shared/checks/check_integration.py (recall, CC, median
ratio, sigma calibration, full-reflection CC against truth_partials.npy), the /entry/reflections contract,
and output independent of the thread count."""

from __future__ import annotations

import re
import subprocess
import sys

import h5py
import numpy as np
import pytest

from jfjoch.cli.process import main
from jfjoch.tables import ReflectionFlag, ReflectionTable

from .conftest import SHARED_CHECKS, shared

STILLS = ["-X", "ffbidx", "-C", "79.3,79.3,37.8,90,90,90", "-S", "96"]
ROTATION = ["-R", "-S", "96"]


def _run(args, capsys) -> str:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


def _check(dataset, ph5) -> tuple[int, dict]:
    p = subprocess.run([sys.executable, str(SHARED_CHECKS / "check_integration.py"), str(dataset), str(ph5)],
                       capture_output=True, text=True, timeout=600)
    text = p.stdout + p.stderr
    fig = {k: float(v) for k, v in re.findall(r"(recall|CC|median I/true|SD of \(I-true\)/sigma|full reflections CC) "
                                               r"([0-9.]+)", text)}
    return p.returncode, fig | {"text": text}


@pytest.mark.parametrize(("name", "mode_args"), [("hewl_stills1", STILLS), ("hewl_rot1", ROTATION)])
def test_check_integration_passes(tmp_path, capsys, name, mode_args):
    master = shared(name, f"{name}_master.h5")
    out = _run([master, *mode_args, "-N", "2", "-o", tmp_path / "x"], capsys)
    assert "integrated" in out
    code, fig = _check(master.parent, tmp_path / "x_process.h5")
    print(fig["text"])
    assert code == 0, fig["text"]
    with h5py.File(tmp_path / "x_process.h5") as f:
        g = f["entry/reflections"]
        assert set(g) == set(ReflectionTable.DTYPES)
        image = g["image"][()]
        key = np.stack([image, g["h"][()], g["k"][()], g["l"][()]], 1)
        order = np.lexsort(key.T[::-1])
        assert np.array_equal(order, np.arange(len(order)))  # sorted by image, h, k, l
        flags = g["flags"][()]
        assert np.all(flags & ReflectionFlag.SUMMED)
        assert not np.any(flags & (ReflectionFlag.MASKED | ReflectionFlag.FEW_BACKGROUND | ReflectionFlag.EDGE))
        assert np.all(g["sigma"][()] > 0) and np.all(g["lp"][()] > 0)
        part = g["partiality"][()]
        assert np.all((part >= 0) & (part <= 1))
        # reflections whose spots were found and indexed are the well-excited ones
        assert np.median(part[(flags & ReflectionFlag.INDEXED_SPOT) != 0]) > 0.3
        if name == "hewl_rot1":
            assert np.all(np.isfinite(g["phi"][()]))
            assert f["entry/MX/indexing"].attrs["mosaicity_deg"] > 0
        else:
            assert np.all(np.isnan(g["phi"][()]))
            assert np.all(f["entry/integration/profileRadius"][()] > 0)
        n_int = f["entry/integration/integrated"][()]
        assert n_int.sum() == len(image)
        np.testing.assert_array_equal(np.bincount(np.searchsorted(f["entry/image/number"][()], image),
                                                  minlength=len(n_int)), n_int)


def test_output_does_not_depend_on_threads(tmp_path, capsys):
    master = shared("hewl_stills1", "hewl_stills1_master.h5")
    files = []
    for n in (1, 2):
        _run([master, *STILLS, "-e", "11", "-N", n, "-o", tmp_path / f"n{n}"], capsys)
        files.append(tmp_path / f"n{n}_process.h5")
    with h5py.File(files[0]) as a, h5py.File(files[1]) as b:
        def walk(g, prefix=""):
            for k, v in g.items():
                if isinstance(v, h5py.Group):
                    yield from walk(v, f"{prefix}/{k}")
                else:
                    yield f"{prefix}/{k}"
        names = sorted(walk(a))
        assert names == sorted(walk(b)) and "/entry/reflections/I" in names
        for n in names:
            np.testing.assert_array_equal(a[n][()], b[n][()], err_msg=n)
