"""Scaling and merging of synthetic reflection tables with a known truth (tests/scale_data.py)."""

from __future__ import annotations

import numpy as np
import pytest

from jfjoch.io.reflections import write_merged_mtz
from jfjoch.scale import scale_and_merge
from jfjoch.scale.data import ScaleInput
from jfjoch.scale.engine import ReferenceData
from jfjoch.tables import ReflectionTable

from .conftest import SHARED_CHECKS, shared
from .scale_data import (
    cc_to_truth,
    setting_agreement,
    simulated_tables,
    synthetic_stills,
    truth_intensities,
    truth_tables,
)


def _check_merging_cc(result, dataset, tmp_path):
    """CC to truth.mtz after a per-shell scale, computed by shared/checks/check_merging.py."""
    import importlib.util
    import sys

    path = SHARED_CHECKS / "check_merging.py"
    if not path.exists():
        pytest.skip("shared/checks/check_merging.py not found")
    sys.path.insert(0, str(SHARED_CHECKS))
    try:
        spec = importlib.util.spec_from_file_location("check_merging", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(SHARED_CHECKS))
    out = write_merged_mtz(tmp_path / "merged.mtz", result)
    return mod.cc_to_truth(str(out), str(dataset / "truth.mtz"))[0]


def test_every_tenth_image_times_three(capsys):
    """hewl_stills1 truth tables whose every tenth image has I (and σ) multiplied by 3: G of those images
    comes out 3x the others' (within 5 %)."""
    inp, _ = truth_tables(shared("hewl_stills1"), scale_every=10, factor=3.0)
    r = scale_and_merge([inp], partiality="fixed", space_group=96)
    im = r.images
    tenth = (im.image % 10 == 0) & im.accepted
    other = ~(im.image % 10 == 0) & im.accepted
    ratio = np.exp(np.mean(np.log(im.scale[tenth])) - np.mean(np.log(im.scale[other])))
    each = im.scale[tenth] / np.exp(np.mean(np.log(im.scale[other])))
    with capsys.disabled():
        print(f"\nG(every tenth) / G(others) = {ratio:.4f} (per image {each.min():.3f} - {each.max():.3f})")
    assert ratio == pytest.approx(3.0, rel=0.05)
    assert np.all(np.abs(each / 3.0 - 1) < 0.15)


def test_stills_truth_tables_vs_truth_mtz(tmp_path, capsys):
    """hewl_stills1: partiality = Gaussian of the excitation error, lp = polarisation × solid angle, from the
    truth geometry; merged with -P fixed: CC to truth.mtz (per-shell scale) > 0.99."""
    ds = shared("hewl_stills1")
    inp, _ = truth_tables(ds)
    r = scale_and_merge([inp], partiality="fixed", space_group=96)
    cc = _check_merging_cc(r, ds, tmp_path)
    r1 = scale_and_merge([inp], partiality="unity", space_group=96)
    cc1 = _check_merging_cc(r1, ds, tmp_path)
    with capsys.disabled():
        print(f"\nhewl_stills1 truth tables: CC to truth {cc:.4f} (-P fixed), {cc1:.4f} (-P unity)")
    assert cc > 0.99
    assert cc > cc1 + 0.02  # the partiality model matters


def test_rotation_truth_tables_vs_truth_mtz(tmp_path, capsys):
    """hewl_rot1: partials summed over images, lp = Lorentz × polarisation × solid angle; with the exact
    partiality (-P fixed) the merged intensities have CC > 0.99 to truth.mtz."""
    ds = shared("hewl_rot1")
    inp, _ = truth_tables(ds, partiality="truth")
    r = scale_and_merge([inp], partiality="fixed", space_group=96)
    cc = _check_merging_cc(r, ds, tmp_path)
    with capsys.disabled():
        print(f"\nhewl_rot1 truth tables (exact partiality): CC to truth {cc:.4f}; rejected {r.rejections}")
    assert cc > 0.99
    assert np.all(np.abs(np.log(r.images.scale[r.images.accepted])) < 0.1)  # no scale in the truth


