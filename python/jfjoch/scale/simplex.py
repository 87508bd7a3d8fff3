"""Nelder–Mead minimisation of a function of a few parameters (numpy only).

Why not ``scipy.optimize.minimize``: importing ``scipy.optimize`` costs 0.3–0.35 s on the development
machine (docstring processing at import), about a sixth of a whole `jfjoch_scale` run on a sweep, and the
scaling only minimises two-parameter functions (the error model's a, b; the tanh fit of CC1/2 against
resolution). This is the textbook simplex method with the standard coefficients (reflection 1, expansion
2, contraction 1/2, shrink 1/2) and scipy's stopping rule, so it takes the same steps as
``minimize(method="Nelder-Mead")`` with the same ``initial_simplex``, ``xatol``, ``fatol`` and ``maxiter``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_REFLECT, _EXPAND, _CONTRACT, _SHRINK = 1.0, 2.0, 0.5, 0.5


def nelder_mead(
    fun: Callable[[np.ndarray], float], simplex: np.ndarray, *, xatol: float, fatol: float, maxiter: int,
) -> np.ndarray:
    """Minimise ``fun`` from the (n+1, n) starting ``simplex``; returns the best vertex.

    Stops when every vertex lies within ``xatol`` (per coordinate) of the best one and every value within
    ``fatol`` of the best value, or after ``maxiter`` iterations. Non-finite values of ``fun`` count as
    worse than any finite one (NaN is treated as +inf).
    """
    sim = np.array(simplex, dtype=float)
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1] + 1:
        raise ValueError("nelder_mead: the simplex must have n + 1 vertices of n coordinates")
    n = sim.shape[1]

    def value(x: np.ndarray) -> float:
        v = float(fun(x))
        return np.inf if np.isnan(v) else v

    fsim = np.array([value(x) for x in sim])
    order = np.argsort(fsim)
    sim, fsim = sim[order], fsim[order]
    for _ in range(1, maxiter):
        if np.max(np.abs(sim[1:] - sim[0])) <= xatol and np.max(np.abs(fsim[0] - fsim[1:])) <= fatol:
            break
        centroid = sim[:-1].sum(axis=0) / n
        worst = sim[-1]
        xr = (1 + _REFLECT) * centroid - _REFLECT * worst
        fr = value(xr)
        shrink = False
        if fr < fsim[0]:
            xe = (1 + _REFLECT * _EXPAND) * centroid - _REFLECT * _EXPAND * worst
            fe = value(xe)
            sim[-1], fsim[-1] = (xe, fe) if fe < fr else (xr, fr)
        elif fr < fsim[-2]:
            sim[-1], fsim[-1] = xr, fr
        elif fr < fsim[-1]:  # outside contraction
            xc = (1 + _CONTRACT * _REFLECT) * centroid - _CONTRACT * _REFLECT * worst
            fc = value(xc)
            if fc <= fr:
                sim[-1], fsim[-1] = xc, fc
            else:
                shrink = True
        else:  # inside contraction
            xcc = (1 - _CONTRACT) * centroid + _CONTRACT * worst
            fcc = value(xcc)
            if fcc < fsim[-1]:
                sim[-1], fsim[-1] = xcc, fcc
            else:
                shrink = True
        if shrink:
            for j in range(1, n + 1):
                sim[j] = sim[0] + _SHRINK * (sim[j] - sim[0])
                fsim[j] = value(sim[j])
        order = np.argsort(fsim)
        sim, fsim = sim[order], fsim[order]
    return sim[0].copy()
