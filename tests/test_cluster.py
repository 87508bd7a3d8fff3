"""The per-image pass on a Dask cluster (--dask): the same bytes as a one-machine run, faults, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import h5py
import numpy as np
import pytest

pytest.importorskip("dask.distributed")

from jfjoch.cli.process import main
from jfjoch.cluster import parse_dask_address, process_shard
from jfjoch.errors import UsageError

from .conftest import shared

STILLS = ["-X", "ffbidx", "-C", "79.3,79.3,37.8,90,90,90", "-S", "96"]


def _datasets(path) -> dict[str, np.ndarray]:
    out = {}
    with h5py.File(path) as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return out


def _assert_same(a, b) -> None:
    da, db = _datasets(a), _datasets(b)
    assert sorted(da) == sorted(db)
    for name in da:
        x, y = np.asarray(da[name]), np.asarray(db[name])
        if x.dtype.kind == "f":
            assert np.array_equal(x, y, equal_nan=True), name
        else:
            assert np.array_equal(x, y), name


def _run(args, capsys):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def cluster():
    from dask.distributed import Client, LocalCluster

    c = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=50)
    client = Client(c)
    yield c, client
    client.close()
    c.close()


def test_same_bytes_as_one_machine_including_merged_files(tmp_path, capsys, cluster):
    c, _client = cluster
    master = shared("hewl_stills1", "hewl_stills1_master.h5")
    args = [master, *STILLS, "-e", "39", "-M"]
    code, _, err = _run([*args, "-N", "2", "-o", tmp_path / "one"], capsys)
    assert code == 0, err
    code, out, err = _run([*args, "--dask", c.scheduler_address, "--shard-size", "7", "-v", "-o", tmp_path / "dk"],
                          capsys)
    assert code == 0, err
    assert "dask:" in out and "worker(s)" in out and "tcp://" in out  # -v names the cluster and its workers
    _assert_same(tmp_path / "one_process.h5", tmp_path / "dk_process.h5")
    assert (tmp_path / "one.mtz").read_bytes() == (tmp_path / "dk.mtz").read_bytes()


def test_rotation_first_pass_on_the_client(tmp_path, capsys, cluster):
    c, _client = cluster
    master = shared("hewl_rot1", "hewl_rot1_master.h5")
    code, _, err = _run([master, "-R", "-S", "96", "-N", "2", "-o", tmp_path / "one"], capsys)
    assert code == 0, err
    code, _, err = _run([master, "-R", "-S", "96", "--dask", c.scheduler_address, "-o", tmp_path / "dk"], capsys)
    assert code == 0, err
    _assert_same(tmp_path / "one_process.h5", tmp_path / "dk_process.h5")


def test_a_killed_worker_costs_a_retried_shard(tmp_path, capsys, cluster):
    c, client = cluster
    master = shared("hewl_stills1", "hewl_stills1_master.h5")
    code, _, err = _run([master, *STILLS, "-N", "2", "-o", tmp_path / "one"], capsys)
    assert code == 0, err
    pid = next(iter(client.run(os.getpid).values()))
    killed = threading.Event()

    def killer():
        time.sleep(1.0)
        os.kill(pid, signal.SIGKILL)
        killed.set()

    threading.Thread(target=killer, daemon=True).start()
    code, _, err = _run([master, *STILLS, "--dask", c.scheduler_address, "--shard-size", "4", "-o",
                         tmp_path / "dk"], capsys)
    assert code == 0, err
    assert killed.is_set()
    _assert_same(tmp_path / "one_process.h5", tmp_path / "dk_process.h5")
    client.wait_for_workers(2, timeout=30)


def test_a_failing_shard_is_reported_with_its_range():
    from jfjoch.options import ProcessOptions
    from jfjoch.pipeline import make_stage_settings, open_dataset
    from jfjoch.worker import Plan

    master = shared("hewl_rot1", "hewl_rot1_master.h5")
    with open_dataset(master) as ds:
        plan = Plan(experiment=ds.experiment, stages=make_stage_settings(ProcessOptions(), ds.experiment, "none"))
    res = process_shard("t1", plan, "/nonexistent/x_master.h5", [5, 6, 7])
    assert [r.number for r in res] == [5, 6, 7] and not any(r.ok for r in res)
    assert "images 5-7" in res[0].error and "cannot open" in res[0].error


def test_a_worker_that_cannot_open_the_input(tmp_path, capsys, cluster, monkeypatch):
    import jfjoch.pipeline as pl

    c, _client = cluster
    master = shared("hewl_rot1", "hewl_rot1_master.h5")
    monkeypatch.setattr(pl, "_absolute_source", lambda p: "/not/shared/hewl_rot1_master.h5")
    code, _, err = _run([master, "-X", "none", "--dask", c.scheduler_address, "-o", tmp_path / "x"], capsys)
    assert code == 2
    line = err.strip()
    assert "\n" not in line and "cannot open /not/shared/hewl_rot1_master.h5" in line and "shares" in line
    assert not any(p.name.endswith((".tmp", "_process.h5")) for p in tmp_path.iterdir())


@pytest.mark.parametrize(("address", "words"), [("foo://host:1", "unknown scheme"), ("local:0", "local:N"),
                                                ("scheduler:8786", "scheduler address")])
def test_bad_addresses(address, words):
    with pytest.raises(UsageError, match=words):
        parse_dask_address(address)


def test_unreachable_scheduler_is_one_line(tmp_path, capsys, monkeypatch):
    import jfjoch.cluster as cl

    monkeypatch.setattr(cl, "CONNECT_TIMEOUT_S", 2.0)
    master = shared("hewl_rot1", "hewl_rot1_master.h5")
    code, _, err = _run([master, "-X", "none", "--dask", "tcp://127.0.0.1:9", "-o", tmp_path / "x"], capsys)
    assert code == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in err and err.strip().count("\n") == 0
    assert not list(tmp_path.iterdir())


def test_ctrl_c_cancels_and_leaves_nothing(tmp_path):
    master = shared("hewl_stills1", "hewl_stills1_master.h5")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    p = subprocess.Popen([sys.executable, "-m", "jfjoch.cli.process", str(master), *STILLS, "--dask", "local:2",
                          "--shard-size", "2", "-o", str(tmp_path / "s")], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 60
    while time.time() < deadline and not any(n.name.endswith(".tmp") for n in tmp_path.iterdir()):
        time.sleep(0.05)
    time.sleep(2.0)  # the cluster is up and shards are running
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 1, err
    assert "interrupted" in err
    assert not list(tmp_path.iterdir())