@pytest.fixture(scope="module")
def rotation_sim():
    return simulated_tables("rotation", 60, sg="P 43 21 2", mosaicity_deg=0.1, omega_width_deg=0.2, seed=4)


def test_rot_partiality_model(rotation_sim, capsys):
    """In-house simulator sweep (Gaussian rocking curves, mosaicity 0.1°, 0.2° images): -P rot refines the
    rocking width and merges with CC > 0.995 to the simulator's intensities; -P unity cannot correct the
    partials cut at the sweep's ends."""
    st = rotation_sim
    r = scale_and_merge([st.input], partiality="rot", space_group=96)
    cc = cc_to_truth(r.merged.hkl, r.merged.I, st.truth_keys, st.truth_I, 96)
    eta = float(np.nanmedian(r.images.mosaicity))
    ru = scale_and_merge([st.input], partiality="unity", space_group=96)
    ccu = cc_to_truth(ru.merged.hkl, ru.merged.I, st.truth_keys, st.truth_I, 96)
    with capsys.disabled():
        print(f"\n-P rot: CC {cc:.4f}, refined η {eta:.3f}° (simulated 0.1°; lp includes polarisation and solid "
              f"angle, so η reads larger); -P unity: CC {ccu:.4f}")
    assert cc > 0.995
    assert 0.05 < eta < 0.16
    assert cc > ccu + 0.02


def test_wedge_refinement(rotation_sim):
    """-w: the per-image wedge is refined; on data whose images really cover 0.2° it stays near 0.2°."""
    r = scale_and_merge([rotation_sim.input], partiality="rot", space_group=96, wedge=0.0)
    w = r.images.wedge[r.images.accepted]
    assert np.all(np.isfinite(w)) and abs(np.median(w) - 0.2) < 0.05
    assert r.overall.cc_half > 0.99


@pytest.mark.parametrize(("sg", "number", "cell"), [("P 4", 75, (79.3, 79.3, 37.8, 90, 90, 90)),
                                                    ("P 3", 143, (60.0, 60.0, 90.0, 90, 90, 120))])
def test_ambiguity_stills(sg, number, cell, capsys):
    """Stills of the in-house simulator in a group whose lattice has more symmetry than its point group,
    every image re-indexed by a random alternative: >= 98 % end on one setting; merged CC to truth > 0.99."""
    st = simulated_tables("stills", 150, sg=sg, cell=cell, ambiguity=True, d_min=2.5, seed=number)
    r = scale_and_merge([st.input], partiality="fixed")
    agree = setting_agreement(st.op, r.ambiguity["unit_op"], st.ops, number)
    cc = cc_to_truth(r.merged.hkl, r.merged.I, st.truth_keys, st.truth_I, number, st.ops)
    with capsys.disabled():
        print(f"\n{sg}: {len(st.ops)} settings, {100 * agree:.1f} % of 150 stills on one setting, CC to truth {cc:.4f}")
    assert agree >= 0.98
    assert cc > 0.99


def _reference_from_truth(keys, values, cell, sg) -> ReferenceData:
    from jfjoch.scale.symmetry import unpack

    return ReferenceData(unpack(keys), values, cell, sg, path="truth")


def test_reference_scaling_and_ambiguity(capsys):
    """-z: images scaled to a reference (CCref reported), and the ambiguity resolved against it."""
    st = simulated_tables("stills", 80, sg="P 4", ambiguity=True, d_min=2.5, seed=7)
    ref = _reference_from_truth(st.truth_keys, st.truth_I, st.input.cell, 75)
    r = scale_and_merge([st.input], partiality="fixed", reference=ref)
    agree = setting_agreement(st.op, r.ambiguity["unit_op"], st.ops, 75)
    with capsys.disabled():
        print(f"\n-z: CCref {r.overall.cc_ref:.4f}, settings {100 * agree:.1f} %")
    assert agree >= 0.98
    assert r.overall.cc_ref > 0.99 and all(s.cc_ref is not None for s in r.shells)
    assert not r.iterations  # no iterN_scale.dat with a reference
    # on the reference's scale: G ≈ the simulator's photons per unit
    assert r.merged.I.mean() == pytest.approx(np.mean(st.truth_I), rel=0.3)


