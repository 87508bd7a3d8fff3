"""The per-frame pass (csrc/frame, jfjoch.frame_pass): the same results as the separate kernels and their
numpy references, with and without the fused decode, for every pixel kind, window size, dense and sparse
rows, stored type and thread count."""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest

from jfjoch import Beam, Detector, Experiment, _core
from jfjoch.azint import AzimuthalIntegrator
from jfjoch.errors import CorruptFrameError
from jfjoch.frame_pass import FramePass
from jfjoch.image_stats import ImageStatisticsSettings, StatisticsCalculator, compute_image_statistics
from jfjoch.io.nxmx import RawChunk, to_int32
from jfjoch.spots import SpotFinder, SpotFinderSettings

from .spot_data import experiment, gaussian_spots
from .test_azint import numpy_reference
from .test_spots import reference_strong_map

INT32_MIN = np.iinfo(np.int32).min


def assert_same_spots(a, b) -> None:
    """Two SpotLists equal bit for bit (arrays and image statistics)."""
    for name in ("x", "y", "intensity", "n_pixels", "d", "ice_ring"):
        ga, gb = getattr(a, name), getattr(b, name)
        assert ga.dtype == gb.dtype and ga.tobytes() == gb.tobytes(), name
    for name in ("max_value", "n_saturated", "n_error", "n_strong_pixels"):
        assert getattr(a, name) == getattr(b, name), name


def assert_same_profile(mean, count, ref_mean, ref_count) -> None:
    """Same pixel counts; the same means up to the rounding of double sums (another order of additions)."""
    np.testing.assert_array_equal(count, ref_count)
    np.testing.assert_array_equal(np.isnan(mean), np.isnan(ref_mean))
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-13, atol=0, equal_nan=True)


