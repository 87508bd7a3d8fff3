"""Tests of the in-house simulator against the shared truth helpers, gemmi and the nanoBragg data."""

from __future__ import annotations

import importlib.util
import json

import gemmi
import h5py
import hdf5plugin  # noqa: F401  (registers the bitshuffle filter)
import numpy as np
import pytest
from click.testing import CliRunner
from scipy import ndimage

from jfjoch.cli.simulate import main as cli_main
from jfjoch.errors import UsageError
from jfjoch.simulate import (
    JF_GAP_Y,
    SimulationSettings,
    Simulator,
    _asu_keys,
    detector_layout,
    model_intensities,
    p1_indices,
    render_spots,
    simulate_dataset,
    space_group_of,
)

from .conftest import SHARED_CHECKS, shared

HEWL_CELL = (79.344, 79.344, 37.81, 90.0, 90.0, 90.0)


def _truth_module():
    path = SHARED_CHECKS / "truth.py"
    if not path.exists():
        pytest.skip("shared checks not found")
    spec = importlib.util.spec_from_file_location("shared_truth", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _frames(master) -> np.ndarray:
    with h5py.File(master, "r") as f:
        return f["/entry/data/data_000001"][()]


# --------------------------------------------------------------------------------------------------
# Layout, symmetry, rendering
# --------------------------------------------------------------------------------------------------
def test_jungfrau_layouts():
    four = detector_layout("4M")
    assert (four.nx, four.ny) == (2068, 2164)
    assert len(four.modules) == 8
    gaps = four.gap_mask()
    assert gaps.sum() == 2068 * 2164 - 8 * 1030 * 514
    assert gaps[514:550, :].all() and not gaps[513, :1030].any() and not gaps[550, :1030].any()
    assert gaps[:, 1030:1038].all() and not gaps[:514, 1029].any() and not gaps[:514, 1038].any()
    one = detector_layout("1M")
    assert (one.nx, one.ny) == (1030, 1064)
    assert one.gap_mask().sum() == 1030 * JF_GAP_Y
    assert detector_layout((64, 32)).gap_mask().sum() == 0
    with pytest.raises(UsageError):
        detector_layout("2M")


def test_asu_keys_match_gemmi_asu():
    sg = space_group_of("P 43 21 2")
    hkl = p1_indices(HEWL_CELL, sg, 4.0, 50.0)
    keys = _asu_keys(hkl, sg)
    asu = gemmi.ReciprocalAsu(sg)
    ops = sg.operations()
    rng = np.random.default_rng(1)
    gem = np.array([asu.to_asu(list(map(int, h)), ops)[0] for h in hkl[rng.choice(len(hkl), 400)]])
    sub = keys[rng.choice(len(hkl), 400)]
    assert sub.size == 400
    # same orbit <=> same gemmi ASU index, checked on the sample
    gk = {tuple(g) for g in gem}
    idx = rng.choice(len(hkl), 400)
    g2 = np.array([asu.to_asu(list(map(int, h)), ops)[0] for h in hkl[idx]])
    same_gemmi = (g2[:, None, :] == g2[None, :, :]).all(-1)
    same_ours = keys[idx][:, None] == keys[idx][None, :]
    assert np.array_equal(same_gemmi, same_ours)
    assert len(gk) > 100
    # systematic absences (P 43 21 2: h00 with h odd, 00l with l != 4n) removed
    assert not np.any((hkl[:, 1] == 0) & (hkl[:, 2] == 0) & (hkl[:, 0] % 2 == 1))
    assert not np.any((hkl[:, 0] == 0) & (hkl[:, 1] == 0) & (hkl[:, 2] % 4 != 0))


def test_wilson_intensities_symmetry_consistent():
    sim = Simulator(SimulationSettings(detector=(64, 64), mode="stills", n_images=1, d_min_A=3.0))
    hkl, ph = sim.reflections.hkl, sim.reflections.photons
    keys = _asu_keys(hkl, sim.sg)
    order = np.argsort(keys)
    k, v = keys[order], ph[order]
    same = k[1:] == k[:-1]
    assert same.sum() > 1000
    np.testing.assert_array_equal(v[1:][same], v[:-1][same])
    # Wilson: acentric exponential -> <I^2>/<I>^2 ~ 2 in a thin shell (per-ASU values)
    d = 1 / np.linalg.norm(hkl @ sim.A0[0].T, axis=1)
    first = np.r_[True, k[1:] != k[:-1]]
    shell = (d[order] > 3.2) & (d[order] < 4.0) & first
    i = v[shell]
    assert 1.6 < np.mean(i**2) / np.mean(i) ** 2 < 2.4


def test_render_spots_conserves_photons_and_centroid():
    img = np.zeros((40, 50), np.float32)
    xy = np.array([[20.3, 15.7], [33.0, 25.45]])
    render_spots(img, xy, np.array([1000.0, 500.0]), 0.8)
    assert img.sum() == pytest.approx(1500.0, rel=1e-4)
    for (x, y), tot in zip(xy, (1000.0, 500.0), strict=True):
        sub = img[int(y) - 5 : int(y) + 6, int(x) - 5 : int(x) + 6]
        yy, xx = np.mgrid[int(y) - 5 : int(y) + 6, int(x) - 5 : int(x) + 6]
        assert sub.sum() == pytest.approx(tot, rel=1e-3)
        assert (sub * xx).sum() / sub.sum() == pytest.approx(x, abs=1e-3)
        assert (sub * yy).sum() / sub.sum() == pytest.approx(y, abs=1e-3)


def test_model_intensities_match_mtz():
    pdb = shared("hewl_model", "HEWL_refined.pdb")
    mtz = shared("hewl_rot1", "truth.mtz")
    sg = space_group_of(96)
    hkl = p1_indices(HEWL_CELL, sg, 3.0, 30.0)
    from_pdb = model_intensities(pdb, hkl, sg, 3.0)
    from_mtz = model_intensities(mtz, hkl, sg, 3.0)
    ok = (from_pdb > 0) & (from_mtz > 0)
    assert ok.mean() > 0.95
    cc = np.corrcoef(from_pdb[ok], from_mtz[ok])[0, 1]
    assert cc > 0.9


# --------------------------------------------------------------------------------------------------
# Files, truth, determinism
# --------------------------------------------------------------------------------------------------
def _centroid_errors(T, t, frames, image, min_photons, share=0.5):
    """Distances (px) between truth.py predictions and 5x5 centroids of strong, mostly-recorded spots."""
    pa = t["partials"]
    rows = pa[(pa[:, 0] == image) & (pa[:, 4] > min_photons)]
    if t["mode"] == "rotation":  # keep reflections this frame records most of
        tot = {}
        for r in pa:
            key = tuple(r[1:4])
            tot[key] = tot.get(key, 0.0) + r[4]
        rows = rows[[r[4] >= share * tot[tuple(r[1:4])] for r in rows]]
    x, y = T.predict(t, image, rows[:, 1:4])
    img = frames[image].astype(float)
    ny, nx = img.shape
    errs = []
    gy, gx = np.mgrid[-2:3, -2:3]
    for xx, yy in zip(x, y, strict=True):
        ix, iy = round(xx), round(yy)
        if not (2 <= ix < nx - 2 and 2 <= iy < ny - 2):
            continue
        sub = img[iy - 2 : iy + 3, ix - 2 : ix + 3]
        if sub.sum() <= 0:  # in a module gap
            continue
        errs.append(np.hypot((sub * gx).sum() / sub.sum() + ix - xx, (sub * gy).sum() / sub.sum() + iy - yy))
    return np.array(errs)


@pytest.mark.parametrize("mode", ["rotation", "stills"])
def test_truth_predictions_land_on_spots(tmp_path, mode):
    T = _truth_module()
    paths = simulate_dataset(
        tmp_path / "sim",
        detector=(400, 380),
        mode=mode,
        n_images=3,
        distance_mm=50.0,
        beam_center_px=(190.4, 201.7),
        noise=False,
        background=0.0,
        water_ring=0.0,
        n_hot_pixels=0,
        seed=3,
    )
    t = T.load(str(tmp_path))
    assert t["mode"] == mode and len(t["images"]) == 3
    frames = _frames(paths.master)
    n = 0
    for i in range(3):
        e = _centroid_errors(T, t, frames, i, 300.0)
        n += e.size
        assert np.median(e) < 0.05
        assert np.mean(e < 0.5) > 0.95  # the rest: overlaps with neighbours
    assert n > 50


def test_file_layout_reads_back(tmp_path):
    paths = simulate_dataset(
        tmp_path / "jf", detector="1M", mode="rotation", n_images=2, distance_mm=120.0, omega_start_deg=10.0,
        omega_width_deg=0.25, beam_center_px=(515.5, 530.25), wavelength_A=0.9, seed=1,
    )  # fmt: skip
    assert paths.master.name == "jf_master.h5" and paths.data.name == "jf_data_000001.h5"
    assert not list(tmp_path.glob("*.tmp*"))
    with h5py.File(paths.master, "r") as f:
        link = f["/entry/data"].get("data_000001", getlink=True)
        assert isinstance(link, h5py.ExternalLink) and link.filename == "jf_data_000001.h5"
        d = f["/entry/data/data_000001"]
        assert d.shape == (2, 1064, 1030) and d.dtype == np.int32 and d.chunks == (1, 1064, 1030)
        assert "32008" in d._filters
        det = f["/entry/instrument/detector"]
        assert det["beam_center_x"][()] == 515.5 and det["beam_center_y"][()] == 530.25
        assert det["detector_distance"][()] == pytest.approx(0.12)
        assert det["x_pixel_size"][()] == pytest.approx(75e-6)
        assert f["/entry/instrument/beam/incident_wavelength"][()] == pytest.approx(0.9)
        mask = det["detectorSpecific/pixel_mask"][()]
        assert mask.shape == (1064, 1030)
        assert (mask[514:550] == 1).all() and (mask == 256).sum() == 6
        assert np.array_equal(det["detector_module/fast_pixel_direction"].attrs["vector"], [1, 0, 0])
        om = f["/entry/sample/transformations/omega"]
        np.testing.assert_allclose(om[()], [10.0, 10.25])
        np.testing.assert_allclose(om.attrs["vector"], [1, 0, 0])
        np.testing.assert_allclose(f["/entry/sample/unit_cell"][()], HEWL_CELL)
        assert f["/entry/sample/space_group"][()].decode() == "P43212"
        img = d[1]
    assert (img[mask == 1] == 0).all() and (img[mask == 256] == 32766).all()
    assert img[mask == 0].mean() > 0.3  # background photons
    t = json.loads(paths.truth.read_text())
    shared_keys = set(json.loads(shared("hewl_rot1", "truth.json").read_text()))
    assert set(t) == shared_keys
    assert t["image_size_px"] == [1030, 1064] and t["beam_center_px"] == [515.5, 530.25]
    im = t["images"][1]
    assert im["omega_start_deg"] == 10.25 and im["omega_width_deg"] == 0.25
    A0 = np.array(im["A_star_at_omega0"])
    T = _truth_module()
    np.testing.assert_allclose(T.rot([1, 0, 0], 10.375) @ A0, im["A_star_mid"], atol=1e-12)
    cell = gemmi.UnitCell(*HEWL_CELL)
    orth = np.array(cell.orth.mat)  # columns a, b, c: the metric tensor must match
    np.testing.assert_allclose(np.linalg.inv(A0) @ np.linalg.inv(A0).T, orth.T @ orth, atol=1e-8)
    pa = np.load(paths.partials)
    assert pa.dtype == np.float32 and pa.shape[1] == 5 and set(np.unique(pa[:, 0])) == {0.0, 1.0}


def test_same_seed_same_bytes(tmp_path):
    kw = {"detector": (200, 180), "mode": "stills", "n_images": 2, "distance_mm": 50.0}
    a = simulate_dataset(tmp_path / "a" / "x", seed=7, **kw)
    b = simulate_dataset(tmp_path / "b" / "x", seed=7, **kw)
    c = simulate_dataset(tmp_path / "c" / "x", seed=8, **kw)
    fa, fb, fc = _frames(a.master), _frames(b.master), _frames(c.master)
    assert fa.tobytes() == fb.tobytes()
    assert fa.tobytes() != fc.tobytes()
    assert a.truth.read_bytes() == b.truth.read_bytes()
    assert a.partials.read_bytes() == b.partials.read_bytes()


def test_rotation_partials_sum_to_full():
    """A reflection recorded fully inside the sweep: its partials add up to the Lorentz-scaled full I."""
    s = SimulationSettings(
        detector=(300, 300), n_images=40, omega_width_deg=0.1, distance_mm=60.0, d_min_A=2.5
    )
    sim = Simulator(s)
    r = sim._rot
    inside = (r["phi"] - 5 * r["sig"] > 0.5) & (r["phi"] + 5 * r["sig"] < 3.5)
    assert inside.sum() > 20
    tot = np.zeros(len(r["phi"]))
    for i in range(40):
        ri, _, ph = sim._rotation_reflections(i)
        n = int(np.searchsorted(r["lo"], s.omega_start_deg + (i + 1) * s.omega_width_deg))
        cand = np.flatnonzero(r["phi"][:n] + 4.5 * r["sig"][:n] > i * s.omega_width_deg)
        np.testing.assert_array_equal(ri, r["ri"][cand])
        tot[cand] += ph
    np.testing.assert_allclose(tot[inside], r["full"][inside], rtol=2e-5)  # 4.5-sigma window


def test_bad_usage():
    with pytest.raises(UsageError):
        SimulationSettings(mode="movie").validate()
    with pytest.raises(UsageError):
        SimulationSettings(space_group="P 7").validate()
    with pytest.raises(UsageError):
        SimulationSettings(U=np.ones((3, 3))).validate()
    with pytest.raises(UsageError):
        simulate_dataset("/tmp/x", flux=3)
    with pytest.raises(UsageError):
        SimulationSettings(psf_sigma_px=0).validate()
    from jfjoch import _core

    if not _core.cuda_device_count():
        with pytest.raises(UsageError):
            SimulationSettings(backend="cuda").validate()
    runner = CliRunner()
    res = runner.invoke(cli_main, ["out", "--detector", "3x"])
    assert res.exit_code == 2 and "error" in res.output and "Traceback" not in res.output
    res = runner.invoke(cli_main, ["out", "--cell", "1 2 3"])
    assert res.exit_code == 2


def test_cli_writes_dataset(tmp_path):
    res = CliRunner().invoke(
        cli_main,
        [str(tmp_path / "s"), "-d", "128x96", "-n", "2", "--mode", "stills", "--seed", "4", "--no-noise"],
    )
    assert res.exit_code == 0, res.output
    t = json.loads((tmp_path / "truth.json").read_text())
    assert t["mode"] == "stills" and t["image_size_px"] == [128, 96] and len(t["images"]) == 2


# --------------------------------------------------------------------------------------------------
# Cross-check with the nanoBragg data: spot-finder recall on strong reflections
# --------------------------------------------------------------------------------------------------
def find_spots_reference(image: np.ndarray, mask: np.ndarray, nsigma: float = 4.0) -> np.ndarray:
    """Small scipy spot finder (reference until jfjoch.spots.find_spots lands): (n, 2) centroids x, y.

    A pixel is strong when it exceeds the local (15 x 15) mean by nsigma local standard deviations and
    by 3 counts; connected strong pixels (>= 2) form a spot; centroid weighted by counts - local mean.
    """
    valid = (mask == 0) & (image >= 0)
    img = np.where(valid, image, 0).astype(np.float64)
    w = valid.astype(np.float64)
    n = ndimage.uniform_filter(w, 15)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = ndimage.uniform_filter(img, 15) / n
        var = ndimage.uniform_filter(img * img, 15) / n - mean**2
    strong = valid & (img > mean + nsigma * np.sqrt(np.maximum(var, mean))) & (img > mean + 3)
    lab, nlab = ndimage.label(strong)
    if nlab == 0:
        return np.zeros((0, 2))
    sizes = ndimage.sum(strong, lab, np.arange(1, nlab + 1))
    wts = np.where(strong, img - mean, 0)
    cy, cx = np.array(ndimage.center_of_mass(wts, lab, np.arange(1, nlab + 1))).T
    keep = sizes >= 2
    return np.stack([cx[keep], cy[keep]], 1)


# Switch to the project's spot finder once jfjoch.spots lands on main: set this to True.
USE_PROJECT_SPOT_FINDER = True


def find_spots_xy(image: np.ndarray, mask: np.ndarray, t: dict) -> np.ndarray:
    """(n, 2) spot centroids x, y from the selected spot finder."""
    if not USE_PROJECT_SPOT_FINDER:
        return find_spots_reference(image, mask)
    from jfjoch.experiment import Beam, Detector, Experiment

    spots_mod = importlib.import_module("jfjoch.spots")
    nx, ny = t["image_size_px"]
    det = Detector.from_beam_center(
        nx, ny, t["pixel_size_mm"], t["distance_mm"], *t["beam_center_px"], mask=mask != 0
    )
    exp = Experiment(beam=Beam(wavelength_A=t["wavelength_A"]), detector=det)
    spots = spots_mod.find_spots(image, exp, spots_mod.SpotFinderSettings(max_spots=100_000))
    return np.stack([np.asarray(spots.x, float), np.asarray(spots.y, float)], 1)


def _recall(T, t, frames, mask, images, min_photons=200.0):
    found = total = 0
    for i in images:
        pa = t["partials"]
        rows = pa[(pa[:, 0] == i) & (pa[:, 4] > min_photons)]
        x, y = T.predict(t, i, rows[:, 1:4])
        ix, iy = np.round(x).astype(int), np.round(y).astype(int)
        ny, nx = mask.shape
        on = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
        on[on] &= mask[iy[on], ix[on]] == 0
        spots = find_spots_xy(frames[i], mask, t)
        if len(spots) == 0:
            total += on.sum()
            continue
        d, _ = _nearest(spots, np.stack([x[on], y[on]], 1))
        found += int((d <= 1.5).sum())
        total += int(on.sum())
    return found / max(total, 1), total


def _nearest(points, queries):
    from scipy.spatial import cKDTree

    return cKDTree(points).query(queries)


def test_recall_comparable_to_nanobragg(tmp_path):
    T = _truth_module()
    ref_dir = shared("hewl_rot1")
    t_ref = T.load(str(ref_dir))
    with h5py.File(ref_dir / "hewl_rot1_master.h5", "r") as f:
        ref_frames = f["/entry/data/data_000001"][0:3]
        ref_mask = f["/entry/instrument/detector/detectorSpecific/pixel_mask"][()]
    recall_ref, n_ref = _recall(T, t_ref, ref_frames, ref_mask, range(3))

    paths = simulate_dataset(
        tmp_path / "hewl",
        detector=tuple(t_ref["image_size_px"]),
        mode="rotation",
        n_images=3,
        cell=t_ref["unit_cell"],
        space_group=t_ref["space_group_number"],
        wavelength_A=t_ref["wavelength_A"],
        distance_mm=t_ref["distance_mm"],
        beam_center_px=tuple(t_ref["beam_center_px"]),
        omega_width_deg=t_ref["images"][0]["omega_width_deg"],
        photons_per_intensity=150.0,  # about as many > 200-photon reflections per frame as the nanoBragg set
        seed=11,
    )
    t_sim = T.load(str(tmp_path))
    with h5py.File(paths.master, "r") as f:
        sim_frames = f["/entry/data/data_000001"][()]
        sim_mask = f["/entry/instrument/detector/detectorSpecific/pixel_mask"][()]
    recall_sim, n_sim = _recall(T, t_sim, sim_frames, sim_mask, range(3))
    assert n_ref > 50 and n_sim > 50
    assert recall_ref > 0.7
    assert abs(recall_sim - recall_ref) < 0.15, (recall_sim, recall_ref)


# --------------------------------------------------------------------------------------------------
# C++ kernel (csrc/simulate) against numpy/scipy references
# --------------------------------------------------------------------------------------------------
def test_kernel_expected_matches_numpy_reference():
    from jfjoch import _core

    rng = np.random.default_rng(5)
    bg = rng.uniform(0, 3, (90, 120)).astype(np.float32)
    xy = np.c_[rng.uniform(-3, 123, 60), rng.uniform(-3, 93, 60)]
    ph = rng.exponential(300, 60)
    ref = bg.astype(np.float64)
    render_spots(ref, xy, ph, 0.7)
    got = _core.sim_expected(bg, xy, ph, 0.7)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("lam", [0.3, 2.5, 9.9, 10.1, 60.0, 2000.0])
def test_kernel_poisson_distribution(lam):
    """Counts of a constant image follow Poisson(lam): chi-square against scipy.stats.poisson."""
    from scipy import stats

    from jfjoch import _core

    n = 200_000
    bg = np.full((400, n // 400), lam, np.float32)
    cls = np.zeros(bg.shape, np.uint8)
    c = _core.sim_frame(bg, cls, np.zeros((0, 2)), np.zeros(0), 0.6, 42, 3, saturation=2**31 - 1).ravel()
    assert c.mean() == pytest.approx(lam, abs=5 * np.sqrt(lam / n))
    lo, hi = int(stats.poisson.ppf(1e-4, lam)), int(stats.poisson.ppf(1 - 1e-4, lam))
    edges = np.arange(lo, hi + 2)
    obs, _ = np.histogram(np.clip(c, lo, hi), bins=edges)
    p = stats.poisson.pmf(edges[:-1], lam)
    p[0], p[-1] = stats.poisson.cdf(lo, lam), stats.poisson.sf(hi - 1, lam)
    exp = p / p.sum() * n
    big = exp > 20
    chi2 = ((obs[big] - exp[big]) ** 2 / exp[big]).sum()
    assert stats.chi2.sf(chi2, big.sum() - 1) > 1e-4


def test_kernel_classes_saturation_threads_determinism():
    from jfjoch import _core

    bg = np.full((300, 257), 4.0, np.float32)
    bg[10, 10] = 1e6
    cls = np.zeros(bg.shape, np.uint8)
    cls[50:60] = 1
    cls[100, 100] = 2
    args = (bg, cls, np.array([[30.2, 40.7]]), np.array([5e4]), 0.6, 9, 1)
    a = _core.sim_frame(*args, saturation=1000, n_threads=1)
    b = _core.sim_frame(*args, saturation=1000, n_threads=3)
    assert a.tobytes() == b.tobytes()
    assert (a[50:60] == 0).all() and a[100, 100] == 1000 and a[10, 10] == 1000
    assert not np.array_equal(a, _core.sim_frame(*args[:-1], 2, saturation=1000))  # another frame
    q = _core.sim_frame(*args, noise=False, saturation=10**9)
    ref = bg.astype(np.float64)
    render_spots(ref, args[2], args[3], 0.6)
    ref = np.rint(ref)
    ref[cls == 1], ref[cls == 2] = 0, 10**9
    np.testing.assert_array_equal(q, ref)


def test_background_map_matches_experiment_geometry():
    """Background = (const + water ring at 3.1 Å) x polarisation x solid angle, with 1/d from the
    project's geometry kernel (Experiment.resolution_map) rather than the simulator's own formula."""
    from jfjoch.experiment import Beam, Detector, Experiment

    s = SimulationSettings(detector=(160, 120), distance_mm=20.0, beam_center_px=(70.2, 50.9), water_ring=5.0)
    sim = Simulator(s)
    det = Detector.from_beam_center(160, 120, 0.075, 20.0, 70.2, 50.9)
    q = 1.0 / Experiment(beam=Beam(wavelength_A=1.0), detector=det).resolution_map()
    yy, xx = np.mgrid[0:120, 0:160]
    r = np.stack([(xx - 70.2) * 0.075, (yy - 50.9) * 0.075, np.full(xx.shape, 20.0)], -1)
    k = r / np.linalg.norm(r, axis=-1, keepdims=True)
    pol = 0.99 * (1 - k[..., 0] ** 2) + 0.01 * (1 - k[..., 1] ** 2)
    ring = 5.0 * np.exp(-((q - 1 / 3.1) ** 2) / (2 * 0.012**2))
    np.testing.assert_allclose(sim.background_map, (1.0 + ring) * pol * k[..., 2] ** 3, rtol=1e-5, atol=1e-6)
    assert sim.background_map.max() > 3.0  # the ring is on this detector


def test_cli_with_pdb_model(tmp_path):
    pdb = shared("hewl_model", "HEWL_refined.pdb")
    res = CliRunner().invoke(
        cli_main,
        [
            str(tmp_path / "m"),
            "-d",
            "200x200",
            "-n",
            "2",
            "--distance",
            "60",
            "--model",
            str(pdb),
            "--seed",
            "2",
        ],
    )
    assert res.exit_code == 0, res.output
    pa = np.load(tmp_path / "truth_partials.npy")
    assert len(pa) > 50 and pa[:, 4].max() > 100
    res = CliRunner().invoke(cli_main, [str(tmp_path / "m"), "--model", str(tmp_path / "missing.pdb")])
    assert res.exit_code == 2 and "not found" in res.output


@pytest.mark.parametrize("profile", ["gaussian", "lorentzian"])
def test_stills_partiality_profile(profile):
    """photons / (|F|² photons x polarisation x solid angle) equals the profile of the excitation error."""
    s = SimulationSettings(
        detector=(300, 300), mode="stills", n_images=1, distance_mm=50.0, partiality=profile
    )
    sim = Simulator(s)
    hkl, xy, ph = sim.reflections_on(0)
    full = dict(zip(map(tuple, sim.reflections.hkl), sim.reflections.photons, strict=True))
    I = np.array([full[tuple(h)] for h in hkl])
    sv = hkl @ sim.A0[0].T
    eps = np.linalg.norm(sv + np.array([0.0, 0.0, 1.0]), axis=1) - 1.0
    sig = np.hypot(s.spot_width_recip, np.linalg.norm(sv, axis=1) * np.radians(s.mosaicity_deg))
    prof = np.exp(-0.5 * (eps / sig) ** 2) if profile == "gaussian" else 1 / (1 + (eps / sig) ** 2)
    r = np.c_[xy[:, 0] - sim.beam_center[0], xy[:, 1] - sim.beam_center[1], np.full(len(xy), 50.0 / 0.075)]
    k = r / np.linalg.norm(r, axis=1, keepdims=True)
    pol = 0.99 * (1 - k[:, 0] ** 2) + 0.01 * (1 - k[:, 1] ** 2)
    assert len(ph) > 30
    np.testing.assert_allclose(ph, I * prof * pol * k[:, 2] ** 3, rtol=1e-6)


def test_rotation_lorentz_factor_from_numerical_rate():
    """Full photons = |F|² photons x L x pol x solid angle with L = 1 / (lambda |d eps / d phi|), the rate
    taken by finite differences of the shared truth.py rotation."""
    T = _truth_module()
    s = SimulationSettings(detector=(300, 300), n_images=20, distance_mm=50.0, d_min_A=2.0)
    sim = Simulator(s)
    r = sim._rot
    sel = np.flatnonzero(r["full"] > 0)[:200]
    hkl = sim.reflections.hkl[r["ri"][sel]].astype(float)
    eps = []
    for dphi in (-1e-4, 1e-4):
        out = []
        for h, phi in zip(hkl, r["phi"][sel], strict=True):
            sv = T.rot([1, 0, 0], phi + dphi) @ sim.A0[0] @ h
            out.append(np.linalg.norm(sv + np.array([0.0, 0.0, 1.0])) - 1.0)
        eps.append(out)
    rate = np.abs(np.subtract(eps[1], eps[0])) / np.radians(2e-4)
    L = np.minimum(1.0 / rate, 50.0)
    xy = r["xy"][sel]
    rr = np.c_[xy[:, 0] - sim.beam_center[0], xy[:, 1] - sim.beam_center[1], np.full(len(xy), 50.0 / 0.075)]
    k = rr / np.linalg.norm(rr, axis=1, keepdims=True)
    pol = 0.99 * (1 - k[:, 0] ** 2) + 0.01 * (1 - k[:, 1] ** 2)
    I = sim.reflections.photons[r["ri"][sel]]
    np.testing.assert_allclose(r["full"][sel], I * L * pol * k[:, 2] ** 3, rtol=1e-4)


def test_kernel_sparse_spot_path_equals_dense_expected():
    """sim_frame (spots drawn again on top of the background) == sim_frame of the dense sim_expected image."""
    from jfjoch import _core

    rng = np.random.default_rng(3)
    bg = rng.uniform(0, 5, (150, 200)).astype(np.float32)
    cls = np.zeros(bg.shape, np.uint8)
    cls[::7, ::5] = 1
    xy = np.c_[rng.uniform(-3, 203, 300), rng.uniform(-3, 153, 300)]  # overlapping, some off the edge
    ph = rng.exponential(300, 300)
    dense = _core.sim_expected(bg, xy, ph, 0.6)
    a = _core.sim_frame(bg, cls, xy, ph, 0.6, 5, 2, n_threads=2)
    b = _core.sim_frame(dense, cls, np.zeros((0, 2)), np.zeros(0), 0.6, 5, 2)
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_4m_stills_truth_positions_and_mask(tmp_path):
    """Full JUNGFRAU 4M frames: gaps 0, hot pixels saturated, strong spots on their predictions."""
    T = _truth_module()
    paths = simulate_dataset(
        tmp_path / "x", detector="4M", mode="stills", n_images=2, distance_mm=120.0, noise=False,
        background=0.0, water_ring=0.0, seed=5,
    )  # fmt: skip
    t = T.load(str(tmp_path))
    frames = _frames(paths.master)
    with h5py.File(paths.master, "r") as f:
        mask = f["/entry/instrument/detector/detectorSpecific/pixel_mask"][()]
    assert frames.shape == (2, 2164, 2068)
    assert (frames[:, mask == 1] == 0).all() and (frames[:, mask == 256] == 32766).all()
    errs = np.concatenate([_centroid_errors(T, t, frames, i, 300.0) for i in range(2)])
    assert errs.size > 20 and np.median(errs) < 0.05 and np.mean(errs < 0.5) > 0.95


# ------------------------------------------------------------------------------------------------ pipeline


def test_pipeline_indexes_simulated_stills_to_truth(tmp_path):
    """jfjoch.process (spot finding + FFTW indexing) on simulated stills recovers the truth orientations."""
    import jfjoch

    truth = _truth_module()
    out = simulate_dataset(tmp_path / "q", detector=(640, 640), mode="stills", n_images=4, seed=4, distance_mm=60.0)
    res = jfjoch.process(str(out.master), output_prefix=str(tmp_path / "out"), indexing_algorithm="fftw")
    t = truth.load(str(tmp_path))
    n_ok = 0
    for im in res.images:
        if im.indexed and im.lattice is not None:
            ok, angle = truth.misorientation(t["images"][im.number]["A_star_mid"], im.lattice)
            n_ok += ok and angle < 0.3
    assert n_ok >= 3