def test_bfactor_refinement():
    """-B: per-image B recovered from stills with B between -10 and 10 Å²."""
    rng = np.random.default_rng(5)
    B = rng.uniform(-10, 10, 200)
    syn = synthetic_stills(200, 300, B=B, seed=5, d_min=1.8)
    r = scale_and_merge(syn.inputs, partiality="fixed", refine_bfactor=True)
    got = r.images.b_factor
    assert np.corrcoef(got, B)[0, 1] > 0.95
    assert np.median(np.abs((got - got.mean()) - (B - B.mean()))) < 1.5


def test_anomalous_outputs(tmp_path):
    syn = synthetic_stills(100, 300, seed=6)
    r = scale_and_merge(syn.inputs, partiality="fixed", anomalous=True)
    m = r.merged
    assert m.i_plus is not None and np.all(m.i_plus[m.centric] == m.I[m.centric])
    assert r.overall.cc_anom is not None and abs(r.overall.cc_anom) < 0.2  # no anomalous signal simulated
    import gemmi

    mtz = gemmi.read_mtz_file(str(write_merged_mtz(tmp_path / "a.mtz", r)))
    assert [c.label for c in mtz.columns] == ["H", "K", "L", "IMEAN", "SIGIMEAN", "I(+)", "SIGI(+)", "I(-)", "SIGI(-)"]


def test_rejections_counted():
    """Outliers, bad images by CC and by ΔCC1/2 are rejected and counted."""
    syn = synthetic_stills(200, 300, seed=8)
    t = syn.inputs[0].reflections
    I = t.I.copy()
    rng = np.random.default_rng(8)
    bad_img = np.isin(t.image, [3, 50, 120])
    I[bad_img] = rng.permutation(I[bad_img])  # three images of noise
    noisy = ScaleInput(reflections=ReflectionTable(**{**t.columns(), "I": I}), cell=syn.inputs[0].cell,
                       space_group=96, wavelength=1.0)
    r = scale_and_merge([noisy], partiality="fixed", min_image_cc=50.0)
    assert r.image_rejections == {"min_image_cc": 3}
    assert set(r.images.image[~r.images.accepted].tolist()) == {3, 50, 120}
    assert r.rejections["image_min_cc"] == 900
    r2 = scale_and_merge([noisy], partiality="fixed", reject_delta_cchalf=3.0)
    assert set(r2.images.image[r2.images.reason == "delta_cchalf"].tolist()) == {3, 50, 120}
    assert r2.image_rejections == {"delta_cchalf": 3}
    I2 = t.I.copy()
    outl = rng.random(len(I2)) < 0.002
    I2[outl] += 40 * t.sigma[outl] + 5000
    spiky = ScaleInput(reflections=ReflectionTable(**{**t.columns(), "I": I2}), cell=syn.inputs[0].cell,
                       space_group=96, wavelength=1.0)
    r3 = scale_and_merge([spiky], partiality="fixed", reject_outliers=6.0)
    assert 0.7 * outl.sum() <= r3.rejections["outlier"] <= 2 * outl.sum()
    r4 = scale_and_merge([spiky], partiality="fixed")
    assert r3.overall.cc_half > r4.overall.cc_half + 0.05


def test_delta_cc_half_equals_brute_force():
    """ΔCC1/2 per image from the one-pass formula equals recomputing CC1/2 without each image."""
    from jfjoch.scale.merge import delta_cc_half

    rng = np.random.default_rng(2)
    n_ref, n_img = 300, 40
    truth = rng.exponential(100, n_ref)
    img = np.repeat(np.arange(n_img), 60)
    ref = rng.integers(0, n_ref, len(img))
    x = truth[ref] + rng.normal(0, 10, len(img))
    x[img == 7] = rng.permutation(x[img == 7])
    w = rng.uniform(0.5, 2.0, len(img))
    cc_all, dcc = delta_cc_half(ref, img, x, w, n_ref, n_img, seed=3)
    half = np.random.default_rng(3).random(n_img) < 0.5

    def cc(mask):
        a = [np.bincount(ref[mask & (half[img] == s)], (w * x)[mask & (half[img] == s)], n_ref) /
             np.bincount(ref[mask & (half[img] == s)], w[mask & (half[img] == s)], n_ref) for s in (True, False)]
        ok = np.isfinite(a[0]) & np.isfinite(a[1])
        return np.corrcoef(a[0][ok], a[1][ok])[0, 1]

    with np.errstate(invalid="ignore", divide="ignore"):
        assert cc_all == pytest.approx(cc(np.ones(len(img), bool)), abs=1e-10)
        for i in (0, 7, 13, 39):
            assert dcc[i] == pytest.approx(cc_all - cc(img != i), abs=1e-10)
    assert np.argmin(dcc) == 7


