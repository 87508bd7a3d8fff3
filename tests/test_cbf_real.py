"""Real PILATUS3 6M thaumatin stills (miniCBF): spot finding on every image and end-to-end indexing."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from jfjoch.io.cbf import open_cbf
from jfjoch.pipeline import open_dataset, process
from jfjoch.spots import SpotFinder, SpotFinderSettings

from .conftest import shared


def _paths():
    d = shared("thaumatin_grid_stills")
    return sorted(d.glob("thau_3_2_*.cbf.bz2"))


def test_spot_finder_on_all_ten_images():
    """Every image gives a healthy spot list (DIALS finds ~1000 per image) inside the detector's
    resolution range and outside the module gaps; reading in two threads gives the same images."""
    paths = _paths()
    with open_cbf(paths) as ds:
        assert ds.n_images == 10
        e = ds.experiment
        res = e.resolution_map()
        d_min, d_max = float(np.nanmin(res)), float(np.nanmax(res[np.isfinite(res)]))
        finder = SpotFinder(e, SpotFinderSettings(max_spots=100000, high_resolution_A=0.0))
        with ThreadPoolExecutor(2) as pool:
            images = list(pool.map(ds.read_image, range(10)))
        counts = []
        for img in images:
            spots = finder.find(img)
            counts.append(len(spots))
            assert len(spots) >= 100
            assert np.all(spots.d >= d_min * 0.999) and np.all(spots.d <= d_max * 1.001)
            xi, yi = np.rint(spots.x).astype(int), np.rint(spots.y).astype(int)
            assert np.all(img[yi, xi] != np.iinfo(np.int32).min)  # not in a module gap (error pixels)
    assert np.median(counts) >= 300


def test_pipeline_opens_cbf():
    with open_dataset(_paths()[1]) as ds:
        assert ds.n_images == 1 and ds.experiment.detector.nx == 2463


def test_pipeline_indexes_a_still_with_fft():
    """The header geometry is good enough to index de novo (thaumatin a = b ≈ 58 Å, c ≈ 151 Å, 90°);
    a wrong beam centre or distance would break it."""
    r = process(_paths()[1], write=False, indexing_algorithm="fftw")
    img = r.images[0]
    assert img.indexed
    cell = sorted(img.cell[:3])
    assert cell[0] == pytest.approx(58.0, rel=0.03) and cell[1] == pytest.approx(58.0, rel=0.03)
    assert cell[2] == pytest.approx(151.0, rel=0.03)
    np.testing.assert_allclose(img.cell[3:], 90.0, atol=1.5)