def _case(rng, ny, nx, background, spots=40, saturation=4000):
    """Poisson background + spots, pedestal noise (negative values), masked pixels and a module gap, error
    values, saturated pixels; off-centre beam so that resolution limits and q bins cut through the image."""
    img, _ = gaussian_spots(ny, nx, spots, rng, background=background, photons=(30, 3000))
    img += rng.integers(-2, 3, img.shape, dtype=np.int32)
    mask = rng.random((ny, nx)) < 0.03
    mask[ny // 2 : ny // 2 + 5] = True
    mask[:, nx // 3 : nx // 3 + 3] = True
    img[rng.random((ny, nx)) < 0.003] = INT32_MIN
    img[rng.random((ny, nx)) < 0.002] = -(2**22)  # below -2^22: an error value for the spot finder only
    img[rng.random((ny, nx)) < 0.003] = saturation + 17
    exp = experiment(nx, ny, mask=mask, saturation=saturation, distance_mm=25.0, beam=(nx * 0.3, ny * 0.4))
    return img, exp


def _stages(exp, st):
    sf = SpotFinder(exp, st, backend="cpu")
    az = AzimuthalIntegrator(exp, backend="cpu")
    return sf, az, FramePass(sf, az, backend="cpu")


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(
    ("w", "sigma", "thr", "isig", "bg"),
    [(1, 3.0, 10, 4.0, 0.5), (3, 2.5, 5, 0.0, 3.0), (7, 3.0, 10, 4.0, 1.0), (7, 3.0, 3, 4.0, 12.0),
     (10, 1.7, 3, 2.0, 6.0)],
)
def test_same_as_separate_kernels(seed, w, sigma, thr, isig, bg):
    rng = np.random.default_rng(seed)
    img, exp = _case(rng, 97, 131, bg)  # odd sizes: vector tails in every row
    st = SpotFinderSettings(photon_threshold=thr, sigma=sigma, window_half=w, min_isigma=isig, max_spots=0,
                            high_resolution_A=1.6, low_resolution_A=8.0)  # fmt: skip
    sf, az, fp = _stages(exp, st)
    got = fp.run(img)
    ref = sf.find(img)
    assert ref.n_strong_pixels > 3
    assert_same_spots(got.spots, ref)
    assert_same_profile(got.profile, got.count, *az.integrate_with_counts(img))
    # and the independent numpy references of the strong-pixel test and of the integration
    d = exp.resolution_map()
    strong = reference_strong_map(img, exp.detector.mask, (d < 1.6) | (d > 8.0), 4000, st)
    assert got.spots.n_strong_pixels == int((strong == 1).sum())
    s = az.settings
    ref_mean, ref_count = numpy_reference(img, exp, s.q_min, s.q_max, s.n_bins, s.polarization_fraction)
    # (float32 weights against float64 corrections; a pixel within rounding of a bin edge may change bin)
    assert np.abs(got.count - ref_count).max() <= 1
    ok = got.count >= 20
    scale = np.nanmax(np.abs(ref_mean[ok]))
    np.testing.assert_allclose(got.profile[ok], ref_mean[ok], rtol=1e-5, atol=1e-6 * scale)


def test_dense_and_sparse_rows_alternate():
    """Rows full of candidates (high background, low threshold) between quiet ones: the sums of squares are
    read directly, then kept as column sums, then dropped again; the strong pixels stay the same."""
    rng = np.random.default_rng(3)
    ny, nx = 160, 150
    img, exp = _case(rng, ny, nx, 0.3)
    img[40:70] += rng.poisson(25.0, (30, nx)).astype(np.int32)  # a band of high background
    img[100:102] += 40  # two dense rows alone
    for w in (2, 7):
        st = SpotFinderSettings(photon_threshold=3, window_half=w, sigma=2.0, max_spots=0, high_resolution_A=0)
        sf, az, fp = _stages(exp, st)
        got = fp.run(img)
        assert_same_spots(got.spots, sf.find(img))
        strong = reference_strong_map(img, exp.detector.mask, np.zeros((ny, nx), bool), 4000, st)
        assert got.spots.n_strong_pixels == int((strong == 1).sum()) > 100


def test_large_values_stay_exact():
    """Values near the 2^22 cap with the largest window (the sums of squares need 64 bits)."""
    rng = np.random.default_rng(7)
    img = rng.integers(0, 2**21, (40, 50)).astype(np.int32)
    img[10, 10] = 2**22 - 1
    img[20:23, 30:33] = 4_000_000
    img[5, 5] = -(2**22) + 1  # the most negative valid value
    exp = experiment(50, 40, mask=np.zeros((40, 50), bool))
    for thr in (1, 2**20):  # every pixel a candidate, or few
        st = SpotFinderSettings(window_half=10, sigma=1.0, high_resolution_A=0, photon_threshold=thr, max_spots=0)
        sf, az, fp = _stages(exp, st)
        got = fp.run(img)
        assert_same_spots(got.spots, sf.find(img))
        assert got.spots.n_strong_pixels > 0
        assert_same_profile(got.profile, got.count, *az.integrate_with_counts(img))


def test_saturation_levels_and_no_saturation():
    rng = np.random.default_rng(4)
    img, _ = gaussian_spots(60, 70, 10, rng, background=2.0, photons=(500, 50000))
    for sat in (None, 100, 2**23, 2**31 - 1):
        det = Detector.from_beam_center(70, 60, 0.075, 30.0, 20.0, 25.0, mask=np.zeros((60, 70), bool),
                                        saturation=sat)  # fmt: skip
        exp = Experiment(beam=Beam(1.0), detector=det)
        sf, az, fp = _stages(exp, SpotFinderSettings(high_resolution_A=0, max_spots=0))
        got = fp.run(img)
        assert_same_spots(got.spots, sf.find(img))
        assert_same_profile(got.profile, got.count, *az.integrate_with_counts(img))


def test_blank_and_fully_masked_frames():
    exp = experiment(40, 30, mask=np.zeros((30, 40), bool))
    sf, az, fp = _stages(exp, SpotFinderSettings())
    zero = np.zeros((30, 40), np.int32)
    got = fp.run(zero)
    assert len(got.spots) == 0 and got.spots.max_value == 0
    assert_same_profile(got.profile, got.count, *az.integrate_with_counts(zero))
    exp = experiment(40, 30, mask=np.ones((30, 40), bool))
    sf, az, fp = _stages(exp, SpotFinderSettings())
    got = fp.run(np.full((30, 40), 50, np.int32))
    assert_same_spots(got.spots, sf.find(np.full((30, 40), 50, np.int32)))
    assert got.spots.max_value == INT32_MIN and got.count.sum() == 0 and np.isnan(got.profile).all()


# ---------------------------------------------------------------- the fused decode
def _stored(rng, ny, nx, dtype, kind):
    """A frame in a stored type: photon counts (narrow: < 256 or < 65536 in most blocks), the type's error
    value, signed negatives, wide values."""
    a = rng.poisson(0.6, (ny, nx)).astype(np.int64)
    info = np.iinfo(dtype)
    if kind != "narrow8":
        a[rng.random((ny, nx)) < 0.01] = rng.integers(100, min(info.max, 60000), int((a.size * 0.01) // 1) or 1)[0]
        a[rng.integers(0, ny, 5), rng.integers(0, nx, 5)] = min(info.max - 1, 40000)
    if kind == "wide":
        a[rng.integers(0, ny, 20), rng.integers(0, nx, 20)] = info.max  # unsigned: the error value
        if info.min < 0:
            a[rng.integers(0, ny, 20), rng.integers(0, nx, 20)] = info.min
            a[rng.integers(0, ny, 20), rng.integers(0, nx, 20)] = -3
    return np.clip(a, info.min, info.max).astype(dtype)


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "uint16", "int32", "uint32"])
@pytest.mark.parametrize("codec", [2, 3])
def test_chunk_decode_equals_reader_and_pass(dtype, codec):
    rng = np.random.default_rng(11)
    ny, nx = 83, 257  # blocks straddle rows; a partial last block and trailing elements
    img0, exp = _case(rng, ny, nx, 1.0, saturation=200)
    sf, az, fp = _stages(exp, SpotFinderSettings(high_resolution_A=0, max_spots=0, photon_threshold=3))
    for kind in ("narrow8", "narrow16", "wide"):
        raw = _stored(rng, ny, nx, np.dtype(dtype), kind)
        for block in (0, 64, 1000):
            chunk = RawChunk(_core.bitshuffle_compress(raw, codec, block_size=block), codec, dtype)
            image, got = fp.run_chunk(chunk)
            want_img = to_int32(raw)
            np.testing.assert_array_equal(image, want_img)
            ref = fp.run(want_img)
            assert_same_spots(got.spots, ref.spots)
            np.testing.assert_array_equal(got.profile, ref.profile)
            np.testing.assert_array_equal(got.count, ref.count)
            assert_same_spots(got.spots, sf.find(want_img))
    out = np.full((ny, nx), 7, np.int32)
    image, _ = fp.run_chunk(chunk, out=out)
    assert image is out and np.array_equal(out, to_int32(raw))


def test_corrupt_chunk():
    rng = np.random.default_rng(1)
    img, exp = _case(rng, 50, 64, 1.0)
    _, _, fp = _stages(exp, SpotFinderSettings())
    good = _core.bitshuffle_compress(img, "lz4")
    for bad in (good[: len(good) // 2], good[:11], good[:12] + b"\xff" * 40):
        with pytest.raises(CorruptFrameError, match="corrupt chunk"):
            fp.run_chunk(RawChunk(bad, 2, "int32"))
    with pytest.raises(CorruptFrameError, match="holds"):  # a chunk of another frame size
        fp.run_chunk(RawChunk(_core.bitshuffle_compress(img[:-1], "lz4"), 2, "int32"))


# ---------------------------------------------------------------- threads, pickling, the worker
def test_threads_give_the_same_results():
    rng = np.random.default_rng(9)
    frames = []
    for _ in range(6):
        img, exp = _case(rng, 120, 140, 2.0)
        frames.append(img)
    _, _, fp = _stages(exp, SpotFinderSettings(max_spots=0, high_resolution_A=0))
    serial = [fp.run(f) for f in frames]
    got: dict[int, object] = {}

    def work(i):
        for _ in range(3):
            got[i] = fp.run_chunk(RawChunk(_core.bitshuffle_compress(frames[i], "lz4"), 2, "int32"))[1]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(frames))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, s in enumerate(serial):
        assert_same_spots(got[i].spots, s.spots)
        np.testing.assert_array_equal(got[i].profile, s.profile)
        np.testing.assert_array_equal(got[i].count, s.count)
    fp2 = pickle.loads(pickle.dumps(fp))
    assert_same_spots(fp2.run(frames[0]).spots, serial[0].spots)


def test_worker_results_equal_the_separate_stages(tmp_path):
    """The per-image worker (fused decode + pass + statistics) against the separate stages on a simulated
    JUNGFRAU-like dataset read the ordinary way."""
    from jfjoch.io.nxmx import open_master
    from jfjoch.simulate import simulate_dataset
    from jfjoch.worker import ImageWorker, Plan, StageSettings

    sim = simulate_dataset(tmp_path / "s", detector=(300, 260), mode="stills", n_images=3, distance_mm=60.0,
                           seed=5)  # fmt: skip
    with open_master(sim.master) as ds:
        worker = ImageWorker(Plan(experiment=ds.experiment, stages=StageSettings()))
        assert ds.read_chunk(0) is not None
        for i in range(ds.n_images):
            r = worker.run(ds, i)
            img = ds.read_image(i)
            sl = worker.spot_finder.find(img)
            mean, count = worker.azint.integrate_with_counts(img)
            assert r.ok and r.n_spots == len(sl) > 0
            np.testing.assert_array_equal(r.spots.x, sl.x)
            np.testing.assert_array_equal(r.spots.y, sl.y)
            np.testing.assert_array_equal(r.spots.intensity, sl.intensity)
            np.testing.assert_allclose(r.profile, mean.astype(np.float32), rtol=1e-6, equal_nan=True)
            ref = compute_image_statistics(sl, mean, worker.azint.q, profile_count=count).as_dict()
            for k, v in ref.items():
                np.testing.assert_allclose(r.stats[k], v, rtol=1e-9, equal_nan=True, err_msg=k)
            # the same image through process() (no decode in the pass)
            r2 = worker.process(i, img)
            np.testing.assert_array_equal(r2.profile, r.profile)
            np.testing.assert_array_equal(r2.spots.x, r.spots.x)


def test_worker_reports_a_corrupt_chunk():
    from jfjoch.worker import ImageWorker, Plan, StageSettings

    rng = np.random.default_rng(1)
    img, exp = _case(rng, 50, 64, 1.0)
    good = _core.bitshuffle_compress(img, "lz4")

    class Chunks:
        def read_chunk(self, i):
            return RawChunk(good if i == 0 else good[:100], 2, "int32")

    worker = ImageWorker(Plan(experiment=exp, stages=StageSettings()))
    assert worker.run(Chunks(), 0).ok
    r = worker.run(Chunks(), 1)
    assert not r.ok and r.error.startswith("image 1: corrupt chunk")


# ---------------------------------------------------------------- statistics calculator
def test_statistics_calculator_equals_compute_image_statistics():
    rng = np.random.default_rng(0)
    q = 0.1 + 0.02 * (np.arange(230) + 0.5)
    calc = StatisticsCalculator(q)
    n_rings_seen = 0
    for trial in range(40):
        prof = 5.0 + 2.0 * np.exp(-q) + rng.normal(0, 0.05, q.size)
        for dq in 2 * np.pi / np.array([3.897, 3.669, 3.441, 2.249]):
            prof += rng.uniform(0, 3) * np.exp(-0.5 * ((q - dq) / 0.01) ** 2)
        count = rng.integers(0, 400, q.size)
        prof[count == 0] = np.nan
        if trial % 5 == 0:
            prof[rng.random(q.size) < 0.3] = np.nan
        n = rng.integers(0, 60)
        spots = type("S", (), {})()
        spots.d = rng.uniform(1.5, 10, n)
        spots.ice_ring = rng.random(n) < 0.2
        spots.x = spots.y = spots.intensity = np.zeros(n)
        spots.max_value, spots.n_saturated, spots.n_error = 99, 2, 1
        for cnt in (count, None):
            want = compute_image_statistics(spots, prof, q, profile_count=cnt).as_dict()
            got = calc.compute(spots, prof, cnt).as_dict()
            assert got.keys() == want.keys()
            for k in want:
                np.testing.assert_allclose(got[k], want[k], rtol=1e-10, atol=1e-13, equal_nan=True, err_msg=k)
            n_rings_seen += np.isfinite(want["ice_ring_score"])
    assert n_rings_seen > 40
    assert np.isnan(calc.compute(spots, None).background_estimate)
    # settings other than the defaults
    s = ImageStatisticsSettings(ice_ring_half_width_q=0.03, min_bin_pixels=5)
    want = compute_image_statistics(spots, prof, q, profile_count=count, settings=s).as_dict()
    got = StatisticsCalculator(q, s).compute(spots, prof, count).as_dict()
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-10, equal_nan=True, err_msg=k)