def test_smooth_scales_on_sparse_sweep():
    """A sweep with only ~8 reflections per image and a smoothly varying G: the restraints along the sweep
    recover G (an image alone could not: its 8 reflections give ~10 % scatter)."""
    n_img = 400
    G = 1.0 + 0.3 * np.sin(np.arange(n_img) / 40.0)
    syn = synthetic_stills(n_img, 8, G=G, seed=9, photons=3000.0, d_min=3.5)
    inp = syn.inputs[0]
    inp = ScaleInput(reflections=inp.reflections, cell=inp.cell, space_group=96, wavelength=1.0,
                     full_observations=True)  # consecutive images of one sweep
    r = scale_and_merge([inp], partiality="fixed")
    g = r.images.scale / np.exp(np.mean(np.log(r.images.scale)))
    truth = G / np.exp(np.mean(np.log(G)))
    err = np.abs(g / truth - 1)
    assert np.median(err) < 0.04


def test_two_runs_settings_and_ambiguity():
    """Two rotation runs of a P4 crystal, the second indexed in the alternative setting with a and b swapped
    in the cell: put into one setting, merged CC to truth > 0.99; cells 3 % apart are refused."""
    from jfjoch.errors import InputError

    st = simulated_tables("rotation", 40, sg="P 4", cell=(79.3, 79.3, 37.8, 90, 90, 90), seed=11,
                          omega_width_deg=0.5)
    t = st.input.reflections
    R = np.array([[0, 1, 0], [1, 0, 0], [0, 0, -1]])  # the P4 twin law
    hkl = t.hkl.astype(np.int64) @ R
    t2 = ReflectionTable(**{**t.columns(), "h": hkl[:, 0], "k": hkl[:, 1], "l": hkl[:, 2]})
    a = st.input
    b = ScaleInput(reflections=t2, cell=a.cell, space_group=75, wavelength=1.0, goniometer=a.goniometer, run_id=1)
    r = scale_and_merge([a, b], partiality="rot")
    assert r.ambiguity["counts"] == [1, 1] and r.ambiguity["unit"] == "run"
    assert cc_to_truth(r.merged.hkl, r.merged.I, st.truth_keys, st.truth_I, 75, st.ops) > 0.99
    assert set(r.observations.batch[r.observations.run == 1] // 10000) == {1}  # runs offset by 10000
    c = ScaleInput(reflections=t, cell=(79.3 * 1.03, 79.3 * 1.03, 37.8, 90, 90, 90), space_group=75,
                   wavelength=1.0, goniometer=a.goniometer, run_id=2)
    with pytest.raises(InputError, match="cells disagree"):
        scale_and_merge([a, c], partiality="rot")


def test_truth_intensity_helper():
    keys, vals = truth_intensities(shared("hewl_rot1"))
    assert len(keys) == len(vals) > 10000 and np.all(np.diff(keys) > 0)


def test_high_resolution_limit_and_notes():
    syn = synthetic_stills(60, 300, seed=12, d_min=1.8)
    r = scale_and_merge(syn.inputs, partiality="fixed", scaling_high_resolution=2.5, wedge=0.0)
    assert r.merged.d.min() >= 2.5 - 1e-6 and r.overall.d_min >= 2.5 - 1e-6
    assert r.rejections["resolution"] > 0
    assert any("-w/--wedge ignored" in n for n in r.notes)
    assert len(r.shells) == 10 and r.shells[-1].d_min == pytest.approx(r.overall.d_min)
