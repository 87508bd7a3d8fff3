"""FFT indexer, lattice helpers and index_reciprocal against known answers (shared spot lists, truth.json,
simulated lattices) and numpy references."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

from jfjoch import _core
from jfjoch.errors import InputError
from jfjoch.experiment import cell_from_lattice
from jfjoch.index import IndexResult, index_reciprocal
from jfjoch.indexers.fft import FftIndexerSettings, index_fft
from jfjoch.lattice import (
    bravais_lattice,
    index_spots,
    reduce_lattice,
    refine_lattice,
    space_group_setting,
)

from .conftest import SHARED_CHECKS, shared
from .index_sim import (
    FFBIDX_TRUE_BASIS,
    lattice_from_cell,
    load_ffbidx_list,
    load_truth_module,
    simulate_still,
    stills_from_truth,
)

REAL_LISTS = [f"image{i}_{k}" for i in range(10) for k in ("local", "radial")]


def truth_mod():
    shared()  # skip without shared data
    return load_truth_module(SHARED_CHECKS)


def same_lattice(truth, true_rows, ours, max_deg=0.2, cell_tol=0.02):
    ok, ang = truth.misorientation(np.linalg.inv(true_rows), ours, cell_tol=cell_tol)
    return ok and ang <= max_deg, ang


# --- synthetic perfect lattices (first line = solution) --------------------------------------------
@pytest.mark.parametrize("name", ["test0", "test1", "test2"])
def test_synthetic_lists_index_exactly(name):
    truth = truth_mod()
    basis, s = load_ffbidx_list(shared("ffbidx_spots", f"{name}.txt"))
    raw = index_fft(s)
    assert raw.ok and raw.indexed.all() and raw.n_indexed == len(s)
    ok, ang = same_lattice(truth, basis, raw.lattice, max_deg=0.01, cell_tol=1e-3)
    assert ok, ang
    # exact indices: the hkl reproduce s through the returned lattice
    np.testing.assert_allclose(raw.hkl @ np.linalg.inv(raw.lattice).T, s, atol=1e-4)
    res = index_reciprocal(s, method="fftw")
    assert res.ok and res.indexed.all() and res.method == "fftw"
    ok, _ = same_lattice(truth, basis, res.lattice, max_deg=0.01, cell_tol=1e-3)
    assert ok
    np.testing.assert_allclose(res.hkl @ np.linalg.inv(res.lattice).T, s, atol=1e-4)


# --- real lysozyme spot lists ----------------------------------------------------------------------
@pytest.mark.parametrize("name", REAL_LISTS)
def test_real_lysozyme_lists(name):
    truth = truth_mod()
    _, s = load_ffbidx_list(shared("ffbidx_spots", f"{name}.txt"))
    res = index_reciprocal(s, method="fftw")
    assert res.ok and res.bravais == "tP"
    a, b, c, al, be, ga = res.cell
    # symmetry-constrained cell (the unconstrained fit gives a, b = 78.1-78.6 A, angles up to 90.6 deg)
    assert abs(a / 79.0 - 1) < 0.01 and abs(b / 79.0 - 1) < 0.01 and abs(c / 36.9 - 1) < 0.01
    assert a == pytest.approx(b, rel=1e-9) and max(abs(al - 90), abs(be - 90), abs(ga - 90)) < 1e-6
    ok, ang = same_lattice(truth, FFBIDX_TRUE_BASIS, res.lattice, max_deg=2.0)
    assert ok, ang
    assert res.indexed.mean() > (0.55 if "local" in name else 0.45)


# --- simulated stills with noise and 20 % junk -----------------------------------------------------
SIM_CELLS = {
    "mP": (52.0, 61.0, 73.0, 90.0, 104.0, 90.0),
    "oP": (48.0, 66.0, 91.0, 90.0, 90.0, 90.0),
    "hP": (65.0, 65.0, 105.0, 90.0, 90.0, 120.0),
    "tP": (79.3, 79.3, 37.8, 90.0, 90.0, 90.0),
}


@pytest.mark.parametrize("bravais", sorted(SIM_CELLS))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_simulated_stills(bravais, seed):
    truth = truth_mod()
    rng = np.random.default_rng(100 * seed + len(bravais))
    s, L, on_lattice = simulate_still(SIM_CELLS[bravais], rng, n_spots=250, junk_fraction=0.2)
    res = index_reciprocal(s, method="fftw")
    assert res.ok and res.bravais == bravais
    ok, ang = same_lattice(truth, L, res.lattice, max_deg=0.2, cell_tol=0.01)
    assert ok, ang
    # indexed: nearly all lattice spots, few junk spots
    assert res.indexed[on_lattice].mean() > 0.95
    assert res.indexed[~on_lattice].mean() < 0.2
    ref = SIM_CELLS[bravais]
    np.testing.assert_allclose(res.cell[:3], ref[:3], rtol=0.01)
    np.testing.assert_allclose(res.cell[3:], ref[3:], atol=0.5)


def test_small_cell_few_spots_no_supercell():
    # few spots on a small cell: three candidate vectors spanning a supercell index everything; the
    # supercell must be removed (stills 4, 6, 7 of this sequence came out as 2x/4x supercells without it)
    truth = truth_mod()
    rng = np.random.default_rng(0)
    for _ in range(8):
        s, L, _ = simulate_still((15.0, 22.0, 30.0, 90.0, 95.0, 90.0), rng, n_spots=60, d_min=1.2)
        res = index_fft(s)
        assert res.ok
        assert same_lattice(truth, L, res.lattice, max_deg=0.5)[0]
        assert abs(np.linalg.det(res.lattice)) == pytest.approx(abs(np.linalg.det(L)), rel=0.02)


def test_random_spots_not_indexed():
    rng = np.random.default_rng(5)
    v = rng.normal(size=(200, 3))
    s = 0.5 * v / np.linalg.norm(v, axis=1)[:, None] * rng.uniform(0.1, 1, (200, 1))
    assert not index_reciprocal(s, method="fftw").ok


# --- hewl_stills1: spots predicted from truth ------------------------------------------------------
def test_hewl_stills_orientation():
    truth = truth_mod()
    t = truth.load(str(shared("hewl_stills1")))
    stills = stills_from_truth(truth, t, np.random.default_rng(7))
    angles, wrong, failed = [], 0, 0
    for s, A in stills:
        res = index_reciprocal(s, method="fftw")
        if not res.ok:
            failed += 1
            continue
        ok, ang = truth.misorientation(A, res.lattice)
        if not ok:
            wrong += 1
            continue
        angles.append(ang)
        assert res.bravais == "tP"
        np.testing.assert_allclose(res.cell[:3], sorted(t["unit_cell"][:3], reverse=True), rtol=0.005)
    assert wrong == 0
    assert len(angles) >= 0.95 * len(stills)
    assert np.median(angles) <= 0.15


# --- lattice helpers -------------------------------------------------------------------------------
def test_refine_lattice_matches_numpy_lstsq():
    rng = np.random.default_rng(3)
    L = lattice_from_cell((50, 60, 70, 90, 100, 90)) @ np.linalg.qr(rng.normal(size=(3, 3)))[0]
    hkl = rng.integers(-20, 21, (300, 3))
    s = hkl @ np.linalg.inv(L).T + rng.normal(0, 1e-4, (300, 3))
    X, *_ = np.linalg.lstsq(hkl.astype(float), s, rcond=None)  # s = hkl @ A*^T
    ref = np.linalg.inv(X.T)
    start = L * 1.01
    np.testing.assert_allclose(refine_lattice(s, hkl, start), ref, rtol=1e-4, atol=1e-3)
    mask = np.arange(300) < 150
    X2, *_ = np.linalg.lstsq(hkl[mask].astype(float), s[mask], rcond=None)
    np.testing.assert_allclose(refine_lattice(s, hkl, start, mask), np.linalg.inv(X2.T), rtol=1e-4, atol=1e-3)
    # too few independent indices: unchanged
    np.testing.assert_array_equal(refine_lattice(s[:2], hkl[:2], start), start)


def test_reduce_lattice_finds_shortest_basis():
    rng = np.random.default_rng(11)
    L = lattice_from_cell((41.0, 57.0, 83.0, 81.0, 97.0, 103.0))
    # brute-force shortest vectors for reference
    U = np.array(
        [
            (i, j, k)
            for i in range(-3, 4)
            for j in range(-3, 4)
            for k in range(-3, 4)
            if (i, j, k) != (0, 0, 0)
        ]
    )
    ref = np.sort(np.linalg.norm(U @ L, axis=1))
    for _ in range(10):
        M = np.eye(3, dtype=int)
        for _ in range(6):  # random unimodular shear
            i, j = rng.choice(3, 2, replace=False)
            M[i] += rng.integers(-2, 3) * M[j]
        R = reduce_lattice(M @ L)
        T = R @ np.linalg.inv(L)
        assert np.allclose(T, np.round(T), atol=1e-6) and abs(round(np.linalg.det(T))) == 1
        assert np.linalg.det(R) > 0
        lens = np.sort(np.linalg.norm(R, axis=1))
        assert lens[0] == pytest.approx(ref[0]) and lens[1] <= ref[2] + 1e-6


def test_index_spots_tolerance():
    L = lattice_from_cell((30, 40, 50, 90, 90, 90))
    hkl = np.array([[1, 2, 3], [0, 0, 1], [2, -1, 0]])
    s = hkl @ np.linalg.inv(L).T
    s[2] += 0.15 * np.linalg.inv(L)[:, 0]  # h off by 0.15
    h, ind = index_spots(s, L, 0.1)
    np.testing.assert_array_equal(h[:2], hkl[:2])
    np.testing.assert_array_equal(ind, [True, True, False])


# --- symmetry: Bravais search and space-group settings ---------------------------------------------
@pytest.mark.parametrize(
    ("conv_cell", "centring_vectors", "expected"),
    [
        ((40, 60, 80, 90, 90, 90), [(0.5, 0.5, 0)], "oC"),
        ((50, 50, 90, 90, 90, 90), [(0.5, 0.5, 0.5)], "tI"),
        ((60, 60, 60, 90, 90, 90), [(0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)], "cF"),
        ((70, 70, 150, 90, 90, 120), [(2 / 3, 1 / 3, 1 / 3), (1 / 3, 2 / 3, 2 / 3)], "hR"),
        ((80, 50, 60, 90, 110, 90), [(0.5, 0.5, 0)], "mC"),
        ((45, 55, 66, 80, 95, 105), [], "aP"),
    ],
)
def test_bravais_of_centred_lattices(conv_cell, centring_vectors, expected):
    C = lattice_from_cell(conv_cell) @ np.linalg.qr(np.random.default_rng(2).normal(size=(3, 3)))[0]
    # a primitive basis: the lattice points of C plus the centring vectors
    pts = [np.array(v) @ C for v in centring_vectors] + list(C)
    U = np.array([(i, j, k) for i in range(-2, 3) for j in range(-2, 3) for k in range(-2, 3)])
    cloud = np.concatenate([U @ C + p for p in [np.zeros(3), *pts[: len(centring_vectors)]]])
    cloud = cloud[np.linalg.norm(cloud, axis=1) > 1e-6]
    cloud = cloud[np.argsort(np.linalg.norm(cloud, axis=1))]
    P = [cloud[0]]
    for v in cloud[1:]:
        if len(P) == 1 and np.linalg.norm(np.cross(P[0], v)) > 1e-3 * np.linalg.norm(v) ** 2:
            P.append(v)
        elif len(P) == 2:
            vol = abs(np.linalg.det(np.array([*P, v])))
            if abs(vol - abs(np.linalg.det(C)) / (len(centring_vectors) + 1)) < 1e-3 * vol:
                P.append(v)
                break
    conv = bravais_lattice(np.array(P))
    assert conv.bravais == expected
    T = conv.lattice @ np.linalg.inv(C)  # same conventional lattice: unimodular
    assert np.allclose(T, np.round(T), atol=1e-6) and abs(round(np.linalg.det(T))) == 1
    np.testing.assert_allclose(sorted(conv.cell[:3]), sorted(conv_cell[:3]), rtol=1e-6)


def test_space_group_setting_tetragonal_permuted_axes():
    rng = np.random.default_rng(4)
    L = lattice_from_cell((79.1, 79.1, 37.9, 90, 90, 90)) @ np.linalg.qr(rng.normal(size=(3, 3)))[0]
    permuted = L[[2, 0, 1]]  # the 4-fold axis first
    conv, sg = space_group_setting(permuted, 96, (79.0, 79.0, 38.0, 90, 90, 90))
    assert conv is not None and sg.number == 96 and conv.bravais == "tP"
    assert np.linalg.det(conv.lattice) > 0
    assert abs(abs(conv.lattice[2] @ L[2]) / (np.linalg.norm(L[2]) ** 2) - 1) < 1e-9  # c = the 4-fold axis
    np.testing.assert_allclose(conv.cell, (79.1, 79.1, 37.9, 90, 90, 90), atol=1e-6)
    # a cell given with permuted axes is not a P 43 21 2 setting: rejected
    assert space_group_setting(permuted, "P 43 21 2", (38.0, 79.0, 79.0, 90, 90, 90))[0] is None
    # a lattice off the given cell by > 5 %: rejected
    assert space_group_setting(permuted, 96, (84.0, 84.0, 38.0, 90, 90, 90))[0] is None


def test_space_group_setting_orthorhombic_follows_cell():
    L = lattice_from_cell((50.0, 60.0, 70.0, 90, 90, 90))
    for order in [(60, 50, 70), (70, 60, 50), (50, 70, 60)]:
        conv, _ = space_group_setting(L, 17, (*order, 90, 90, 90))  # P 2 2 21: c is unique
        np.testing.assert_allclose(conv.cell[:3], order, rtol=1e-9)
        assert np.linalg.det(conv.lattice) > 0


def test_index_reciprocal_with_space_group():
    truth = truth_mod()
    rng = np.random.default_rng(9)
    s, L, _ = simulate_still((79.3, 79.3, 37.8, 90, 90, 90), rng)
    res = index_reciprocal(s, cell=(79, 79, 38, 90, 90, 90), space_group=96, method="fftw")
    assert res.ok and res.space_group == 96 and res.bravais == "tP"
    assert res.cell[2] == pytest.approx(37.8, rel=0.01)
    assert same_lattice(truth, L, res.lattice)[0]
    # hkl in the conventional basis
    np.testing.assert_allclose(res.hkl[res.indexed] @ np.linalg.inv(res.lattice).T, s[res.indexed], atol=0.01)
    bad = index_reciprocal(s, cell=(38, 79, 79, 90, 90, 90), space_group=96, method="fftw")
    assert not bad.ok
    # a monoclinic lattice cannot be put in a tetragonal group
    s2, _, _ = simulate_still(SIM_CELLS["mP"], rng)
    assert not index_reciprocal(s2, space_group=96, method="fftw").ok


# --- API behaviour ---------------------------------------------------------------------------------
def test_methods_and_errors(monkeypatch):
    rng = np.random.default_rng(1)
    s, _, _ = simulate_still(SIM_CELLS["oP"], rng)
    none = index_reciprocal(s, method="none")
    assert isinstance(none, IndexResult) and not none.ok and none.method == "none" and not none.indexed.any()
    with pytest.raises(InputError):
        index_reciprocal(s, method="xds")
    with pytest.raises(InputError):
        index_reciprocal(s, method="ffbidx")
    with pytest.raises(InputError):
        index_reciprocal(s[:, :2])
    with pytest.raises(InputError):
        index_reciprocal(s, space_group="P 7 7 7")
    if _core.cuda_device_count() == 0:
        import jfjoch.backend

        monkeypatch.setattr(jfjoch.backend, "_warned", set())
        with pytest.warns(RuntimeWarning, match="no GPU available"):
            r1 = index_reciprocal(s, method="fft")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            r2 = index_reciprocal(s, method="auto")  # fft again: warned once only
        assert r1.ok and r1.method == "fft" and r2.method == "fft"
        np.testing.assert_allclose(r1.lattice, index_reciprocal(s, method="fftw").lattice)
        with pytest.raises(RuntimeError):
            _core.fft_index(s.astype(np.float32), 16384, 10, 250, 1.5, 30, 5, 0.1, 0.95, 4, 6, 0.2, "cuda")


def test_settings_validation():
    rng = np.random.default_rng(1)
    s, _, _ = simulate_still(SIM_CELLS["oP"], rng)
    with pytest.raises(ValueError):
        index_fft(s, FftIndexerSettings(index_tolerance=0.7))
    with pytest.raises(ValueError):
        index_fft(s, FftIndexerSettings(max_cell_A=5.0))
    few = index_fft(s[:3])
    assert not few.ok and few.hkl.shape == (3, 3)
    # fewer directions still index a clean lattice
    assert index_fft(s, FftIndexerSettings(n_directions=4096)).ok


def test_threads_give_identical_results():
    rng = np.random.default_rng(21)
    inputs = [simulate_still(SIM_CELLS[k], rng)[0] for k in ("mP", "oP", "hP", "tP")]
    ref = [index_fft(s).lattice for s in inputs]
    out = [None] * len(inputs)

    def work(i):
        out[i] = index_fft(inputs[i]).lattice

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for a, b in zip(ref, out, strict=True):
        np.testing.assert_array_equal(a, b)


def test_constrained_cell_improves_tetragonal_fit():
    truth = truth_mod()
    rng = np.random.default_rng(17)
    s, L, _ = simulate_still((79.3, 79.3, 37.8, 90, 90, 90), rng, noise=6e-4)
    free = index_reciprocal(s, method="fftw", constrain_cell=False)
    con = index_reciprocal(s, method="fftw")
    assert free.bravais == con.bravais == "tP"
    assert con.cell[0] == pytest.approx(con.cell[1]) and con.cell[3:] == pytest.approx((90, 90, 90))
    err_free = np.abs(np.array(free.cell) - (79.3, 79.3, 37.8, 90, 90, 90)).max()
    err_con = np.abs(np.array(con.cell) - (79.3, 79.3, 37.8, 90, 90, 90)).max()
    assert err_con <= err_free
    ok_f, _ = truth.misorientation(np.linalg.inv(L), free.lattice)
    ok_c, ang_c = truth.misorientation(np.linalg.inv(L), con.lattice)
    assert ok_f and ok_c and ang_c < 0.1


def test_ffbidx_branch_applies_symmetry(monkeypatch):
    # the known-cell indexer lives in jfjoch.indexers.toro (another module); stand in for it here to test
    # the glue: lazy import, cell passed through, conventional setting of its lattice
    import sys
    import types

    truth = truth_mod()
    rng = np.random.default_rng(23)
    s, L, _ = simulate_still((79.3, 79.3, 37.8, 90, 90, 90), rng)
    calls = []

    def index_toro(s_in, cell, **kw):
        calls.append(cell)
        hkl = np.round(L[[2, 0, 1]] @ np.asarray(s_in).T).T
        ok = np.abs(L[[2, 0, 1]] @ np.asarray(s_in).T - hkl.T).max(0) < 0.1
        return types.SimpleNamespace(lattice=L[[2, 0, 1]], indexed=ok, ok=True, backend="cpu")

    fake = types.ModuleType("jfjoch.indexers.toro")
    fake.index_toro = index_toro
    monkeypatch.setitem(sys.modules, "jfjoch.indexers.toro", fake)
    import jfjoch.indexers

    monkeypatch.setattr(jfjoch.indexers, "toro", fake, raising=False)
    res = index_reciprocal(s, cell=(79, 79, 38, 90, 90, 90), space_group=96)
    assert calls == [(79.0, 79.0, 38.0, 90.0, 90.0, 90.0)]
    assert res.ok and res.method == "ffbidx" and res.bravais == "tP" and res.space_group == 96
    assert res.cell[2] == pytest.approx(37.8, rel=0.01)
    assert same_lattice(truth, L, res.lattice)[0]
    np.testing.assert_array_equal(res.indexed, index_toro(s, None).indexed)


def test_cell_from_result_matches_lattice():
    rng = np.random.default_rng(8)
    s, _, _ = simulate_still(SIM_CELLS["hP"], rng)
    res = index_reciprocal(s, method="fftw")
    np.testing.assert_allclose(res.cell, cell_from_lattice(res.lattice))


# --- any valid setting of the given cell (issue 7, item 1) ----------------------------------------------
def _centred_primitive(conv_cell, centring):
    """Cell of a primitive basis of the lattice with conventional cell ``conv_cell`` and ``centring``."""
    T = {"C": [[0.5, 0.5, 0], [-0.5, 0.5, 0], [0, 0, 1]], "A": [[1, 0, 0], [0, 0.5, 0.5], [0, -0.5, 0.5]],
         "R": [[2 / 3, 1 / 3, 1 / 3], [-1 / 3, 1 / 3, 1 / 3], [-1 / 3, -2 / 3, 1 / 3]]}[centring]  # fmt: skip
    return cell_from_lattice(np.array(T) @ lattice_from_cell(conv_cell))


_TRICLINIC = (41.2, 55.3, 67.1, 81.0, 76.5, 68.2)


@pytest.mark.parametrize("method", ["ffbidx", "fftw"])
@pytest.mark.parametrize(
    ("sim_cell", "given", "sg"),
    [
        ((79.3, 79.3, 37.8, 90, 90, 90), (79.3, 79.3, 37.8, 90, 90, 90), 1),  # the case: a = b > c
        ((79.3, 79.3, 37.8, 90, 90, 90), (79.3, 37.8, 79.3, 90, 90, 90), 1),
        (_TRICLINIC, (55.3, 67.1, 41.2, 76.5, 68.2, 81.0), 1),  # cyclic permutation of a triclinic cell
        (_TRICLINIC, (55.3, 41.2, 67.1, 76.5, 81.0, 68.2), 1),  # a <-> b (and alpha <-> beta)
        ((45.0, 60.0, 72.0, 90, 104, 90), (45.0, 60.0, 72.0, 90, 76, 90), 3),  # P2 with beta < 90
        ((45.0, 60.0, 72.0, 90, 104, 90), (72.0, 60.0, 45.0, 90, 104, 90), 3),  # P2 with a > c
        ((79.3, 79.3, 37.8, 90, 90, 90), (79.3, 37.8, 79.3, 90, 90, 90), 16),  # P222, any axis order
        (_centred_primitive((50, 80, 70, 90, 90, 90), "C"), (50, 80, 70, 90, 90, 90), 20),  # C 2 2 21
        (_centred_primitive((50, 80, 70, 90, 90, 90), "A"), (50, 80, 70, 90, 90, 90), 38),  # A m m 2
        (_centred_primitive((60, 50, 40, 90, 110, 90), "C"), (60, 50, 40, 90, 110, 90), 5),  # C 1 2 1
        (_centred_primitive((80, 80, 90, 90, 90, 120), "R"), (80, 80, 90, 90, 90, 120), 146),  # R 3 (hex)
    ],
)
def test_any_valid_setting_of_the_cell_indexes(sim_cell, given, sg, method):
    rng = np.random.default_rng(3)
    s, _, _ = simulate_still(sim_cell, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no GPU: the known-cell indexer runs on the CPU
        res = index_reciprocal(s, cell=given, space_group=sg, method=method)
    assert res.ok and res.n_indexed > 150, (res.ok, res.n_indexed)
    # the lattice is reported in the setting the cell was given in
    np.testing.assert_allclose(res.cell, given, rtol=0.01, atol=0.5)
    assert np.linalg.det(res.lattice) > 0
    np.testing.assert_allclose(res.hkl[res.indexed] @ np.linalg.inv(res.lattice).T, s[res.indexed], atol=0.01)


def test_invalid_settings_are_still_refused():
    rng = np.random.default_rng(3)
    s, _, _ = simulate_still((79.3, 79.3, 37.8, 90, 90, 90), rng)
    # P 43 21 2 needs a = b with c the 4-fold axis; P 1 2 1 needs alpha = gamma = 90
    assert not index_reciprocal(s, cell=(37.8, 79.3, 79.3, 90, 90, 90), space_group=96, method="fftw").ok
    assert not index_reciprocal(s, cell=(79.3, 79.3, 37.8, 90, 90, 100), space_group=3, method="fftw").ok
