"""Merging statistics: our implementation against cctbx's figures (recorded) and a slow numpy reference."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from jfjoch.io.reflections import unmerged_mtz_statistics
from jfjoch.scale.stats import merging_statistics, resolution_estimate

from .conftest import shared

HERE = Path(__file__).parent
REL = ("n_obs", "n_unique", "multiplicity", "completeness", "i_over_sigma", "r_meas", "r_pim", "d_max", "d_min")


def compare(ours, theirs, cc_tol: float = 0.01, rel: float = 0.01) -> None:
    """Every figure within 1 % (relative), CC1/2 within cc_tol."""
    for k in REL:
        a, b = getattr(ours, k), theirs[k]
        assert a == pytest.approx(b, rel=rel), (k, a, b)
    assert abs(ours.cc_half - theirs["cc_half"]) <= cc_tol, (ours.cc_half, theirs["cc_half"])


def shell_cc_tolerance(pairs: int) -> float:
    """CC1/2 of a shell is a random half split: cctbx's single split scatters (SD 0.005-0.009 per shell of
    200-2000 pairs in this data; ours is the mean of 5 splits), so shells get 0.01 + 0.4/sqrt(pairs)."""
    return 0.01 + 0.4 / math.sqrt(max(pairs, 1))


def test_statistics_equal_cctbx_recorded():
    """cctbx (iotbx.merging_statistics, Debian python3-dials 3.12) on the real unmerged HEWL file's IPR column,
    recorded in tests/data/cctbx_hewl_unmerged_ipr.json by tests/cctbx_stats.py: our figures agree."""
    ref = json.loads((HERE / "data" / "cctbx_hewl_unmerged_ipr.json").read_text())
    shells, overall = unmerged_mtz_statistics(shared("hewl_model", "HEWL_unmerged_subset_2020.mtz"), "IPR")
    compare(overall, ref["overall"])
    assert overall.r_meas == pytest.approx(0.1974, abs=5e-4) and overall.cc_half == pytest.approx(0.932, abs=0.01)
    assert len(shells) == len(ref["shells"]) == 10
    for s, r in zip(shells, ref["shells"]):
        compare(s, r, cc_tol=shell_cc_tolerance(s.n_obs - s.n_unique))


def _reference_limits(d2: list[float], n: int) -> list[float]:
    """Equal volume in d*³ between the smallest and largest d*² (widened by 1e-6 of the range)."""
    lo, hi = min(d2), max(d2)
    tol = (hi - lo) * 1e-6
    lo, hi = lo - tol, hi + tol
    return [(lo**1.5 + (hi**1.5 - lo**1.5) * i / n) ** (2 / 3) for i in range(n + 1)]


def _reference_statistics(ref, x, sx, dstar_sq, n_shells, rng, possible=None):
    """Slow, obvious statistics: one Python loop per reflection (definitions of docs/scaling.md).
    possible(d_max, d_min) -> number of possible reflections (completeness), when given."""
    groups: dict[int, list[int]] = {}
    for j, r in enumerate(ref.tolist()):
        groups.setdefault(r, []).append(j)
    lim = _reference_limits([dstar_sq[r] for r in groups], n_shells)
    out = []
    for s in range(n_shells):
        lo, hi = lim[s], lim[s + 1]
        n_obs = n_uni = 0
        num_meas = num_pim = den = 0.0
        ios, h1, h2 = [], [], []
        for r, js in groups.items():
            ds = dstar_sq[r]
            if not (lo <= ds < hi or (s == n_shells - 1 and ds == hi)):
                continue
            v = [x[j] for j in js]
            w = [1 / sx[j] ** 2 for j in js]
            n = len(v)
            n_obs += n
            n_uni += 1
            mean = sum(a * b for a, b in zip(v, w)) / sum(w)
            if n > 1:
                var = sum(b * (a - mean) ** 2 for a, b in zip(v, w)) * sum(w) / (sum(w) ** 2 - sum(b * b for b in w))
                sig = math.sqrt(max(var / n, 1 / sum(w)))
                dev = sum(abs(a - mean) for a in v)
                num_meas += math.sqrt(n / (n - 1)) * dev
                num_pim += math.sqrt(1 / (n - 1)) * dev
                den += sum(v)
                perm = rng.permutation(n)
                k = n // 2 + (1 if n % 2 and rng.random() < 0.5 else 0)
                a_, b_ = perm[:k], perm[k:]
                h1.append(sum(v[i] * w[i] for i in a_) / sum(w[i] for i in a_))
                h2.append(sum(v[i] * w[i] for i in b_) / sum(w[i] for i in b_))
            else:
                sig = math.sqrt(1 / w[0])
            ios.append(mean / sig)
        row = {"n_obs": n_obs, "n_unique": n_uni, "multiplicity": n_obs / n_uni, "r_meas": num_meas / den,
               "r_pim": num_pim / den, "i_over_sigma": float(np.mean(ios)),
               "cc_half": float(np.corrcoef(h1, h2)[0, 1]), "pairs": len(h1),
               "d_max": 1 / math.sqrt(lo), "d_min": 1 / math.sqrt(hi)}
        if possible is not None:
            row["completeness"] = 100.0 * min(n_uni / possible(1 / math.sqrt(lo), 1 / math.sqrt(hi)), 1.0)
        out.append(row)
    return out


@pytest.mark.slow
def test_statistics_equal_slow_reference():
    rng = np.random.default_rng(3)
    n_ref = 3000
    dstar_sq = rng.uniform(0.01, 0.25, n_ref)
    truth = rng.exponential(1000.0, n_ref) * np.exp(-15 * dstar_sq)
    n = rng.poisson(4.0, n_ref) + 1
    ref = np.repeat(np.arange(n_ref), n)
    sx = np.sqrt(truth[ref] + 50.0)
    x = truth[ref] + rng.normal(0, 1, len(ref)) * sx * 1.3
    shells, overall, _ = merging_statistics(ref, x, sx, dstar_sq, dstar_sq, n_shells=10)
    slow = _reference_statistics(ref, x, sx, dstar_sq, 10, np.random.default_rng(11))
    for s, r in zip(shells, slow):
        for k in ("n_obs", "n_unique", "multiplicity", "r_meas", "r_pim", "i_over_sigma"):
            assert getattr(s, k) == pytest.approx(r[k], rel=1e-9), k
        assert abs(s.cc_half - r["cc_half"]) <= 0.01 + 2 / math.sqrt(r["pairs"])
        assert s.completeness == pytest.approx(100.0)


def test_resolution_estimate_tanh_fit():
    from jfjoch.scale.data import ShellStatistics

    s0, r = 0.25, 0.03  # CC1/2 = 0.5 at d = 2 Å
    shells = []
    edges = np.linspace(0.01, 0.36, 11)
    for lo, hi in itertools.pairwise(edges):
        s = 0.5 * (lo + hi)
        cc = 0.5 * (1 - math.tanh((s - s0) / r))
        shells.append(ShellStatistics(1 / math.sqrt(lo), 1 / math.sqrt(hi), 100, 50, 50, 2.0, 100.0, 5.0, cc, 0.1,
                                      0.05))
    d = resolution_estimate(shells)
    expect = 1 / math.sqrt(s0 + r * math.atanh(0.4))
    assert d == pytest.approx(expect, rel=0.01)
