"""Bad input and hostile conditions: each ends in one line on stderr with the SPEC exit code, no traceback
without -v, no temporary file left, and inputs and earlier outputs unchanged."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from jfjoch.cli.process import main

from .conftest import shared

ROOT = Path(__file__).resolve().parents[1]


def _run(args, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _no_temporaries(directory: Path) -> None:
    left = [p.name for p in Path(directory).iterdir() if p.name.endswith(".tmp")]
    assert not left, left


def _corrupt_master(tmp_path, n=4, corrupt=(0, 1, 2, 3)):
    from .test_nxmx import make_master

    rng = np.random.default_rng(5)
    frames = rng.poisson(0.5, (n, 40, 48)).astype(np.int32)
    p = make_master(tmp_path, frames)
    with h5py.File(p, "a") as f:
        ds = f["entry/data/data"]
        for i in corrupt:
            _, raw = ds.id.read_direct_chunk((i, 0, 0))
            ds.id.write_direct_chunk((i, 0, 0), raw[: len(raw) // 3])
    return p


def test_every_image_unreadable_is_a_failed_run(tmp_path, capsys):
    p = _corrupt_master(tmp_path)
    code, _, err = _run([p, "-X", "none", "-o", tmp_path / "c"], capsys)
    assert code == 1
    line = _one_line(err)
    assert "no image could be read" in line and "image 0" in line
    with h5py.File(tmp_path / "c_process.h5") as f:  # the per-image reasons are kept
        errors = [e.decode() for e in f["entry/image/error"][()]]
        assert all("corrupt" in e or "cannot" in e for e in errors)
    _no_temporaries(tmp_path)


def test_verbose_prints_why_an_image_failed(tmp_path, capsys):
    p = _corrupt_master(tmp_path, n=3, corrupt=(1,))
    code, out, _ = _run([p, "-X", "none", "-v", "-o", tmp_path / "c"], capsys)
    assert code == 0
    assert "image 1:" in out and "1 image(s) could not be read" in out


@pytest.mark.parametrize("link", ["same", "symlink", "hardlink"])
def test_output_must_not_overwrite_an_input(tmp_path, capsys, link):
    from .test_nxmx import make_master

    rng = np.random.default_rng(1)
    master = make_master(tmp_path, rng.poisson(1.0, (2, 40, 48)).astype(np.int32))
    # an input named like an output: foo_process.h5, and -o foo
    victim = tmp_path / "foo_process.h5"
    if link == "same":
        master.rename(victim)
        src = victim
    elif link == "symlink":
        victim.symlink_to(master)
        src = master
    else:
        os.link(master, victim)
        src = master
    before = _digest(src)
    code, _, err = _run([src, "-X", "none", "-o", tmp_path / "foo"], capsys)
    assert code == 2
    assert "would overwrite the input" in _one_line(err)
    assert _digest(src) == before
    _no_temporaries(tmp_path)


def test_full_disk_is_one_line_and_leaves_nothing(tmp_path, capsys):
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        master = shared("hewl_rot1", "hewl_rot1_master.h5")
        earlier = mnt / "r_process.h5"
        earlier.write_bytes(b"an earlier output")
        code, _, err = _run([master, "-R", "-S", "96", "-o", mnt / "r"], capsys)
        assert code == 1
        assert "no space left on device" in _one_line(err)
        assert earlier.read_bytes() == b"an earlier output"
        _no_temporaries(mnt)
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_output_name_limits_are_checked_before_the_run(tmp_path, capsys):
    master = shared("hewl_rot1", "hewl_rot1_master.h5")
    long_ok = "x" * (255 - len("_process.h5"))  # the longest legal name: its temporary name must fit too
    code, _, err = _run([master, "-X", "none", "-e", "1", "-o", tmp_path / long_ok], capsys)
    assert code == 0, err
    assert (tmp_path / f"{long_ok}_process.h5").exists()
    t0 = time.perf_counter()
    code, _, err = _run([master, "-X", "none", "-o", tmp_path / (long_ok + "y")], capsys)
    assert code == 2 and "longer than 255 bytes" in _one_line(err)
    code, _, err = _run([master, "-X", "none", "-o", "/proc/out"], capsys)
    assert code == 2 and "cannot write /proc/out_process.h5" in _one_line(err)
    assert time.perf_counter() - t0 < 5  # refused before any image was processed
    _no_temporaries(tmp_path)


def test_output_mode_follows_the_umask(tmp_path, capsys):
    master = shared("hewl_rot1", "hewl_rot1_master.h5")
    old = os.umask(0o027)
    try:
        code, _, err = _run([master, "-X", "none", "-e", "1", "-o", tmp_path / "m"], capsys)
    finally:
        os.umask(old)
    assert code == 0, err
    assert (tmp_path / "m_process.h5").stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_the_run_leaves_nothing(tmp_path, sig):
    master = shared("hewl_stills1", "hewl_stills1_master.h5")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    p = subprocess.Popen([sys.executable, "-m", "jfjoch.cli.process", str(master), "-X", "fftw", "-N", "1",
                          "-o", str(tmp_path / "s")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=env)
    deadline = time.time() + 60
    while time.time() < deadline and not any(n.name.endswith(".tmp") for n in tmp_path.iterdir()):
        time.sleep(0.05)
    assert any(n.name.endswith(".tmp") for n in tmp_path.iterdir()), "the run never started writing"
    time.sleep(0.3)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 1
    assert "interrupted" in _one_line(err)
    assert not (tmp_path / "s_process.h5").exists()
    _no_temporaries(tmp_path)


def test_stale_temporaries_of_killed_runs_are_removed(tmp_path, capsys):
    master = shared("hewl_rot1", "hewl_rot1_master.h5")
    # a run killed with SIGKILL leaves its temporary; its process id no longer exists
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".s_process.h5.jfj{dead.pid}.abc123.tmp"
    stale.write_bytes(b"partial")
    other = tmp_path / f".other_process.h5.jfj{dead.pid}.abc123.tmp"  # another prefix: not ours to remove
    other.write_bytes(b"partial")
    code, _, err = _run([master, "-X", "none", "-e", "1", "-o", tmp_path / "s"], capsys)
    assert code == 0, err
    assert not stale.exists() and other.exists()


def test_too_many_threads_are_capped_with_a_note(tmp_path, capsys):
    master = shared("hewl_rot1", "hewl_rot1_master.h5")
    code, out, err = _run([master, "-X", "none", "-e", "3", "-N", "1000", "-o", tmp_path / "n"], capsys)
    assert code == 0, err
    assert "-N 1000 is more than" in out


def test_api_misuse_raises_the_package_errors():
    import jfjoch
    from jfjoch.errors import InputError, UsageError

    with pytest.raises(InputError):
        jfjoch.process(None)
    with pytest.raises(InputError):
        jfjoch.process(42)
    with pytest.raises(UsageError):
        jfjoch.process("x_master.h5", options="fast")
    with pytest.raises(UsageError, match="--indexing-algorithm"):
        jfjoch.process("x_master.h5", indexing_algorithm=None)
    with pytest.raises(UsageError, match="unit-cell"):
        jfjoch.process("x_master.h5", unit_cell="79.3,79.3,37.8,90,90")
    with pytest.raises(UsageError, match="unknown option"):
        jfjoch.process("x_master.h5", spot_sgima=3)


# ======================================================================================================
# Corpus (issue 7): bad inputs built on the fly from small synthetic masters and the shared data. Each case
# asserts the exit code, one line naming the problem (field/option and file), no traceback without -v, no
# temporary left and the inputs unchanged.
# ======================================================================================================
_DET = "/entry/instrument/detector"


def _small_master(tmp_path, n: int = 3, **kw) -> Path:
    from .test_nxmx import make_master

    rng = np.random.default_rng(11)
    return make_master(tmp_path, rng.poisson(0.5, (n, 40, 48)).astype(np.int32), **kw)


def _set(f: h5py.File, path: str, value, units: str | None = None) -> None:
    attrs = dict(f[path].attrs) if path in f else {}
    if path in f:
        del f[path]
    f[path] = value
    f[path].attrs.update(attrs)
    if units is not None:
        f[path].attrs["units"] = units


def _inputs_digest(paths) -> dict:
    return {str(p): _digest(p) for p in paths}


def _refused(args, capsys, tmp_path, code: int, needles, inputs=()) -> str:
    """Run jfjoch_process on ``args`` (an output prefix in tmp_path is added) and check the corpus rules: exit
    code, one line naming the problem (``needles``), no traceback, no temporary, inputs and an earlier output
    of the same prefix unchanged."""
    before = _inputs_digest(inputs)
    earlier = tmp_path / "out_process.h5"
    earlier.write_bytes(b"an earlier output")
    got, out, err = _run([*args, "-o", tmp_path / "out"], capsys)
    assert got == code, (got, out, err)
    line = _one_line(err)
    for n in needles:
        assert str(n) in line, (n, line)
    assert earlier.read_bytes() == b"an earlier output"
    _no_temporaries(tmp_path)
    assert _inputs_digest(inputs) == before
    return line


# --- geometry fields of every kind (item 4) -------------------------------------------------------------
_GEOMETRY_CASES = {
    # id: (dataset path, value, units or None, what the message names)
    "distance zero": (f"{_DET}/detector_distance", 0.0, "m", "detector_distance"),
    "distance negative": (f"{_DET}/detector_distance", -0.08, "m", "detector_distance"),
    "distance nan": (f"{_DET}/detector_distance", np.nan, "m", "detector_distance"),
    "distance inf": (f"{_DET}/detector_distance", np.inf, "m", "detector_distance"),
    "distance text": (f"{_DET}/detector_distance", "far", None, "detector_distance"),
    "wavelength zero": ("/entry/instrument/beam/incident_wavelength", 0.0, "angstrom", "incident_wavelength"),
    "wavelength negative": ("/entry/instrument/beam/incident_wavelength", -1.0, "angstrom", "incident_wavelength"),
    "wavelength nan": ("/entry/instrument/beam/incident_wavelength", np.nan, "angstrom", "incident_wavelength"),
    "wavelength inf": ("/entry/instrument/beam/incident_wavelength", np.inf, "angstrom", "incident_wavelength"),
    "wavelength units": ("/entry/instrument/beam/incident_wavelength", 1.0, "furlong", "incident_wavelength"),
    "beam x nan": (f"{_DET}/beam_center_x", np.nan, "pixel", "beam_center_x"),
    "beam x inf": (f"{_DET}/beam_center_x", -np.inf, "pixel", "beam_center_x"),
    "beam y nan": (f"{_DET}/beam_center_y", np.nan, "pixel", "beam_center_y"),
    "beam y empty": (f"{_DET}/beam_center_y", np.zeros(0), "pixel", "beam_center_y"),
    "pixel x nan": (f"{_DET}/x_pixel_size", np.nan, "m", "x_pixel_size"),
    "pixel x zero": (f"{_DET}/x_pixel_size", 0.0, "m", "x_pixel_size"),
    "pixel x negative": (f"{_DET}/x_pixel_size", -7.5e-5, "m", "x_pixel_size"),
    "pixel y nan": (f"{_DET}/y_pixel_size", np.nan, "m", "y_pixel_size"),
    "cell nan": ("/entry/sample/unit_cell", [50.0, np.nan, 70.0, 90.0, 95.0, 90.0], None, "unit_cell"),
    "cell inf": ("/entry/sample/unit_cell", [50.0, 60.0, 70.0, 90.0, np.inf, 90.0], None, "unit_cell"),
    "cell five": ("/entry/sample/unit_cell", [50.0, 60.0, 70.0, 90.0, 95.0], None, "unit_cell"),
    "cell negative": ("/entry/sample/unit_cell", [50.0, -60.0, 70.0, 90.0, 95.0, 90.0], None, "unit_cell"),
    "cell angles": ("/entry/sample/unit_cell", [50.0, 60.0, 70.0, 10.0, 10.0, 170.0], None, "unit_cell"),
    "space group": ("/entry/sample/space_group", "P 7 7 7", None, "space group"),
    "space group 0": ("/entry/sample/space_group", 0, None, "space_group"),
    "space group 231": ("/entry/sample/space_group", 231, None, "space_group"),
    "saturation nan": (f"{_DET}/saturation_value", np.nan, None, "saturation_value"),
    "saturation negative": (f"{_DET}/saturation_value", -5, None, "saturation_value"),
    "polarisation": ("/entry/instrument/beam/incident_polarisation_fraction", 2.0, None, "polarisation"),
    "polarisation nan": ("/entry/instrument/beam/incident_polarisation_fraction", np.nan, None, "polarisation"),
}


@pytest.mark.parametrize("case", list(_GEOMETRY_CASES))
def test_bad_geometry_field_is_a_one_line_input_error(tmp_path, capsys, case):
    path, value, units, names = _GEOMETRY_CASES[case]
    master = _small_master(tmp_path)
    with h5py.File(master, "a") as f:
        _set(f, path, value, units)
    _refused([master, "-X", "none"], capsys, tmp_path, 2, [names, master.name], inputs=[master])


_VECTOR_CASES = {
    "fast nan": ("detector_module/fast_pixel_direction", [np.nan, 0.0, 0.0], "fast_pixel_direction"),
    "fast zero": ("detector_module/fast_pixel_direction", [0.0, 0.0, 0.0], "fast_pixel_direction"),
    "fast two numbers": ("detector_module/fast_pixel_direction", [1.0, 0.0], "fast_pixel_direction"),
    "slow inf": ("detector_module/slow_pixel_direction", [0.0, np.inf, 0.0], "slow_pixel_direction"),
    "slow parallel to fast": ("detector_module/slow_pixel_direction", [1.0, 0.0, 0.0], "pixel_direction"),
    "plane along the beam": ("detector_module/slow_pixel_direction", [0.0, 0.0, 1.0], "pixel_direction"),
}


@pytest.mark.parametrize("case", list(_VECTOR_CASES))
def test_bad_detector_vector_is_a_one_line_input_error(tmp_path, capsys, case):
    rel, vec, names = _VECTOR_CASES[case]
    master = _small_master(tmp_path)
    with h5py.File(master, "a") as f:
        f[f"{_DET}/{rel}"].attrs["vector"] = np.asarray(vec, float)
    _refused([master, "-X", "none"], capsys, tmp_path, 2, [names, master.name], inputs=[master])


@pytest.mark.parametrize("case", ["omega nan", "omega inf", "omega axis nan", "omega axis zero", "omega units"])
def test_bad_goniometer_is_a_one_line_input_error(tmp_path, capsys, case):
    master = _small_master(tmp_path, n=4, omega=np.arange(4) * 0.5)
    om = "/entry/sample/transformations/omega"
    with h5py.File(master, "a") as f:
        if case == "omega nan":
            _set(f, om, np.array([0.0, 0.5, np.nan, 1.5]))
        elif case == "omega inf":
            _set(f, om, np.array([0.0, 0.5, 1.0, np.inf]))
        elif case == "omega axis nan":
            f[om].attrs["vector"] = [np.nan, 0.0, 0.0]
        elif case == "omega axis zero":
            f[om].attrs["vector"] = [0.0, 0.0, 0.0]
        else:
            f[om].attrs["units"] = "gradians"
    _refused([master, "-X", "none"], capsys, tmp_path, 2, ["omega", master.name], inputs=[master])


@pytest.mark.parametrize("field", ["incident_wavelength", "detector_distance", "beam_center_x", "x_pixel_size"])
def test_missing_geometry_field_is_named(tmp_path, capsys, field):
    key = "wavelength" if field == "incident_wavelength" else field
    master = _small_master(tmp_path, omit=(key,))
    _refused([master, "-X", "none"], capsys, tmp_path, 2, [field, master.name], inputs=[master])


# --- miniCBF headers (item 4: the CBF reader too) --------------------------------------------------------
_CBF_HEADER = ("# Pixel_size 172e-6 m x 172e-6 m\n# Silicon sensor, thickness 0.000450 m\n"
               "# Count_cutoff 115897 counts\n# Wavelength 0.96859 A\n# Detector_distance 0.35100 m\n"
               "# Beam_xy (12.61, 13.96) pixels\n# Start_angle 89.9997 deg.\n# Angle_increment 0.0000 deg.\n"
               "# Polarization 0.990\n")  # fmt: skip


def _cbf(tmp_path, header: str = _CBF_HEADER, name: str = "a_0001.cbf") -> Path:
    import fabio.cbfimage

    data = np.random.default_rng(2).poisson(1.0, (30, 28)).astype(np.int32)
    img = fabio.cbfimage.CbfImage(data=data)
    img.header["_array_data.header_convention"] = "PILATUS_1.2"
    img.header["_array_data.header_contents"] = header
    p = tmp_path / name
    img.write(str(p))
    return p


_CBF_CASES = {
    "distance nan": ("Detector_distance 0.35100 m", "Detector_distance nan m", "Detector_distance"),
    "distance negative": ("Detector_distance 0.35100 m", "Detector_distance -0.351 m", "Detector_distance"),
    "distance zero": ("Detector_distance 0.35100 m", "Detector_distance 0 m", "Detector_distance"),
    "wavelength zero": ("Wavelength 0.96859 A", "Wavelength 0.0 A", "Wavelength"),
    "wavelength inf": ("Wavelength 0.96859 A", "Wavelength inf A", "Wavelength"),
    "beam nan": ("Beam_xy (12.61, 13.96)", "Beam_xy (nan, 13.96)", "Beam_xy"),
    "beam garbled": ("Beam_xy (12.61, 13.96)", "Beam_xy (1.2.3, 13.96)", "Beam_xy"),
    "pixel zero": ("Pixel_size 172e-6 m x 172e-6 m", "Pixel_size 0 m x 0 m", "Pixel_size"),
    "polarisation": ("Polarization 0.990", "Polarization 1.5", "Polarization"),
    "no wavelength": ("# Wavelength 0.96859 A\n", "", "Wavelength"),
}


@pytest.mark.parametrize("case", list(_CBF_CASES))
def test_bad_cbf_header_is_a_one_line_input_error(tmp_path, capsys, case):
    old, new, names = _CBF_CASES[case]
    assert old in _CBF_HEADER
    p = _cbf(tmp_path, _CBF_HEADER.replace(old, new))
    _refused([p, "-X", "none"], capsys, tmp_path, 2, [names, p.name], inputs=[p])


def test_good_cbf_header_runs(tmp_path, capsys):
    p = _cbf(tmp_path)
    code, _, err = _run([p, "-X", "none", "-o", tmp_path / "ok"], capsys)
    assert code == 0, err


# --- degenerate and non-finite spot vectors (items 2, 3): the indexing API ------------------------------
_HEWL = (79.3, 79.3, 37.8, 90.0, 90.0, 90.0)


def _hewl_spots():
    from .index_sim import simulate_still

    s, _, _ = simulate_still(_HEWL, np.random.default_rng(1))
    return s


@pytest.mark.parametrize("method", ["ffbidx", "fftw", "fft"])
@pytest.mark.parametrize("kind", ["zeros", "one vector", "three vectors", "one plane"])
def test_degenerate_spot_vectors_never_give_a_lattice(method, kind):
    import warnings

    from jfjoch import index_reciprocal

    s = _hewl_spots()
    if kind == "zeros":
        v = np.zeros((50, 3))
    elif kind == "one vector":
        v = np.tile(s[3], (50, 1))
    elif kind == "three vectors":
        v = np.repeat(s[:3], 20, axis=0)
    else:  # a 2-D lattice: every vector in one plane
        a, b = s[0], s[1]
        v = np.array([i * a + j * b for i in range(-4, 5) for j in range(-4, 5) if i or j])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # GPU fallback notes
        r = index_reciprocal(v, cell=_HEWL if method == "ffbidx" else None, method=method)
    assert not r.ok and r.n_indexed == 0 and not r.indexed.any()
    assert r.indexed.shape == (len(v),) and r.hkl.shape == (len(v), 3)


@pytest.mark.parametrize("method", ["ffbidx", "fftw", "fft"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_spot_vectors_are_dropped_with_a_warning(method, bad):
    import warnings

    from jfjoch import index_reciprocal

    s = _hewl_spots()
    s[[5, 40]] = bad
    s[17, 1] = bad
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r = index_reciprocal(s, cell=_HEWL if method == "ffbidx" else None, method=method)
    notes = [str(x.message) for x in w if "not finite" in str(x.message)]
    assert notes == [f"index_reciprocal: 3 of {len(s)} spot vectors are not finite (NaN or inf); they are left "
                     "out and not indexed"]  # fmt: skip
    assert r.ok and r.n_indexed > 150  # the rest index
    assert not r.indexed[[5, 17, 40]].any() and (r.hkl[[5, 17, 40]] == 0).all()


@pytest.mark.parametrize("bad_arg", ["s text", "s ragged", "cell text", "cell nan", "method None"])
def test_indexing_api_misuse_raises_input_error(bad_arg):
    from jfjoch import index_reciprocal
    from jfjoch.errors import InputError

    s = _hewl_spots()
    kw = {"s": s, "cell": _HEWL, "method": "ffbidx"}
    if bad_arg == "s text":
        kw["s"] = "spots"
    elif bad_arg == "s ragged":
        kw["s"] = [[1, 2, 3], [4, 5]]
    elif bad_arg == "cell text":
        kw["cell"] = "79.3,79.3,37.8,90,90,90"
    elif bad_arg == "cell nan":
        kw["cell"] = (79.3, np.nan, 37.8, 90, 90, 90)
    else:
        kw["method"] = None
    with pytest.raises(InputError):
        index_reciprocal(**kw)


# --- data files: truncated, missing, corrupt, wrong types and shapes (item 11) --------------------------
def _truncate(p: Path, fraction: float = 0.5) -> None:
    with open(p, "r+b") as fh:
        fh.truncate(int(p.stat().st_size * fraction))


@pytest.mark.parametrize("layout", ["links", "vds"])
def test_truncated_data_file_is_reported_as_truncated(tmp_path, capsys, layout):
    master = _small_master(tmp_path, n=6, layout=layout)
    data = tmp_path / "test_data_000002.h5"
    _truncate(data)
    line = _refused([master, "-X", "none"], capsys, tmp_path, 2, ["test_data_000002.h5", "truncated"],
                    inputs=[master, data])  # fmt: skip
    assert "missing" not in line


def test_truncated_shared_data_file_is_reported_as_truncated(tmp_path, capsys):
    # the shared rotation sweep with its external-link data file cut to half its size
    src = shared("hewl_rot1")
    for name in ("hewl_rot1_master.h5", "hewl_rot1_data_000001.h5"):
        (tmp_path / name).write_bytes((src / name).read_bytes())
    data = tmp_path / "hewl_rot1_data_000001.h5"
    _truncate(data)
    master = tmp_path / "hewl_rot1_master.h5"
    _refused([master, "-X", "none"], capsys, tmp_path, 2, ["hewl_rot1_data_000001.h5", "is truncated",
                                                              master.name], inputs=[master, data])  # fmt: skip


@pytest.mark.parametrize("layout", ["links", "vds"])
def test_missing_data_file_is_reported_as_missing(tmp_path, capsys, layout):
    master = _small_master(tmp_path, n=6, layout=layout)
    (tmp_path / "test_data_000001.h5").unlink()
    _refused([master, "-X", "none"], capsys, tmp_path, 2, ["test_data_000001.h5", "missing"], inputs=[master])


def test_data_file_without_the_linked_dataset(tmp_path, capsys):
    master = _small_master(tmp_path, n=6, layout="links")
    data = tmp_path / "test_data_000002.h5"
    with h5py.File(data, "a") as f:
        f.move("/entry/data/data", "/entry/data/moved")
    _refused([master, "-X", "none"], capsys, tmp_path, 2, ["test_data_000002.h5", "has no dataset"],
             inputs=[master, data])  # fmt: skip


@pytest.mark.parametrize("how", ["truncated", "empty", "random bytes", "text"])
def test_unreadable_master_file(tmp_path, capsys, how):
    master = _small_master(tmp_path)
    if how == "truncated":
        _truncate(master, 0.4)
        needle = "truncated"
    else:
        master.write_bytes({"empty": b"", "random bytes": np.random.default_rng(0).bytes(4096),
                            "text": b"this is not HDF5\n"}[how])  # fmt: skip
        needle = "not a readable HDF5 file"
    _refused([master, "-X", "none"], capsys, tmp_path, 2, [needle, master.name], inputs=[master])


def test_directory_as_input(tmp_path, capsys):
    d = tmp_path / "adir"
    d.mkdir()
    _refused([d, "-X", "none"], capsys, tmp_path, 2, ["is a directory", "adir"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.bool_, np.complex64])
def test_non_integer_pixels_are_refused_at_open(tmp_path, capsys, dtype):
    from .test_nxmx import make_master

    frames = np.random.default_rng(3).poisson(1.0, (2, 40, 48)).astype(dtype)
    master = make_master(tmp_path, frames, codec=None)
    _refused([master, "-X", "none"], capsys, tmp_path, 2, [np.dtype(dtype).name, "/entry/data/data", master.name],
             inputs=[master])  # fmt: skip


@pytest.mark.parametrize("shape", [(0, 40, 48), (40, 48), (3, 0, 48)])
def test_image_stack_of_a_wrong_shape(tmp_path, capsys, shape):
    master = _small_master(tmp_path)
    with h5py.File(master, "a") as f:
        del f["/entry/data/data"]
        f.create_dataset("/entry/data/data", shape=shape, dtype=np.int32)
    _refused([master, "-X", "none"], capsys, tmp_path, 2, ["/entry/data/data", master.name], inputs=[master])


def test_int64_pixels_saturate_instead_of_wrapping():
    from jfjoch.io.nxmx import INT32_MAX, INT32_MIN, to_int32

    a = np.array([[5, 2**40, -(2**40), np.iinfo(np.int64).min]], np.int64)
    np.testing.assert_array_equal(to_int32(a), [[5, INT32_MAX, INT32_MIN, INT32_MIN]])


def test_pixel_mask_of_a_wrong_shape(tmp_path, capsys):
    master = _small_master(tmp_path)
    with h5py.File(master, "a") as f:
        _set(f, f"{_DET}/detectorSpecific/pixel_mask", np.zeros((10, 10), np.uint32))
    _refused([master, "-X", "none"], capsys, tmp_path, 2, ["pixel_mask", master.name], inputs=[master])


@pytest.mark.parametrize("damage", ["zeroed", "random", "one byte"])
def test_damaged_chunks_fail_only_their_images(tmp_path, capsys, damage):
    master = _small_master(tmp_path, n=4)
    with h5py.File(master, "a") as f:
        ds = f["entry/data/data"]
        _, raw = ds.id.read_direct_chunk((2, 0, 0))
        bad = {"zeroed": bytes(len(raw)), "random": np.random.default_rng(4).bytes(len(raw)),
               "one byte": b"\x00"}[damage]  # fmt: skip
        ds.id.write_direct_chunk((2, 0, 0), bad)
    before = _digest(master)
    code, out, err = _run([master, "-X", "none", "-v", "-o", tmp_path / "d"], capsys)
    assert code == 0, err
    assert "image 2:" in out and "1 image(s) could not be read" in out and "Traceback" not in out + err
    with h5py.File(tmp_path / "d_process.h5") as f:
        errors = [e.decode() for e in f["entry/image/error"][()]]
    assert errors[2] and not any(errors[i] for i in (0, 1, 3))
    assert _digest(master) == before
    _no_temporaries(tmp_path)


# --- hostile options ---------------------------------------------------------------------------------------
_OPTION_CASES = {
    "space group 0": (["-S", "0"], "--space-group"),
    "space group 231": (["-S", "231"], "--space-group"),
    "space group text": (["-S", "P 7 7 7"], "--space-group"),
    "cell three numbers": (["-C", "79,79,38"], "--unit-cell"),
    "cell nan": (["-C", "nan,79,38,90,90,90"], "--unit-cell"),
    "cell inf": (["-C", "79,79,38,90,90,inf"], "--unit-cell"),
    "cell angles": (["-C", "79,79,38,60,60,170"], "--unit-cell"),
    "cell negative": (["-C", "-79,79,38,90,90,90"], "--unit-cell"),
    "threads zero": (["-N", "0"], "--threads"),
    "end before start": (["-s", "2", "-e", "1"], "--end-image"),
    "start out of range": (["-s", "100"], "--start-image"),
    "stride zero": (["-t", "0"], "--stride"),
    "sigma nan": (["--spot-sigma", "nan"], "--spot-sigma"),
    "threshold inf": (["--spot-threshold", "inf"], "--spot-threshold"),
    "max spots zero": (["--max-spots", "0"], "--max-spots"),
    "min isigma negative": (["--spot-min-isigma", "-1"], "--spot-min-isigma"),
    "min isigma nan": (["--spot-min-isigma", "nan"], "--spot-min-isigma"),
    "min pixels zero": (["--spot-min-pixels", "0"], "--spot-min-pixels"),
    "algorithm": (["-X", "xds"], "--indexing-algorithm"),
    "radii order": (["--integration-radius", "3,2,1"], "--integration-radius"),
    "unknown option": (["--spot-sgima", "3"], "--spot-sgima"),
    "empty prefix": (["-o", ""], "--output-prefix"),
}


@pytest.mark.parametrize("case", list(_OPTION_CASES))
def test_hostile_option_is_a_one_line_usage_error(tmp_path, capsys, case):
    args, names = _OPTION_CASES[case]
    master = _small_master(tmp_path)
    before = _digest(master)
    code, out, err = _run([master, *args] + ([] if "-o" in args else ["-o", tmp_path / "o"]), capsys)
    assert code == 2, (code, out, err)
    assert names in _one_line(err)
    assert _digest(master) == before and not (tmp_path / "o_process.h5").exists()
    _no_temporaries(tmp_path)


# --- DECTRIS-style masters and API misuse of the new options ------------------------------------------------
@pytest.mark.parametrize("case", ["fast nan", "distance um negative", "omega rad inf"])
def test_bad_dectris_master(tmp_path, capsys, case):
    master = _small_master(tmp_path, n=3, dectris=True, omega=np.arange(3) * 0.1)
    with h5py.File(master, "a") as f:
        if case == "fast nan":
            f[f"{_DET}/module/fast_pixel_direction"].attrs["vector"] = [np.nan, 0.0, 0.0]
            names = ["fast_pixel_direction"]
        elif case == "distance um negative":
            _set(f, f"{_DET}/detector_distance", -120000.0, "um")
            names = ["detector_distance"]
        else:
            _set(f, "/entry/sample/goniometer/omega", np.array([0.0, np.inf, 0.2]))
            names = ["omega"]
    _refused([master, "-X", "none"], capsys, tmp_path, 2, [*names, master.name], inputs=[master])


@pytest.mark.parametrize(("kw", "name"), [({"spot_min_isigma": -1.0}, "--spot-min-isigma"),
                                          ({"spot_min_isigma": np.float64("nan")}, "--spot-min-isigma"),
                                          ({"spot_min_isigma": "high"}, "--spot-min-isigma"),
                                          ({"spot_min_pixels": np.int64(0)}, "--spot-min-pixels"),
                                          ({"spot_min_pixels": 2.5}, "--spot-min-pixels")])  # fmt: skip
def test_api_spot_options_are_validated_up_front(tmp_path, kw, name):
    import jfjoch
    from jfjoch.errors import UsageError

    master = _small_master(tmp_path)
    with pytest.raises(UsageError, match=name):
        jfjoch.process(str(master), output_prefix=str(tmp_path / "api"), **kw)
    assert not (tmp_path / "api_process.h5").exists()
    _no_temporaries(tmp_path)


def test_api_spot_options_accept_numpy_scalars(tmp_path):
    import jfjoch

    master = _small_master(tmp_path)
    r = jfjoch.process(str(master), output_prefix=str(tmp_path / "api"), indexing_algorithm="none",
                       spot_min_isigma=np.float32(0), spot_min_pixels=np.int64(3))  # fmt: skip
    assert len(r.images) == 3
