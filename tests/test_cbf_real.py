"""Real PILATUS3 6M thaumatin stills (miniCBF): spot finding on every image and end-to-end indexing."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from jfjoch.io.cbf import CbfDataset, open_cbf
from jfjoch.io.nxmx import INT32_MIN
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


class FabioSeries(CbfDataset):
    """The reader before the C++ decoder: fabio decompresses and decodes (the reference)."""

    def read_image(self, i: int) -> np.ndarray:
        import fabio

        data = fabio.open(str(self.paths[i])).data
        return np.where(data < 0, INT32_MIN, data).astype(np.int32)


def test_decoder_equals_fabio_on_all_ten_frames():
    """Raw values (int64, -1 gaps and -2 bad pixels included) and the pipeline's int32 images, exactly."""
    import fabio

    from jfjoch import _core
    from jfjoch.io.cbf import _decompress, _parse_binary

    paths = _paths()
    ds = open_cbf(paths)

    def one(i):
        ref = fabio.open(str(paths[i])).data
        data = _decompress(paths[i].read_bytes())
        _, b = _parse_binary(data)
        raw = np.empty((b.ny, b.nx), np.int64)
        used = _core.cbf_byte_offset_decode(memoryview(data)[b.start : b.start + b.size], raw)
        assert used == b.size
        np.testing.assert_array_equal(raw, ref)
        np.testing.assert_array_equal(ds.read_image(i), np.where(ref < 0, INT32_MIN, ref))
        return int((ref == -2).sum()), int((ref == -1).sum())

    with ThreadPoolExecutor(2) as pool:
        counts = list(pool.map(one, range(10)))
    assert all(bad > 0 and gap > 400_000 for bad, gap in counts)


def test_pipeline_results_unchanged(monkeypatch):
    """Spots, indexing and integration on real stills are those of the fabio reader (the same pixels),
    with the options of the benchmark (docs/performance.md)."""
    import jfjoch.pipeline as pipeline

    paths = _paths()[:3]
    opts = {"write": False, "indexing_algorithm": "ffbidx", "unit_cell": (58, 58, 151, 90, 90, 90),
            "space_group": 92, "threads": 2}  # fmt: skip
    ours = process(paths, **opts)
    monkeypatch.setattr(pipeline, "open_dataset", lambda p: FabioSeries(p))
    ref = process(paths, **opts)
    assert [im.ok for im in ours.images] == [True] * 3
    for a, b in zip(ours.images, ref.images):
        assert (a.n_spots, a.indexed, a.n_indexed) == (b.n_spots, b.indexed, b.n_indexed)
        assert a.counts == b.counts
        np.testing.assert_array_equal(a.cell, b.cell)
    assert sum(im.indexed for im in ours.images) >= 2
