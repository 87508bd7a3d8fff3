"""Indexing-ambiguity resolution (Brehm & Diederichs 2014, Acta Cryst D70, 101: the iterative correlation
algorithm), vectorised over observations.

A *unit* is what is reindexed as a whole: one still, or one rotation run. For every unit and every
candidate operator R_k (identity first), the unit's intensities reindexed by R_k are correlated with the
mean of all OTHER units in their current settings; the unit takes the operator with the highest CC.
Units are visited in random blocks (Gauss-Seidel order, so the symmetry between the alternatives breaks),
for passes until fewer than 0.1 % of the units change. The outcome is consistent up to one global
operator, which is fixed so that the identity is the most frequent choice. With a reference the units are
correlated with the reference instead, in one pass. With few units (≤ 20), unit 0 keeps the identity
and the others are added one by one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .merge import image_cc
from .symmetry import Symmetry

__all__ = ["AmbiguityResult", "resolve_ambiguity"]


@dataclass
class AmbiguityResult:
    op: np.ndarray
    """Operator index per unit (0 = identity)."""
    cc: np.ndarray
    """CC of each unit in its chosen setting (NaN where undefined)."""
    passes: int


def _common_keys(sym: Symmetry, hkl: np.ndarray, ops: list[np.ndarray]) -> tuple[list[np.ndarray], int, np.ndarray]:
    """Per operator, the reflection index (common numbering) of every observation reindexed by it."""
    keys = [sym.orbit_keys(np.asarray(hkl, np.int64) @ R) for R in ops]
    uk, inv = np.unique(np.concatenate(keys), return_inverse=True)
    n = len(hkl)
    return [inv[i * n : (i + 1) * n] for i in range(len(ops))], len(uk), uk


def _unit_cc(unit_local: np.ndarray, n: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return image_cc(unit_local, x, y, n, min_pairs=3)


def resolve_ambiguity(
    sym: Symmetry,
    hkl: np.ndarray,
    x: np.ndarray,
    unit: np.ndarray,
    n_units: int,
    ops: list[np.ndarray],
    *,
    reference_keys: np.ndarray | None = None,
    reference_values: np.ndarray | None = None,
    seed: int = 0,
    max_passes: int = 30,
) -> AmbiguityResult:
    """Choose one operator per unit (see the module docstring).

    hkl (n, 3) observations, x (n,) intensities (per-unit scale does not matter), unit (n,) unit index.
    reference_keys/values: orbit keys (``sym.orbit_keys``) and intensities of a reference set.
    """
    n_ops = len(ops)
    refs, n_ref, uk = _common_keys(sym, hkl, ops)
    x = np.asarray(x, float)
    # per-unit normalisation: the mean of each unit's intensities becomes 1
    um = np.bincount(unit, x, n_units) / np.maximum(np.bincount(unit, minlength=n_units), 1)
    um = np.where(um > 0, um, 1.0)
    xn = x / um[unit]
    if reference_keys is not None:
        order = np.argsort(reference_keys)
        rk, rv = np.asarray(reference_keys)[order], np.asarray(reference_values, float)[order]
        pos = np.clip(np.searchsorted(rk, uk), 0, max(len(rk) - 1, 0))
        refval = np.where((len(rk) > 0) & (rk[pos] == uk), rv[pos], np.nan) if len(rk) else np.full(n_ref, np.nan)
        ccs = np.stack([_unit_cc(unit, n_units, xn, refval[refs[k]]) for k in range(n_ops)])
        best = np.argmax(np.nan_to_num(ccs, nan=-2.0), axis=0)
        best[np.all(np.isnan(ccs), axis=0)] = 0
        return AmbiguityResult(op=best, cc=ccs[best, np.arange(n_units)], passes=1)

    rng = np.random.default_rng(seed)
    order = np.argsort(unit, kind="stable")
    cnt = np.bincount(unit, minlength=n_units)
    ustart = np.concatenate([[0], np.cumsum(cnt)[:-1]])

    def obs_of(units: np.ndarray) -> np.ndarray:
        c = cnt[units]
        base = np.repeat(ustart[units] - np.concatenate([[0], np.cumsum(c)[:-1]]), c)
        return order[np.arange(int(c.sum())) + base]

    S_n = np.zeros(n_ref)
    S_x = np.zeros(n_ref)
    few = n_units <= 20
    if few:
        assign = np.zeros(n_units, np.int64)
        active = np.zeros(n_units, bool)
        active[0] = True
        j0 = obs_of(np.array([0]))
        np.add.at(S_n, refs[0][j0], 1.0)
        np.add.at(S_x, refs[0][j0], xn[j0])
        visit = [np.array([u]) for u in range(1, n_units)]
    else:
        assign = rng.integers(0, n_ops, n_units)
        active = np.ones(n_units, bool)
        for k in range(n_ops):
            j = np.flatnonzero(assign[unit] == k)
            S_n += np.bincount(refs[k][j], None, n_ref)
            S_x += np.bincount(refs[k][j], xn[j], n_ref)
        visit = None

    cc_best = np.full(n_units, np.nan)

    def update(units: np.ndarray) -> int:
        j = obs_of(units)
        if not len(j):
            return 0
        uj = unit[j]
        local = np.searchsorted(units, uj) if len(units) > 1 else np.zeros(len(j), np.int64)
        sorter = None
        if len(units) > 1 and not np.all(np.diff(units) > 0):
            sorter = np.argsort(units)
            local = sorter[np.searchsorted(units[sorter], uj)]
        own_act = active[uj]
        ccs = np.empty((n_ops, len(units)))
        for k in range(n_ops):
            rk = refs[k][j]
            own = own_act & (assign[uj] == k)
            n_o = S_n[rk] - own
            with np.errstate(invalid="ignore", divide="ignore"):
                m = np.where(n_o > 0, (S_x[rk] - own * xn[j]) / n_o, np.nan)
            ccs[k] = _unit_cc(local, len(units), xn[j], m)
        new = np.argmax(np.nan_to_num(ccs, nan=-2.0), axis=0)
        undefined = np.all(np.isnan(ccs), axis=0)
        old = assign[units]
        new = np.where(undefined & active[units], old, np.where(undefined, 0, new))
        changed = (new != old) | ~active[units]
        cc_best[units] = ccs[new, np.arange(len(units))]
        if changed.any():
            cu = units[changed]
            jc = obs_of(cu)
            ujc = unit[jc]
            was = active[ujc]
            ro = refs_take(assign[ujc], jc)
            np.subtract.at(S_n, ro[was], 1.0)
            np.subtract.at(S_x, ro[was], xn[jc][was])
            assign[cu] = new[changed]
            active[cu] = True
            rn = refs_take(assign[ujc], jc)
            np.add.at(S_n, rn, 1.0)
            np.add.at(S_x, rn, xn[jc])
        return int(np.count_nonzero(new != old))

    def refs_take(opk: np.ndarray, j: np.ndarray) -> np.ndarray:
        out = np.empty(len(j), np.int64)
        for k in range(n_ops):
            m = opk == k
            out[m] = refs[k][j[m]]
        return out

    passes = 0
    if few:
        for u in visit:
            update(u)
        passes = 1
        for _ in range(3):
            passes += 1
            if update_all_blocks(update, rng, n_units, 1) == 0:
                break
    else:
        n_blocks = max(16, n_units // 50)
        for _ in range(max_passes):
            passes += 1
            changed = update_all_blocks(update, rng, n_units, n_blocks)
            if passes >= 3 and changed <= 0.001 * n_units:
                break
    # global operator: the most frequent choice becomes the identity
    counts = np.bincount(assign, minlength=n_ops)
    m = int(np.argmax(counts))
    if m != 0 and not few:
        assign = _relabel(sym, ops, assign, m)
    return AmbiguityResult(op=assign, cc=cc_best, passes=passes)


def update_all_blocks(update, rng: np.random.Generator, n_units: int, n_blocks: int) -> int:
    perm = rng.permutation(n_units)
    changed = 0
    for blk in np.array_split(perm, max(1, min(n_blocks, n_units))):
        if len(blk):
            changed += update(np.sort(blk))
    return changed


def _relabel(sym: Symmetry, ops: list[np.ndarray], assign: np.ndarray, m: int) -> np.ndarray:
    """Compose every choice with the inverse of operator m (so units on m go to the identity)."""
    probe = np.array([[1, 2, 5], [3, 7, 11], [13, 17, 19], [2, 9, 4]], np.int64)
    Rm_inv = np.rint(np.linalg.inv(ops[m])).astype(np.int64)
    key_of = [sym.orbit_keys(probe @ R) for R in ops]
    table = np.zeros(len(ops), np.int64)
    for k, R in enumerate(ops):
        comp = R @ Rm_inv
        kk = sym.orbit_keys(probe @ comp)
        match = [i for i in range(len(ops)) if np.array_equal(key_of[i], kk)]
        table[k] = match[0] if match else k
    return table[assign]
