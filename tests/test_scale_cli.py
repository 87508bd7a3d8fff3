"""`jfjoch_scale` on `_process.h5` inputs written with only the documented minimal content; its files;
bad inputs (one line, exit code, nothing written); `/entry/scaling`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import gemmi
import h5py
import numpy as np
import pytest

import jfjoch
from jfjoch.cli.scale import main
from jfjoch.io.scale_dat import read_scale_dat
from jfjoch.io.scale_input import read_scale_input
from jfjoch.io.scaling_h5 import read_scaling_group, write_scaling_group
from jfjoch.tables import ReflectionTable

from .conftest import shared
from .scale_data import synthetic_stills, truth_tables


def write_minimal_h5(path: Path, table: ReflectionTable, cell, sg=96, wavelength=1.0, goniometer=None,
                     nxmx_omega=None) -> Path:
    """Only what SPEC lists as the minimal input of jfjoch_scale."""
    with h5py.File(path, "w") as f:
        g = f.create_group("entry/reflections")
        for k, v in table.columns().items():
            g.create_dataset(k, data=v)
        f["entry/sample/unit_cell"] = np.asarray(cell, float)
        if sg is not None:
            f["entry/sample/space_group_number"] = int(sg)
        f["entry/instrument/beam/incident_wavelength"] = float(wavelength)
        if goniometer is not None:
            gg = f.create_group("entry/sample/goniometer")
            gg["omega_start"], gg["omega_increment"] = goniometer.start_deg, goniometer.increment_deg
            gg["omega_axis"] = np.asarray(goniometer.axis, float)
        if nxmx_omega is not None:
            start, inc, n, axis = nxmx_omega
            d = f.create_dataset("entry/sample/transformations/omega", data=start + inc * np.arange(n))
            d.attrs["vector"] = np.asarray(axis, float)
            d.attrs["transformation_type"] = "rotation"
            f["entry/sample/transformations/omega_increment_set"] = inc
    return path


def digest(paths) -> dict:
    return {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


@pytest.fixture(scope="module")
def rot1_h5(tmp_path_factory):
    inp, _ = truth_tables(shared("hewl_rot1"), partiality="truth")
    d = tmp_path_factory.mktemp("rot1")
    a = write_minimal_h5(d / "a_process.h5", inp.reflections, inp.cell, goniometer=inp.goniometer)
    g = inp.goniometer
    b = write_minimal_h5(d / "b_process.h5", inp.reflections, inp.cell, nxmx_omega=(g.start_deg, g.increment_deg,
                                                                                       40, g.axis))
    return a, b, inp


def test_minimal_input_reader(rot1_h5):
    a, b, inp = rot1_h5
    ra, rb = read_scale_input(a), read_scale_input(b, run_id=1)
    for r in (ra, rb):
        assert r.is_rotation and r.space_group == 96 and r.wavelength == 1.0
        assert r.goniometer.increment_deg == pytest.approx(0.5) and r.goniometer.start_deg == pytest.approx(0.0)
        assert np.array_equal(r.reflections.I, inp.reflections.I)
    assert rb.run_id == 1


def test_scale_process_h5_rot(rot1_h5, tmp_path, capsys):
    a, b, _ = rot1_h5
    before = digest([a, b])
    out = tmp_path / "ab"
    rc = main([str(a), str(b), "-S", "96", "-P", "rot", "-o", str(out), "-N", "2", "-A", "--scaling-output", "cif"])
    assert rc == 0
    assert digest([a, b]) == before
    text = capsys.readouterr().out
    assert "Merging statistics" in text and "error model: a = " in text and "time: " in text
    doc = gemmi.cif.read(f"{out}.cif")
    assert doc[0].find_loop("_refln.intensity_meas") and doc[0].find_loop("_refln.pdbx_I_plus")
    um = gemmi.cif.read(f"{out}_unmerged.cif")
    assert um[0].find_loop("_diffrn_refln.intensity_net")
    mtz = gemmi.read_mtz_file(f"{out}_unmerged.mtz")
    batches = np.array(mtz.column_with_label("BATCH"), int)
    assert set(batches // 10000) == {0, 1}  # two runs, offset 10000
    assert len(mtz.batches) == len(np.unique(batches))
    dat = read_scale_dat(f"{out}_iter3_scale.dat")
    assert len(dat["image"]) == 80 and np.all(np.isfinite(dat["mosaicity"][dat["accepted"] == 1]))
    js = json.loads(Path(f"{out}_merging_stats.json").read_text())
    assert "cc_anom" in js["overall"]
    assert js["overall"]["cc_half"] > 0.99


def test_shelx_output_and_api(tmp_path):
    syn = synthetic_stills(60, 300, seed=2)
    t = syn.inputs[0]
    h5 = write_minimal_h5(tmp_path / "s_process.h5", t.reflections, t.cell, sg=None)
    r = jfjoch.scale(h5, space_group=96, scaling_output="txt", output_prefix=str(tmp_path / "s"))
    assert isinstance(r, jfjoch.ScaleResult)
    lines = Path(tmp_path / "s.hkl").read_text().splitlines()
    assert lines[-1] == "   0   0   0    0.00    0.00"
    assert len(lines) == len(r.merged) + 1
    h, k, l = int(lines[0][0:4]), int(lines[0][4:8]), int(lines[0][8:12])
    assert (h, k, l) == tuple(r.merged.hkl[0])
    assert float(lines[0][12:20]) == pytest.approx(r.merged.I[0], abs=0.01)
    assert sorted(Path(p).name for p in r.output_files) == sorted(
        ["s.hkl", "s_unmerged.mtz", "s_iter1_scale.dat", "s_iter2_scale.dat", "s_iter3_scale.dat",
         "s_merging_stats.json", "s_report.html"])


def test_entry_scaling_group(tmp_path):
    syn = synthetic_stills(40, 200, seed=3)
    r = jfjoch.scale_and_merge(syn.inputs, partiality="fixed")
    with h5py.File(tmp_path / "x.h5", "w") as f:
        write_scaling_group(f.create_group("entry/scaling"), r)
    with h5py.File(tmp_path / "x.h5", "r") as f:
        g = read_scaling_group(f["entry/scaling"])
    for k in ("image", "scale", "b_factor", "mosaicity", "cc", "accepted"):
        assert len(g[k]) == len(r.images)
    assert g["a"] == pytest.approx(r.error_model.a) and g["b"] == pytest.approx(r.error_model.b)
    assert json.loads(g["merging_statistics"])["overall"]["n_obs"] == r.overall.n_obs


# ------------------------------------------------------------------------------------------------ errors
def _run_error(args, capsys, prefix: Path, code: int, match: str):
    rc = main([*map(str, args), "-o", str(prefix)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == code, err
    assert len(err) == 1 and err[0].startswith("jfjoch_scale: error: ") and match in err[0], err
    assert not list(prefix.parent.glob(prefix.name + "*")), "files written on error"
    assert not list(prefix.parent.glob(".*.tmp")), "temporary files left"


def _mtz_with(path, labels_types, cell=(79.3, 79.3, 37.8, 90, 90, 90), sg=96):
    mtz = gemmi.Mtz(with_base=True)
    mtz.spacegroup = gemmi.SpaceGroup(sg)
    mtz.cell = gemmi.UnitCell(*cell)
    mtz.add_dataset("x")
    for lab, t in labels_types:
        mtz.add_column(lab, t)
    hkl = np.array(gemmi.make_miller_array(mtz.cell, mtz.spacegroup, 3.0, 0, True))
    data = np.column_stack([hkl] + [np.full(len(hkl), 100.0)] * len(labels_types)).astype(np.float32)
    mtz.set_data(data)
    mtz.write_to_file(str(path))
    return path


def test_bad_inputs(rot1_h5, tmp_path, capsys):
    a, _, inp = rot1_h5
    out = tmp_path / "out" / "x"
    out.parent.mkdir()
    before = digest([a])
    no_i = _mtz_with(tmp_path / "f.mtz", [("FP", "F"), ("SIGFP", "Q")])
    _run_error([a, "-z", no_i], capsys, out, 2, "has no intensities")
    other = _mtz_with(tmp_path / "o.mtz", [("IMEAN", "J"), ("SIGIMEAN", "Q")], cell=(90, 90, 45, 90, 90, 90))
    _run_error([a, "-z", other], capsys, out, 2, "differs from the data's")
    t = inp.reflections
    c = write_minimal_h5(tmp_path / "c_process.h5", t, (82.0, 82.0, 37.81, 90, 90, 90), goniometer=inp.goniometer)
    _run_error([a, c], capsys, out, 2, "cells disagree by more than 2 %")
    _run_error([a, "-S", "143"], capsys, out, 2, "incompatible with the lattice")
    _run_error([a, "-S", "5"], capsys, out, 2, "incompatible with the lattice")  # C2: centring absences
    empty = write_minimal_h5(tmp_path / "e_process.h5", ReflectionTable.empty(), inp.cell)
    _run_error([empty], capsys, out, 2, "empty reflection table")
    _run_error([tmp_path / "missing.h5"], capsys, out, 2, "no such file")
    (tmp_path / "junk.txt").write_text("not a reflection file")
    _run_error([tmp_path / "junk.txt"], capsys, out, 2, "neither a _process.h5")
    mtz_in = shared("hewl_model", "HEWL_unmerged_subset_2020.mtz")
    _run_error([mtz_in, "-P", "rot"], capsys, out, 2, "-P rot needs rotation data")
    _run_error([a, "-P", "sideways"], capsys, out, 2, "--partiality must be one of")
    _run_error([a, "--scaling-iterations", "0"], capsys, out, 2, "--scaling-iterations")
    _run_error([a], capsys, tmp_path / "nodir" / "x", 1, "does not exist")
    assert digest([a]) == before


def test_no_arguments_is_a_usage_error(capsys):
    assert main([]) == 2
    assert "jfjoch_scale: error:" in capsys.readouterr().err
