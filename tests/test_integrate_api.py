"""jfjoch.integrate on numpy arrays: one still predicted from the truth crystal, against the truth photons."""

from __future__ import annotations

import numpy as np
import pytest

import jfjoch
from jfjoch.integrate import IntegrationSettings
from jfjoch.predict import PredictionSettings, predict_still

from .conftest import shared, truth_module


@pytest.mark.parametrize("method", ["sum", "profile"])
def test_integrate_one_still(method):
    T = truth_module()
    d = shared("hewl_stills1")
    t = T.load(d)
    with jfjoch.pipeline.open_dataset(d / "hewl_stills1_master.h5") as ds:
        exp = ds.experiment
        image = ds.read_image(12)
    A = np.array(t["images"][12]["A_star_mid"])
    pred = predict_still(exp, A, 3e-3, PredictionSettings())
    table, counts, width = jfjoch.integrate(image, exp, pred, IntegrationSettings(method=method), image_number=12)
    assert counts.predicted == len(pred) and counts.integrated == len(table) > 0.8 * len(pred)
    assert counts.integrated + counts.dropped_masked + counts.dropped_background + counts.dropped_edge >= len(pred)
    assert np.all(table.image == 12) and np.all(table.sigma > 0)
    assert (0.5 < width < 3.0) if method == "profile" else np.isnan(width)  # learned only for profile fitting
    P = t["partials"]
    rows = P[(P[:, 0] == 12) & (P[:, 4] >= 100)]
    truth = {tuple(np.rint(r[1:4]).astype(int)): r[4] for r in rows}
    ratio = [i / truth[tuple(h)] for h, i in zip(table.hkl, table.I) if tuple(h) in truth]
    assert len(ratio) > 100
    assert 0.93 <= np.median(ratio) <= 1.07
    if method == "profile":
        assert counts.profile_fitted > 0.9 * counts.integrated
