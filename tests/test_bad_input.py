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
