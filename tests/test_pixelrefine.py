"""-r pixelrefine: reference-driven still integration (jfjoch.pixelrefine)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from jfjoch.cli.process import main
from jfjoch.pixelrefine import PixelRefineSettings, ReferenceIntensities, pixelrefine_image
from jfjoch.predict import predict_still

from .conftest import shared, truth_module


def test_recovers_the_model_of_a_synthetic_still():
    """Pixels drawn from the model itself (Poisson): G, B, spot width and partiality width come back."""
    import jfjoch
    from jfjoch.integration_kernel import Flag, IntegrationKernelSettings, integrate_image
    from jfjoch.scale.symmetry import Symmetry

    T = truth_module()
    d = shared("hewl_stills1")
    t = T.load(d)
    with jfjoch.pipeline.open_dataset(d / "hewl_stills1_master.h5") as ds:
        exp = ds.experiment
    A = np.array(t["images"][3]["A_star_mid"])
    pred = predict_still(exp, A, 3e-3)
    rng = np.random.default_rng(11)
    sym = Symmetry(96)
    keys = np.unique(sym.orbit_keys(pred.hkl.astype(np.int64)))
    values = rng.exponential(2e5, len(keys))
    ref = ReferenceIntensities(space_group=96, keys=keys, values=values)
    G, B, w, rho, bg = 0.004, 3.0, 1.1, 6e-4, 2.0
    R = ref.lookup(pred.hkl)
    amp = G * np.exp(-2 * B / (4 * pred.d**2)) * pred.lp * np.exp(-0.5 * (pred.eps / rho) ** 2) * R
    ny, nx = exp.detector.ny, exp.detector.nx
    yy, xx = np.mgrid[0:ny, 0:nx]
    img = np.full((ny, nx), bg)
    for a, x, y in zip(amp, pred.x, pred.y):
        x0, y0 = int(np.rint(x)), int(np.rint(y))
        sl = np.s_[max(y0 - 8, 0):y0 + 9, max(x0 - 8, 0):x0 + 9]
        g = np.exp(-((xx[sl] - x) ** 2 + (yy[sl] - y) ** 2) / (2 * w * w))
        disc = (xx[sl] - x) ** 2 + (yy[sl] - y) ** 2 <= 5.5**2
        img[sl] += a * g / g[disc].sum()
    counts = rng.poisson(img).astype(np.int32)
    counts[np.asarray(exp.detector.mask)] = 0
    out = integrate_image(counts, np.asarray(exp.detector.mask, np.uint8), exp.detector.saturation, pred.x, pred.y,
                          IntegrationKernelSettings(), profile=False)
    summed = (out.flags & Flag.SUMMED) != 0
    r = pixelrefine_image(counts, exp, pred, out.background, out.n_background, summed, 5.5,
                          PixelRefineSettings(reference=ref))
    assert r.ok
    assert r.scale == pytest.approx(G, rel=0.03)
    assert r.b_factor == pytest.approx(B, abs=1.5)
    assert r.width_px == pytest.approx(w, rel=0.05)
    assert r.partiality_width == pytest.approx(rho, rel=0.1)
    # amplitudes: the photons of the disc, unbiased for the strong ones
    strong = r.fitted & (amp > 500)
    assert strong.sum() > 50
    assert np.median(r.I[strong] / amp[strong]) == pytest.approx(1.0, abs=0.03)


def test_stills_end_to_end(tmp_path, capsys):
    master = shared("hewl_stills1", "hewl_stills1_master.h5")
    truth_mtz = master.parent / "truth.mtz"
    code = main([str(master), "-X", "ffbidx", "-C", "79.3,79.3,37.8,90,90,90", "-S", "96", "-r", "pixelrefine",
                 "-z", str(truth_mtz), "-e", "29", "-N", "2", "-o", str(tmp_path / "p")])
    out = capsys.readouterr()
    assert code == 0, out.err
    with h5py.File(tmp_path / "p_process.h5") as f:
        G = f["entry/integration/pixelrefineScale"][()]
        w = f["entry/integration/pixelrefineWidth"][()]
        rho = f["entry/integration/pixelrefinePartialityWidth"][()]
        flags = f["entry/reflections/flags"][()]
    ok = np.isfinite(G)
    assert ok.sum() >= 28
    assert np.std(G[ok]) / np.mean(G[ok]) < 0.15  # one crystal, one scale: the per-image G agree
    assert np.all((w[ok] > 0.5) & (w[ok] < 2.0)) and np.all((rho[ok] > 1e-4) & (rho[ok] < 5e-3))
    assert np.mean((flags & 2) != 0) > 0.9  # the amplitudes come from the pixel model
    assert (tmp_path / "p.mtz").exists()  # -z implies -M


@pytest.mark.parametrize(("extra", "words"), [(["-R"], "rotation"), ([], "space group")])
def test_bad_uses(tmp_path, capsys, extra, words):
    name = "hewl_rot1" if extra else "hewl_stills1"
    master = shared(name, f"{name}_master.h5")
    sg = ["-S", "96"] if extra else []
    code = main([str(master), *extra, *sg, "-r", "pixelrefine", "-z", str(master.parent / "truth.mtz"),
                 "-o", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and words in err and err.strip().count("\n") == 0
