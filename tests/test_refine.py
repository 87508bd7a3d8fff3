"""Geometry refinement (jfjoch.refine, csrc/refine): real spots, perturbed geometry, lattice symmetry."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from jfjoch import refine
from jfjoch.errors import InputError
from jfjoch.refine import RefineSettings, cell_system, refine_still

from .conftest import shared, truth_module


def _shifted_copy(tmp_path, name: str, dx: float, dy: float, distance_factor: float):
    """A copy of a shared master whose beam centre and distance are moved (the data file is linked)."""
    src = shared(name)
    master = tmp_path / f"{name}_master.h5"
    shutil.copy(src / f"{name}_master.h5", master)
    master.chmod(0o644)
    (tmp_path / f"{name}_data_000001.h5").symlink_to(src / f"{name}_data_000001.h5")
    with h5py.File(master, "r+") as f:
        det = f["entry/instrument/detector"]
        det["beam_center_x"][()] = det["beam_center_x"][()] + dx
        det["beam_center_y"][()] = det["beam_center_y"][()] + dy
        det["detector_distance"][()] = det["detector_distance"][()] * distance_factor
    return master


def test_sweep_refines_moved_beam_and_distance_back(tmp_path):
    """Issue bar: the shared sweep with its beam centre moved by 1.5 px and its distance by 1 % refines back
    to within 0.2 px and 0.1 %; the refined geometry is what /entry/instrument holds."""
    import jfjoch

    T = truth_module()
    t = T.load(shared("hewl_rot1"))
    master = _shifted_copy(tmp_path, "hewl_rot1", 1.5 / np.sqrt(2), -1.5 / np.sqrt(2), 1.01)
    r = jfjoch.process(str(master), output_prefix=str(tmp_path / "r"), two_pass_rotation=30, space_group=96,
                       integration="none", threads=2)
    bx, by, dist = r.experiment.core.beam()
    tx, ty = t["beam_center_px"]
    assert np.hypot(bx - tx, by - ty) < 0.2
    assert abs(dist / t["distance_mm"] - 1) < 1e-3
    assert r.indexing.rotation_lattice is not None
    a, b, c, al, be, ga = r.mean_cell()[0]
    assert a == pytest.approx(b, abs=1e-6) and (al, be, ga) == pytest.approx((90, 90, 90), abs=1e-6)
    assert a == pytest.approx(79.344, rel=1e-3) and c == pytest.approx(37.81, rel=1e-3)
    from jfjoch.io.process_h5 import read_process_h5

    back = read_process_h5(r.output_path).experiment
    np.testing.assert_allclose(back.core.beam(), (bx, by, dist), atol=1e-9)
    with h5py.File(r.output_path) as f:
        assert f["entry/input_geometry"].attrs["detector_distance_mm"] == pytest.approx(80.0 * 1.01)
        np.testing.assert_allclose(f["entry/sample/unit_cell"][()][:3], [a, b, c], rtol=1e-5)


def test_stills_refine_beam_per_image(tmp_path):
    """Stills: each image refines the beam centre from a start 1.5 px off; the per-image values are stored."""
    import jfjoch

    master = _shifted_copy(tmp_path, "hewl_stills1", 1.5, 0.0, 1.0)
    r = jfjoch.process(str(master), output_prefix=str(tmp_path / "s"), indexing_algorithm="ffbidx",
                       unit_cell="79.3,79.3,37.8,90,90,90", space_group=96, end_image=9, integration="none")
    beams = np.array([im.refined_beam for im in r.images if im.indexed])
    assert len(beams) == 10
    assert np.all(np.abs(beams[:, 0] - 529.8) < 0.2) and np.all(np.abs(beams[:, 1] - 498.2) < 0.2)
    with h5py.File(r.output_path) as f:
        np.testing.assert_allclose(f["entry/integration/refinedBeamX"][()], beams[:, 0], atol=1e-3)


def test_refine_api_and_symmetry():
    """jfjoch.refine on numpy arrays: a still whose lattice is 1 % off and rotated refines back; the cell
    keeps the tetragonal metric; bad input is an InputError."""
    from jfjoch.experiment import rotation_matrix
    from jfjoch.pipeline import open_dataset
    from jfjoch.spots import SpotFinder

    T = truth_module()
    d = shared("hewl_stills1")
    t = T.load(d)
    with open_dataset(d / "hewl_stills1_master.h5") as ds:
        exp = ds.experiment
        xy = SpotFinder(exp).find(ds.read_image(4)).xy
    A = np.array(t["images"][4]["A_star_mid"])
    s = exp.pixels_to_recip(xy)
    h = s @ np.linalg.inv(A).T
    hkl = np.rint(h).astype(int)
    ok = np.all(np.abs(h - hkl) < 0.1, axis=1)
    start = np.linalg.inv(rotation_matrix([0.2, 0.3, 0.9], 0.1) @ A) * 1.01
    r = refine(exp, start, xy[ok], hkl[ok], space_group=96)
    good, ang = T.misorientation(A, r.lattice)
    assert good and ang < 0.03
    assert r.cell[0] == r.cell[1] and r.cell[0] == pytest.approx(79.344, rel=5e-4)
    assert r.rms_px < 0.3 and r.system == "tetragonal"
    assert cell_system(96) == "tetragonal" and cell_system(146) == "hexagonal"
    assert cell_system(None, "mC") == "monoclinic"
    with pytest.raises(InputError):
        refine(exp, start, xy[ok], hkl[ok][:-1])
    with pytest.raises(InputError):
        refine(exp, np.zeros((3, 3)), xy[ok], hkl[ok])
    with pytest.raises(InputError):
        refine(exp, start, xy[ok], hkl[ok], mode="pixelrefine")
    with pytest.raises(InputError):
        refine(exp, start, xy[:0], hkl[:0])
    # orientation-only keeps beam and cell
    r2 = refine_still(exp, start, xy[ok], hkl[ok], "tetragonal", RefineSettings(mode="orientation"))
    assert r2.beam == pytest.approx(exp.core.beam()) and r2.cell[0] == pytest.approx(79.344 * 1.01, rel=1e-6)
