"""_process.h5: SPEC paths, round trip, atomic write."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from jfjoch import Beam, Detector, Experiment, Goniometer
from jfjoch.errors import ProcessingError
from jfjoch.io.process_h5 import read_process_h5, write_process_h5
from jfjoch.results import ImageResult, IndexingSummary, IntegrationCounts, ProcessResult
from jfjoch.tables import ReflectionTable, SpotTable


def _result() -> ProcessResult:
    det = Detector.from_beam_center(64, 48, 0.075, 80.0, 30.5, 20.25, mask=np.zeros((48, 64), bool), saturation=32766)
    exp = Experiment(beam=Beam(1.0), detector=det, goniometer=Goniometer(np.array([1.0, 0, 0]), 0.0, 0.5),
                     unit_cell=(79.0, 79.0, 38.0, 90.0, 90.0, 90.0), space_group=96)
    lat = np.diag([79.0, 79.0, 38.0])
    refl = ReflectionTable(image=[3, 3], h=[1, 0], k=[2, 0], l=[3, 4], I=[100.0, 5.0], sigma=[10.0, 2.0],
                           x=[10.0, 20.0], y=[11.0, 21.0], d=[3.0, 9.0], phi=[1.25, 1.4], partiality=[0.5, 1.0],
                           lp=[1.2, 1.1], background=[0.5, 0.4], flags=[1, 3])
    ims = [
        ImageResult(number=3, spots=SpotTable(x=[1.5, 2.5], y=[3.0, 4.0], intensity=[100, 50], d=[2.0, 3.0],
                                              ice_ring=[False, True], indexed=[True, False]),
                    profile=np.arange(5, dtype=np.float32),
                    stats={"resolution_estimate": 2.1, "background_estimate": 0.4, "max_value": 900},
                    indexed=True, lattice=lat, cell=(79.0, 79.0, 38.0, 90.0, 90.0, 90.0), reflections=refl,
                    counts=IntegrationCounts(predicted=5, integrated=2, dropped_masked=3), mosaicity=0.05),
        ImageResult(number=4, ok=False, error="image 4: corrupt chunk"),
        ImageResult(number=5, spots=SpotTable(x=[7.0], y=[8.0], intensity=[10], d=[4.0], ice_ring=[False]),
                    profile=np.ones(5, np.float32)),
    ]
    return ProcessResult(experiment=exp, images=ims, q=np.linspace(0.1, 1, 5),
                         indexing=IndexingSummary(algorithm="fftw", mode="two_pass_rotation", rotation_lattice=lat))


def test_spec_paths_and_round_trip(tmp_path):
    path = write_process_h5(tmp_path / "out_process.h5", _result(), source="x_master.h5")
    with h5py.File(path) as f:
        mx = f["entry/MX"]
        assert list(f["entry/image/number"][()]) == [3, 4, 5]
        assert list(mx["nPeaks"][()]) == [2, 0, 1]
        assert mx["peakXPosRaw"].shape == (3, 2) and mx["peakXPosRaw"].dtype == np.float32
        assert mx["peakXPosRaw"].attrs["units"] == "pixel"
        assert mx["peakIndexed"][0, 0] == 1 and mx["peakIceRing"][0, 1] == 1
        assert list(mx["imageIndexed"][()]) == [1, 0, 0]
        assert mx["latticeRealSpace"].shape == (3, 3, 3)
        np.testing.assert_allclose(mx["latticeRealSpace"][0], np.diag([79.0, 79.0, 38.0]))
        assert list(mx["spotsIndexed"][()]) == [1, 0, 0]
        assert mx["resolutionEstimate"][0] == pytest.approx(2.1)
        assert np.isnan(mx["resolutionEstimate"][2])
        assert "lab_frame" in mx.attrs and "pixel_origin" in mx.attrs
        assert f["entry/azint/profile"].shape == (3, 5)
        assert f["entry/instrument/detector/beam_center_x"][()] == pytest.approx(30.5)
        assert f["entry/instrument/detector/detector_distance"].attrs["units"] == "m"
    r = read_process_h5(path)
    assert [im.number for im in r.images] == [3, 4, 5]
    assert r.images[0].indexed and not r.images[1].ok
    np.testing.assert_allclose(r.images[0].x, [1.5, 2.5])
    assert r.experiment.detector.beam_center_px == pytest.approx((30.5, 20.25))
    assert r.experiment.space_group == 96 and r.indexing.mode == "two_pass_rotation"
    assert r.images[1].error == "image 4: corrupt chunk"
    with h5py.File(path) as f:
        g = f["entry/reflections"]
        assert set(g) == set(ReflectionTable.DTYPES)  # exactly the SPEC columns
        for name, dt in ReflectionTable.DTYPES.items():
            assert g[name].dtype == dt and g[name].shape == (2,)
        assert g["phi"].attrs["units"] == "degree" and g["I"].attrs["units"] == "photons"
        assert list(g["l"][()]) == [4, 3]  # sorted by image, then h, k, l: (0, 0, 4) before (1, 2, 3)
        assert list(f["entry/integration/droppedMasked"][()]) == [3, 0, 0]
    assert len(r.reflections) == 2 and r.images[0].counts.integrated == 2
    np.testing.assert_allclose(r.images[0].reflections.I, [5.0, 100.0])  # (0,0,4) sorts before (1,2,3)


def test_write_is_atomic(tmp_path, monkeypatch):
    """A failure while writing leaves neither the final file nor the temporary one."""
    import jfjoch.io.process_h5 as mod

    def boom(*a, **k):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(mod, "write_experiment", boom)
    with pytest.raises(ProcessingError, match="interrupted"):
        write_process_h5(tmp_path / "out_process.h5", _result())
    assert list(tmp_path.iterdir()) == []


def test_unwritable_destination(tmp_path):
    with pytest.raises(ProcessingError):
        write_process_h5(tmp_path / "missing_dir" / "out_process.h5", _result())
