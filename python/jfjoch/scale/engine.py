"""Scaling and merging of integrated observations: :func:`scale_and_merge` (the in-memory entry the
pipeline calls for `jfjoch_process -M`, and what `jfjoch_scale` runs after reading its inputs).

Order of work (docs/scaling.md):
1. inputs checked: non-empty tables, cells agree within 2 % (after an axis permutation that puts every run
   into the first run's setting), the space group fits the lattice;
2. observations: invalid σ, systematic absences and the --scaling-high-resolution limit removed (counted);
3. indexing ambiguity resolved (stills per image, rotation runs per run) when the lattice allows it;
4. ASU mapping (gemmi), rotation partials grouped into full observations, partiality model;
5. no reference: ``--scaling-iterations`` rounds of (merge, refine mosaicity/wedge for -P rot, per-image
   G [and B]), each followed by the error model and rejection; with ``-z``: per-image G [and B] against
   the reference, ambiguity against the reference;
6. final merge with the error model; statistics by resolution shell.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import gemmi
import numpy as np

from ..errors import InputError, ProcessingError, UsageError
from ..options import ScaleOptions
from ..tables import ReflectionFlag
from .ambiguity import resolve_ambiguity
from .data import (
    ErrorModel,
    ImageScales,
    MergedReflections,
    RunInfo,
    ScaledObservations,
    ScaleInput,
    ScaleResult,
)
from .merge import delta_cc_half, fit_error_model, image_cc, leave_one_out_mean, merge_weighted, outliers
from .model import build_fulls, full_coefficients, group_partials, model_factor, rocking_partiality
from .solve import gauss_newton_step, sweep_neighbours
from .stats import group_mean, merging_statistics, resolution_estimate
from .symmetry import (
    Symmetry,
    ambiguity_operators,
    cell_difference,
    check_lattice,
    pack,
    reindex_cell,
    setting_operators,
    space_group,
    symmetrise_cell,
    unpack,
)

__all__ = ["ReferenceData", "scale_and_merge"]

INNER_CYCLES = 3
"""Merge + Gauss-Newton cycles per scaling round."""
CELL_TOLERANCE = 0.02
MIN_FULL_FRACTION = 0.5
"""Rotation: a reflection summed over its partials is merged only when its recorded fraction (the sum of
its partialities, model) is at least this (or --min-partiality if larger); XDS uses 0.75, DIALS 0.4."""
MAX_FULL_FRACTION = 1.3
"""Rotation with -P fixed: partials whose stored partialities add up to more than this (the integration's
rocking model does not describe the reflection, e.g. near the blind region) are not merged."""
MIN_IMAGE_OBS = 3
"""Images with fewer full observations than this are not scaled (rejected: 'too_few_observations')."""
SIGMA_GRID = np.geomspace(0.005, 3.0, 28)
"""Candidate rocking-curve widths σ (degrees) for -P rot."""
WEDGE_GRID = np.linspace(0.5, 1.5, 21)
"""Candidate wedges for -w, relative to the starting value."""


class ReferenceData:
    """Reference intensities (``-z``): orbit keys in the merging space group and values."""

    def __init__(self, hkl: np.ndarray, intensity: np.ndarray, cell: Sequence[float], space_group_number: int,
                 path: str = "") -> None:
        self.hkl = np.asarray(hkl, np.int64)
        self.intensity = np.asarray(intensity, float)
        self.cell = tuple(float(c) for c in cell)
        self.space_group_number = int(space_group_number)
        self.path = path

    def values_for(self, sym: Symmetry) -> tuple[np.ndarray, np.ndarray]:
        """(sorted orbit keys in ``sym``, intensities): the reference expanded by its own point group and
        mapped onto the merging group's reflections (mean where several map to one)."""
        own = Symmetry(self.space_group_number)
        hk, val = [], []
        for R in own.rots:
            hk.append(self.hkl @ R)
            val.append(self.intensity)
        keys = sym.orbit_keys(np.concatenate(hk))
        v = np.concatenate(val)
        uk, inv = np.unique(keys, return_inverse=True)
        return uk, np.bincount(inv, v) / np.bincount(inv)


def _options(options, kwargs) -> ScaleOptions:
    if options is None:
        options = ScaleOptions.from_kwargs(**kwargs)
    elif kwargs:
        from dataclasses import replace

        options = replace(options, **kwargs)
    return options.validate()


def scale_and_merge(
    inputs: Sequence[ScaleInput],
    options=None,
    *,
    reference: ReferenceData | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    **kwargs,
) -> ScaleResult:
    """Scale and merge integrated observations of one or more runs.

    options: :class:`~jfjoch.options.ScaleOptions` (or :class:`~jfjoch.options.ProcessOptions`: only its
    scaling fields are used), or keyword options. ``reference``: reference intensities for ``-z``
    (:func:`jfjoch.io.reflections.read_reference_mtz`); when None and ``options.reference_mtz`` is set the
    file is read here. progress(stage, done, total) is called per scaling round.
    Raises InputError/UsageError (exit code 2) for unusable inputs, ProcessingError (1) when nothing can be
    merged.
    """
    t0 = time.perf_counter()
    opts = _options(options, kwargs)
    timing: dict[str, float] = {}
    notes: list[str] = []
    inputs = list(inputs)
    if not inputs:
        raise InputError("no input to scale")
    for inp in inputs:
        if len(inp.reflections) == 0:
            raise InputError(f"{inp.name or f'run {inp.run_id}'}: empty reflection table")
    if reference is None and opts.reference_mtz is not None:
        from ..io.reflections import read_reference_mtz

        reference = read_reference_mtz(opts.reference_mtz)
    if opts.wedge is not None and not any(i.is_rotation for i in inputs):
        notes.append("-w/--wedge ignored: no rotation data")
    # ---------------------------------------------------------------- symmetry, cells, settings
    sg_number = opts.space_group
    if sg_number is None:
        given = [i.space_group for i in inputs if i.space_group]
        sg_number = given[0] if given else 1
        if not given:
            notes.append("no space group given or stored: merging in P 1")
        elif len(set(given)) > 1:
            notes.append(f"inputs state different space groups ({sorted(set(given))}); using {sg_number} "
                         "(-S to choose)")
    sg = space_group(sg_number)
    sym = Symmetry(sg)
    ref_cell = tuple(map(float, inputs[0].cell))
    setting_ops = [np.eye(3, dtype=np.int64)]
    for inp in inputs[1:]:
        cand = setting_operators(inp.cell, ref_cell, CELL_TOLERANCE)
        if not cand:
            diff = 100 * cell_difference(inp.cell, ref_cell)
            raise InputError(
                f"unit cells disagree by more than {100 * CELL_TOLERANCE:g} % ({diff:.1f} %): "
                f"{inputs[0].name or 'run 0'} {_cellstr(ref_cell)} vs {inp.name or f'run {inp.run_id}'} "
                f"{_cellstr(inp.cell)}")
        setting_ops.append(cand[0])
    cells = np.array([reindex_cell(inp.cell, R) for inp, R in zip(inputs, setting_ops)])
    n_rows_run = np.array([len(i.reflections) for i in inputs], float)
    mean_cell = tuple(float(v) for v in (cells * n_rows_run[:, None]).sum(0) / n_rows_run.sum())
    check_lattice(mean_cell, sg)
    cell = symmetrise_cell(mean_cell, sg)
    uc = gemmi.UnitCell(*cell)
    if reference is not None and cell_difference(reference.cell, cell) > CELL_TOLERANCE:
        raise InputError(f"reference {reference.path or 'MTZ'}: cell {_cellstr(reference.cell)} differs from the "
                         f"data's {_cellstr(cell)} by more than {100 * CELL_TOLERANCE:g} %")
    wavelengths = [i.wavelength for i in inputs if np.isfinite(i.wavelength) and i.wavelength > 0]
    wavelength = float(np.mean(wavelengths)) if wavelengths else float("nan")

    # ---------------------------------------------------------------- rows
    step = 10000 * max(1, math.ceil(max(int(i.reflections.image.max()) + 1 for i in inputs) / 10000))
    cols: dict[str, list] = {k: [] for k in ("run", "image", "hkl", "I", "sigma", "phi", "p", "lp", "flags")}
    runs: list[RunInfo] = []
    for k, (inp, R) in enumerate(zip(inputs, setting_ops)):
        t = inp.reflections
        cols["run"].append(np.full(len(t), k, np.int64))
        cols["image"].append(t.image.astype(np.int64))
        hk = t.hkl.astype(np.int64)
        cols["hkl"].append(hk if np.array_equal(R, np.eye(3)) else hk @ R)
        cols["I"].append(t.I.astype(float))
        cols["sigma"].append(t.sigma.astype(float))
        cols["phi"].append(t.phi.astype(float))
        cols["p"].append(t.partiality.astype(float))
        cols["lp"].append(t.lp.astype(float))
        cols["flags"].append(t.flags)
        runs.append(RunInfo(name=inp.name, run_id=inp.run_id, n_images=len(np.unique(t.image)),
                            batch_offset=k * step, reindex=R, rotation=inp.is_rotation,
                            wavelength=float(inp.wavelength), goniometer=inp.goniometer))
    run = np.concatenate(cols["run"])
    image = np.concatenate(cols["image"])
    hkl = np.concatenate(cols["hkl"])
    I = np.concatenate(cols["I"])
    sig = np.concatenate(cols["sigma"])
    phi = np.concatenate(cols["phi"])
    p_in = np.concatenate(cols["p"])
    lp = np.concatenate(cols["lp"])
    flags = np.concatenate(cols["flags"])
    n_input = len(run)
    rej: dict[str, int] = {}

    def drop(mask: np.ndarray, reason: str) -> None:
        c = int(np.count_nonzero(mask))
        if c:
            rej[reason] = rej.get(reason, 0) + c

    valid = np.isfinite(I) & np.isfinite(sig) & (sig > 0) & np.any(hkl != 0, axis=1)
    bad_lp = ~(np.isfinite(lp) & (lp > 0))
    lp = np.where(bad_lp, 1.0, lp)
    drop(~valid, "invalid")
    saturated = valid & ((flags & int(ReflectionFlag.SATURATED)) != 0)
    drop(saturated, "saturated")
    valid &= ~saturated
    near_axis = valid & ((flags & int(ReflectionFlag.NEAR_SPINDLE)) != 0)
    drop(near_axis, "near_spindle")
    valid &= ~near_axis
    # per distinct index once (tens of thousands instead of millions of rows)
    hkey, hinv = np.unique(pack(hkl), return_inverse=True)
    uh = unpack(hkey)
    absent = sym.absent(uh)[hinv] & valid
    n_valid = int(valid.sum())
    if n_valid and absent.sum() > max(20, 0.1 * n_valid):
        raise UsageError(f"space group {sg.hm} ({sg.number}) is incompatible with the lattice: "
                         f"{100 * absent.sum() / n_valid:.0f} % of the observations are systematically absent")
    drop(absent, "systematic_absence")
    keep = valid & ~absent
    d_u = np.zeros(len(uh))
    uvalid = np.bincount(hinv, keep.astype(float), len(uh)) > 0
    d_u[uvalid] = uc.calculate_d_array(np.ascontiguousarray(uh[uvalid], np.int32))
    d_row = d_u[hinv]
    if opts.scaling_high_resolution is not None:
        beyond = keep & (d_row < opts.scaling_high_resolution)
        drop(beyond, "resolution")
        keep &= ~beyond
    # partiality model (before rot refinement: the table's value or 1)
    is_rot_run = np.array([inp.is_rotation for inp in inputs])
    rot_row = is_rot_run[run]
    model = opts.partiality
    if model == "rot":
        missing = [inp.name or f"run {inp.run_id}" for inp in inputs if not inp.is_rotation]
        if missing:
            raise UsageError(f"-P rot needs rotation data with a goniometer: {', '.join(missing[:3])} has none")
    if model == "unity":
        p = np.ones(n_input)
    else:
        p = np.where(np.isfinite(p_in) & (p_in > 0), p_in, np.nan)
        if model == "fixed" and np.all(np.isnan(p[keep])):
            notes.append("no partiality stored: -P fixed uses 1")
            p = np.ones(n_input)
        else:
            p = np.where(np.isnan(p), 1.0 if model == "rot" else 0.0, p)
    if model != "rot":
        low = keep & ~rot_row & (p < max(opts.min_partiality, 1e-6))
        drop(low, "partiality")
        keep &= ~low
    if not keep.any():
        raise ProcessingError("no observations left to scale (all invalid, absent or beyond the limits)")
    if not keep.all():  # (a copy of every column: skipped when nothing was dropped)
        sel = np.flatnonzero(keep)
        run, image, hkl, I, sig, phi, p, lp, d_row, hinv, p_in, rot_row = (
            a[sel] for a in (run, image, hkl, I, sig, phi, p, lp, d_row, hinv, p_in, rot_row))
    p_table = p_in

    # ---------------------------------------------------------------- images
    img_key = run * (1 << 40) + image
    extra_keys = []
    for k, inp in enumerate(inputs):
        if inp.image_stats is not None:
            extra_keys.append(k * (1 << 40) + inp.image_stats.image)
    if len(img_key) > 1 and np.all(img_key[1:] >= img_key[:-1]):  # sorted by run and image (the usual case)
        all_keys = img_key[np.concatenate([[True], img_key[1:] != img_key[:-1]])]
    else:
        all_keys = np.unique(img_key)
    if extra_keys:
        all_keys = np.unique(np.concatenate([all_keys, *extra_keys]))
    n_img = len(all_keys)
    img = np.searchsorted(all_keys, img_key)
    img_run = (all_keys >> 40).astype(np.int64)
    img_number = (all_keys & ((1 << 40) - 1)).astype(np.int64)
    img_batch = img_number + 1 + np.array([r.batch_offset for r in runs])[img_run]
    is_sweep = np.array([inp.is_sweep for inp in inputs])
    sweep_img = is_sweep[img_run]
    timing["prepare"] = time.perf_counter() - t0

    # ---------------------------------------------------------------- ambiguity
    t1 = time.perf_counter()
    amb_ops = ambiguity_operators(cell, sg)
    amb_info: dict = {"operators": [_op_str(R) for R in amb_ops]}
    amb_changed = False
    if len(amb_ops) > 1:
        unit_is_image = ~is_rot_run[img_run] & ~is_sweep[img_run]
        # unit per row: images of stills runs, whole runs for sweeps
        unit_key = np.where(unit_is_image[img], img, n_img + run)
        uu, unit = np.unique(unit_key, return_inverse=True)
        xa = I / np.maximum(np.where(rot_row, 1.0, p), 0.05) / lp
        rk = rv = None
        if reference is not None:
            rk, rv = reference.values_for(sym)
        res = resolve_ambiguity(sym, hkl, xa, unit, len(uu), amb_ops, reference_keys=rk, reference_values=rv,
                                seed=0)
        choice = res.op[unit]
        amb_changed = bool(np.any(choice != 0))
        for k in range(1, len(amb_ops)):
            m = choice == k
            if m.any():
                hkl[m] = hkl[m] @ amb_ops[k]
        amb_info.update({
            "units": len(uu),
            "unit": "image" if np.all(unit_is_image[img]) else ("run" if not np.any(unit_is_image[img]) else "mixed"),
            "counts": [int(c) for c in np.bincount(res.op, minlength=len(amb_ops))],
            "passes": int(res.passes),
            "unit_op": res.op,
            "unit_key": uu,
        })
        if len(uu) > 1:
            per_op = zip(amb_info["counts"], amb_info["operators"])
            notes.append("indexing ambiguity (" + ", ".join(amb_info["operators"][1:]) + "): "
                         + ", ".join(f"{c} {amb_info['unit']}s on {o}" for c, o in per_op))
    timing["ambiguity"] = time.perf_counter() - t1

    # ---------------------------------------------------------------- ASU, fulls
    t2 = time.perf_counter()
    if amb_changed:  # the indices changed: their distinct set too
        hkey, hinv = np.unique(pack(hkl), return_inverse=True)
        uh = unpack(hkey)
    else:  # compact the distinct set to the rows kept
        used, hinv = np.unique(hinv, return_inverse=True)
        uh = uh[used]
    asu_u, isym_u = sym.to_asu(uh)
    ukeys, first_u, ref_u = np.unique(pack(asu_u), return_index=True, return_inverse=True)
    n_ref = len(ukeys)
    ref_hkl = asu_u[first_u].astype(np.int32)
    asu, isym, ref = asu_u[hinv], isym_u[hinv], ref_u[hinv]
    ref_d = uc.calculate_d_array(ref_hkl)
    ref_s2 = 1.0 / (4.0 * ref_d**2)
    centric = sym.centric(ref_hkl)
    minus_row = (isym % 2) == 0
    row_full, n_full = group_partials(run, image, hkl, rot_row)
    summed = np.bincount(row_full, minlength=n_full) > 1
    summed |= np.bincount(row_full, rot_row.astype(float), n_full) > 0
    # full-level fixed quantities
    I_f = np.bincount(row_full, I, n_full)
    var_f = np.bincount(row_full, sig**2, n_full)
    f_first = np.full(n_full, -1, np.int64)
    f_first[row_full[::-1]] = np.arange(len(row_full))[::-1]
    ref_f = ref[f_first]
    s2_f = ref_s2[ref_f]
    minus_f = minus_row[f_first]
    run_f = run[f_first]

    # rotation geometry per row
    gon_start = np.array([inp.goniometer.start_deg if inp.goniometer is not None else 0.0 for inp in inputs])
    gon_inc = np.array([inp.goniometer.increment_deg if inp.goniometer is not None else 0.0 for inp in inputs])
    img_start = gon_start[img_run] + img_number * gon_inc[img_run]
    wedge0 = np.abs(gon_inc[img_run])
    if opts.wedge:
        wedge0 = np.where(gon_inc[img_run] != 0, opts.wedge, 0.0)
    img_wedge = wedge0.copy()
    img_sigma = np.full(n_img, np.nan)
    use_rot = model == "rot"
    rot_omega0 = [0.0]
    if use_rot:
        # rocking width in phi: L · sqrt(ω0² + (η λ/d)²) (degrees), L from the lp column (docs/scaling.md)
        lam = np.array([inp.wavelength for inp in inputs])[run]
        lam_d = np.where(np.isfinite(lam) & (lam > 0), lam / d_row, np.nan)
        lfac = np.clip(np.where(np.isfinite(lp) & (lp > 0), lp, 1.0), 0.05, 100.0)
        phi_ok = np.isfinite(phi)
        # start (and the increment sign): rows integrate over [start, start + wedge] in the sweep's direction
        inc_sign = np.sign(gon_inc[img_run])[img]
    timing["fulls"] = time.perf_counter() - t2

    # ---------------------------------------------------------------- state
    g = np.zeros(n_img)
    B = np.zeros(n_img)
    full_active = np.ones(n_full, bool)
    img_reason = np.array([""] * n_img, dtype=object)
    img_cc = np.full(n_img, np.nan)
    iterations: list[ImageScales] = []
    restraints = sweep_neighbours(img_run, img_number, sweep_img)
    irej: dict[str, int] = {}
    ref_target_f = None
    if reference is not None:
        rk, rv = reference.values_for(sym)
        keys_f = sym.orbit_keys(asu[f_first])
        pos = np.clip(np.searchsorted(rk, keys_f), 0, max(len(rk) - 1, 0))
        ref_target_f = np.where(rk[pos] == keys_f, rv[pos], np.nan) if len(rk) else np.full(n_full, np.nan)
        ref_per_ref = np.full(n_ref, np.nan)
        ref_per_ref[ref_f] = ref_target_f
        if np.count_nonzero(np.isfinite(ref_target_f)) < 10:
            raise InputError(f"reference {reference.path or 'MTZ'}: fewer than 10 reflections in common with the data")

    def partiality_rows(eta_img: np.ndarray, wedge_img: np.ndarray, omega0: float | None = None,
                        rows: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
        """Rocking-model partiality of every row (or of ``rows`` only, in their order)."""
        o0 = rot_omega0[0] if omega0 is None else omega0
        sel = slice(None) if rows is None else rows
        im = img[sel]
        st = img_start[im]
        wd = wedge_img[im]
        lo = np.where(inc_sign[sel] >= 0, st, st - wd)
        eta = eta_img[im]
        ld = lam_d[sel]
        term = np.where(np.isfinite(ld), eta * ld, eta)
        pr = rocking_partiality(phi[sel], lo, wd, lfac[sel] * np.sqrt(o0 * o0 + term * term))
        pt = p_table[sel]
        return np.where(phi_ok[sel], pr, np.where(np.isfinite(pt) & (pt > 0), pt, 1.0))

    def current_q(pr: np.ndarray):
        q, frac, lp_f = full_coefficients(row_full, n_full, pr, lp, summed)
        return q, frac, lp_f

    p_rows = p
    if use_rot:
        # initial rocking width: one value for all images, from the unscaled sums
        p_rows, img_sigma, rot_omega0[0] = _init_mosaicity(
            row_full, n_full, img, n_img, I, sig, lp, ref_f, n_ref, I_f, var_f, partiality_rows, img_wedge,
            wavelength_known=bool(np.isfinite(lam_d).any()))
        notes.append(f"-P rot: rocking width L·sqrt(ω0² + (η λ/d)²), ω0 = {rot_omega0[0]:.4f}°, "
                     f"initial η = {float(np.nanmedian(img_sigma)):.4f}°")
    q, frac_f, lp_f = current_q(p_rows)
    if summed.any():  # rotation sums: the recorded fraction must reach MIN_FULL_FRACTION
        low = summed & (frac_f < max(opts.min_partiality, MIN_FULL_FRACTION))
        drop(np.isin(row_full, np.flatnonzero(low)), "partiality")
        full_active &= ~low
        if model == "fixed":  # the stored partialities must describe the reflection
            over = summed & (np.bincount(row_full, p_rows, n_full) > MAX_FULL_FRACTION) & full_active
            drop(np.isin(row_full, np.flatnonzero(over)), "partiality_sum")
            full_active &= ~over

    def image_free() -> np.ndarray:
        cnt = np.bincount(img[full_active[row_full]], minlength=n_img)
        return (cnt > 0) & (img_reason == "")

    def merged_target(K: np.ndarray, rows_full_active: np.ndarray) -> np.ndarray:
        w = np.where(rows_full_active, K**2 / var_f, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean, _ = group_mean(ref_f, I_f / K, w, n_ref)
        return mean[ref_f]

    single_rows = not summed.any()

    def centroid_image() -> np.ndarray:
        # image of each full: the p-weighted mean image of its rows (rounded), as a global image index
        if single_rows:
            return img[f_first]
        wsum = np.bincount(row_full, p_rows, n_full)
        mean_num = np.bincount(row_full, p_rows * image, n_full) / np.where(wsum > 0, wsum, 1)
        num = np.rint(mean_num).astype(np.int64)
        num = np.where(wsum > 0, num, image[f_first])
        return np.searchsorted(all_keys, run_f * (1 << 40) + num)

    refine_b = bool(opts.refine_bfactor)
    t3 = time.perf_counter()
    fs = build_fulls(row_full, img, n_full, n_img)  # all rows; inactive fulls get zero weight
    w_scale = 1.0 / var_f
    n_rounds = 1 if reference is not None else opts.scaling_iterations
    error_model = ErrorModel(1.0, 0.0)
    img_full = centroid_image()
    # images with too few observations are not scaled
    cnt_img = np.bincount(img_full[full_active], minlength=n_img)
    few = (cnt_img < MIN_IMAGE_OBS) & (img_reason == "")
    img_reason[few & (cnt_img == 0)] = "no_observations"
    img_reason[few & (cnt_img > 0)] = "too_few_observations"
    drop_imgs = few & (cnt_img > 0)
    if drop_imgs.any():
        m = full_active & drop_imgs[img_full]
        drop(np.isin(row_full, np.flatnonzero(m)), "image_too_few_observations")
        full_active &= ~m
    if not full_active.any():
        raise ProcessingError("no image has enough observations to be scaled")

    for rnd in range(1, n_rounds + 1):
        if progress:
            progress("scaling", rnd - 1, n_rounds)
        for cyc in range(INNER_CYCLES if reference is None else 6):
            K, _ = model_factor(fs, q, s2_f, g, B)
            if reference is not None:
                target = ref_target_f
            else:
                target = merged_target(K, full_active)
            if use_rot and cyc == 0:
                img_sigma, img_wedge = _refine_rot(
                    target, full_active, row_full, img, n_img, I, sig, g, B, s2_f, lp, p_rows, summed,
                    partiality_rows, img_sigma, img_wedge, refine_wedge=opts.wedge is not None,
                    wedge_start=wedge0, img_run=img_run)
                p_rows = partiality_rows(img_sigma, img_wedge)
                q, frac_f, lp_f = current_q(p_rows)
                K, _ = model_factor(fs, q, s2_f, g, B)
                if reference is None:
                    target = merged_target(K, full_active)
            free = image_free()
            w_use = np.where(full_active, w_scale, 0.0)
            g, B, dmax = gauss_newton_step(fs, q, s2_f, I_f, w_use, target, g, B, refine_b=refine_b,
                                           restraints=restraints, free=free)
            if reference is None:
                act = free
                if act.any():
                    g = g - np.mean(g[act])
                    if refine_b:
                        B = B - np.mean(B[act])
            if dmax < 1e-5 and cyc > 0:
                break
        # ---- error model and rejection after the round
        K, _ = model_factor(fs, q, s2_f, g, B)
        with np.errstate(invalid="ignore", divide="ignore"):  # inactive fulls may have K = 0
            x = I_f / K
            sx = np.sqrt(var_f) / K
        a_idx = np.flatnonzero(full_active)
        error_model = fit_error_model(ref_f[a_idx], x[a_idx], sx[a_idx], n_ref, start=error_model)
        sxe = _error_sigma(error_model, ref_f, x, sx, full_active, n_ref)
        changed = False
        if opts.reject_outliers is not None:
            out = np.zeros(n_full, bool)
            out[a_idx] = outliers(ref_f[a_idx], x[a_idx], sxe[a_idx], n_ref, opts.reject_outliers)
            if out.any():
                drop(np.isin(row_full, np.flatnonzero(out)), "outlier")
                full_active &= ~out
                changed = True
        # per-image CC: against the reference, or the other observations' mean
        img_full = centroid_image()
        a_idx = np.flatnonzero(full_active)
        if reference is not None:
            yy = ref_target_f[a_idx]
        else:
            yy, _ = leave_one_out_mean(ref_f[a_idx], x[a_idx], 1.0 / sxe[a_idx] ** 2, n_ref)
        img_cc = image_cc(img_full[a_idx], x[a_idx], yy, n_img)
        if opts.min_image_cc is not None:
            bad = (img_reason == "") & np.isfinite(img_cc) & (img_cc < opts.min_image_cc / 100.0)
            if bad.any():
                img_reason[bad] = "min_image_cc"
                irej["min_image_cc"] = irej.get("min_image_cc", 0) + int(bad.sum())
                m = full_active & bad[img_full]
                drop(np.isin(row_full, np.flatnonzero(m)), "image_min_cc")
                full_active &= ~m
                changed = True
        if opts.reject_delta_cchalf is not None and rnd == 1:  # once: repeated, it would trim the tail each round
            a_idx = np.flatnonzero(full_active)
            _, dcc = delta_cc_half(ref_f[a_idx], img_full[a_idx], x[a_idx], 1.0 / sxe[a_idx] ** 2, n_ref, n_img,
                                   seed=rnd)
            ok = np.isfinite(dcc) & (img_reason == "")
            bad = np.zeros(n_img, bool)
            for _ in range(10):  # mean and sd without the images already below the limit, until stable
                keep_ = ok & ~bad
                if keep_.sum() < 3:
                    break
                mu, sd = float(np.mean(dcc[keep_])), float(np.std(dcc[keep_]))
                new = ok & (dcc < mu - opts.reject_delta_cchalf * sd)
                if np.array_equal(new, bad):
                    break
                bad = new
            if bad.any():
                img_reason[bad] = "delta_cchalf"
                irej["delta_cchalf"] = irej.get("delta_cchalf", 0) + int(bad.sum())
                m = full_active & bad[img_full]
                drop(np.isin(row_full, np.flatnonzero(m)), "image_delta_cchalf")
                full_active &= ~m
                changed = True
        if changed and not full_active.any():
            raise ProcessingError("every observation was rejected")
        if reference is None:
            iterations.append(_image_table(runs, img_run, img_number, img_batch, g, B, img_sigma, img_wedge,
                                           img_cc, img_full, full_active, img_reason, rot=is_rot_run[img_run]))
    if reference is not None and changed:
        for _ in range(3):
            g, B, _ = gauss_newton_step(fs, q, s2_f, I_f, np.where(full_active, w_scale, 0.0), ref_target_f, g, B,
                                        refine_b=refine_b, restraints=restraints, free=image_free())
    if progress:
        progress("scaling", n_rounds, n_rounds)
    timing["scaling"] = time.perf_counter() - t3

    # ---------------------------------------------------------------- final merge
    t4 = time.perf_counter()
    K, _ = model_factor(fs, q, s2_f, g, B)
    a_idx = np.flatnonzero(full_active & np.isfinite(K) & (K > 0))
    x = I_f[a_idx] / K[a_idx]
    sx = np.sqrt(var_f[a_idx]) / K[a_idx]
    error_model = fit_error_model(ref_f[a_idx], x, sx, n_ref, start=error_model)
    mw = merge_weighted(ref_f[a_idx], x, sx, n_ref)
    sxe = error_model.a * np.sqrt(sx**2 + (error_model.b * np.nan_to_num(mw["mean"][ref_f[a_idx]])) ** 2)
    m_all = merge_weighted(ref_f[a_idx], x, sxe, n_ref)
    observed = m_all["n"] > 0
    merged = MergedReflections(
        hkl=ref_hkl[observed], I=m_all["mean"][observed], sigma=m_all["sigma"][observed],
        n_obs=m_all["n"][observed], d=ref_d[observed], centric=centric[observed])  # fmt: skip
    if opts.anomalous:
        mi = minus_f[a_idx]
        key = 2 * ref_f[a_idx] + mi
        ma = merge_weighted(key, x, sxe, 2 * n_ref)
        ip, sp_, im_, sm = (ma["mean"][0::2], ma["sigma"][0::2], ma["mean"][1::2], ma["sigma"][1::2])
        cen = centric
        ip = np.where(cen, m_all["mean"], ip)
        sp_ = np.where(cen, m_all["sigma"], sp_)
        im_ = np.where(cen, m_all["mean"], im_)
        sm = np.where(cen, m_all["sigma"], sm)
        merged.i_plus, merged.sig_plus = ip[observed], sp_[observed]
        merged.i_minus, merged.sig_minus = im_[observed], sm[observed]
    img_full = centroid_image()
    fa = img_full[a_idx]
    obs = ScaledObservations(
        run=run_f[a_idx], image=img_number[fa], batch=img_batch[fa], hkl=hkl[f_first[a_idx]].astype(np.int32),
        asu=asu[f_first[a_idx]], isym=isym[f_first[a_idx]], I=x, sigma=sxe, d=ref_d[ref_f[a_idx]],
        fraction=frac_f[a_idx])  # fmt: skip
    timing["merging"] = time.perf_counter() - t4

    # ---------------------------------------------------------------- statistics
    t5 = time.perf_counter()
    possible = sym.possible(uc, float(ref_d[observed].min()) * (1 - 1e-6))
    possible_s = 1.0 / uc.calculate_d_array(possible) ** 2 if len(possible) else np.zeros(0)
    shells, overall, _ = merging_statistics(
        ref_f[a_idx], x, sxe, 1.0 / ref_d**2, possible_s, n_shells=10, seed=0,
        n_splits=5 if len(a_idx) <= 1_000_000 else 2,
        minus=minus_f[a_idx] if opts.anomalous else None, acentric=~centric if opts.anomalous else None,
        reference=ref_per_ref if reference is not None else None)  # fmt: skip
    d_est = resolution_estimate(shells)
    if reference is not None:
        yy = ref_target_f[a_idx]
    else:
        yy, _ = leave_one_out_mean(ref_f[a_idx], x, 1.0 / sxe**2, n_ref)
    img_cc = image_cc(fa, x, yy, n_img)
    images = _image_table(runs, img_run, img_number, img_batch, g, B, img_sigma, img_wedge, img_cc, img_full,
                          full_active, img_reason, rot=is_rot_run[img_run])
    for r in images.reason:
        if r in ("no_observations", "too_few_observations"):
            irej[r] = irej.get(r, 0) + 1
    wilson = _wilson(merged)
    timing["statistics"] = time.perf_counter() - t5
    timing["total"] = time.perf_counter() - t0
    return ScaleResult(
        space_group_number=int(sg.number), space_group_name=sg.hm, cell=cell, wavelength=wavelength,
        merged=merged, observations=obs, images=images, shells=shells, overall=overall, error_model=error_model,
        resolution_estimate=d_est, rejections=rej, image_rejections=irej, runs=runs, options=opts,
        iterations=iterations, ambiguity=amb_info, reference=reference.path if reference is not None else None,
        anomalous=bool(opts.anomalous), n_input_observations=n_input, timing=timing, notes=notes,
        image_stats=[inp.image_stats for inp in inputs], wilson=wilson,
    )  # fmt: skip


# -------------------------------------------------------------------------------------------------------
def _cellstr(c) -> str:
    return "(" + ", ".join(f"{v:.2f}" for v in c) + ")"


def _op_str(R: np.ndarray) -> str:
    """Reindexing operator as 'h,k,l' text (new index in terms of the old)."""
    names = "hkl"
    out = []
    for col in range(3):
        terms = []
        for row in range(3):
            v = int(R[row, col])
            if v:
                terms.append(("-" if v < 0 else "+") + (f"{abs(v)}" if abs(v) != 1 else "") + names[row])
        s = "".join(terms).lstrip("+") or "0"
        out.append(s)
    return ",".join(out)


def _error_sigma(em: ErrorModel, ref_f, x, sx, active, n_ref) -> np.ndarray:
    a_idx = np.flatnonzero(active)
    mean, _ = group_mean(ref_f[a_idx], x[a_idx], 1.0 / sx[a_idx] ** 2, n_ref)
    ib = np.nan_to_num(mean[ref_f])
    return em.a * np.sqrt(sx**2 + (em.b * ib) ** 2)


def _image_table(runs, img_run, img_number, img_batch, g, B, sigma, wedge, cc, img_full, active, reason, rot):
    n_img = len(img_run)
    n_obs = np.bincount(img_full[active], minlength=n_img)
    acc = (reason == "") & (n_obs > 0)
    rsn = np.where((reason == "") & (n_obs == 0), "no_observations", reason).astype(str)
    return ImageScales(
        run=np.array([runs[r].run_id for r in img_run], np.int64), image=img_number.copy(), batch=img_batch.copy(),
        scale=np.exp(g), b_factor=B.copy(), mosaicity=sigma.copy(),
        wedge=np.where(rot, wedge, np.nan), cc=cc.copy(), n_obs=n_obs, accepted=acc, reason=rsn,
    )  # fmt: skip


def _wilson(merged: MergedReflections, n_bins: int = 20) -> dict:
    ok = np.isfinite(merged.I)
    if ok.sum() < 2 * n_bins:
        return {}
    s2 = 1.0 / (4.0 * merged.d[ok] ** 2)
    I = merged.I[ok]
    lim = np.quantile(s2, np.linspace(0, 1, n_bins + 1))
    b = np.clip(np.searchsorted(lim, s2, side="right") - 1, 0, n_bins - 1)
    cnt = np.bincount(b, minlength=n_bins)
    mi = np.bincount(b, I, n_bins) / np.maximum(cnt, 1)
    ms = np.bincount(b, s2, n_bins) / np.maximum(cnt, 1)
    good = (cnt > 0) & (mi > 0)
    out = {"s2": ms[good].tolist(), "ln_i": np.log(mi[good]).tolist()}
    if good.sum() >= 4:
        sel = ms[good] > 1 / (4 * 4.5**2)  # fit beyond 4.5 Å
        if sel.sum() >= 3:
            slope, icpt = np.polyfit(ms[good][sel], np.log(mi[good][sel]), 1)
            out["b_wilson"] = float(-slope / 2.0)
            out["fit"] = [float(slope), float(icpt)]
    return out


OMEGA0_GRID = np.concatenate([[0.0], np.geomspace(0.002, 0.5, 16)])
"""Candidate constant rocking-width terms ω0 (degrees) for -P rot (the spot's reciprocal size times λ)."""


def _init_mosaicity(row_full, n_full, img, n_img, I, sig, lp, ref_f, n_ref, I_f, var_f, partiality_rows, wedge, *,
                    wavelength_known: bool, max_rows: int = 200_000):
    """One rocking width (ω0, η) for all images: the grid pair whose partialities best explain the partials
    of the summed reflections, with unscaled sums as the full intensities."""
    lp_f = np.bincount(row_full, lp, n_full) / np.maximum(np.bincount(row_full, minlength=n_full), 1)
    x = I_f / lp_f
    mean, _ = group_mean(ref_f, x, lp_f**2 / var_f, n_ref)
    target = mean[ref_f][row_full] * lp
    multi = np.bincount(row_full, minlength=n_full)[row_full] > 1
    rows = np.flatnonzero(multi & np.isfinite(target) & (2 * sig < I))
    if len(rows) > max_rows:
        rows = np.random.default_rng(0).choice(rows, max_rows, replace=False)
    if len(rows) < 20:
        rows = np.flatnonzero(np.isfinite(target))
    w = 1.0 / sig[rows] ** 2
    best, best_pair = None, (0.0, SIGMA_GRID[len(SIGMA_GRID) // 2])
    for o0 in OMEGA0_GRID if wavelength_known else [0.0]:
        for s in SIGMA_GRID[::2]:
            pr = partiality_rows(np.full(n_img, s), wedge, o0, rows=rows)
            r = float(np.nansum(w * (I[rows] - pr * target[rows]) ** 2))
            if best is None or r < best:
                best, best_pair = r, (o0, s)
    o0, s = best_pair
    sig_img = np.full(n_img, s)
    return partiality_rows(sig_img, wedge, o0), sig_img, float(o0)


def _refine_rot(target_f, full_active, row_full, img, n_img, I, sig, g, B, s2_f, lp, p_rows, summed,
                partiality_rows, sigma_img, wedge_img, *, refine_wedge, wedge_start, img_run):
    """Per-image rocking width σ_i (and wedge with -w): grid search on the partials' residuals
    Σ_r w_r (I_r - G_i p_r(σ_i) lp_r exp(-2 B_i s²) Ī)², each image's curve summed with its neighbours'
    so that every window holds >= 50 partials (the smoothness restraint of the rot model)."""
    rows = full_active[row_full] & summed[row_full] & np.isfinite(target_f[row_full])
    if rows.sum() < 20:
        return sigma_img, wedge_img
    ri = img[rows]
    base = np.exp(g[ri] - 2 * B[ri] * s2_f[row_full[rows]]) * lp[rows] * target_f[row_full[rows]]
    w = 1.0 / sig[rows] ** 2
    Ir = I[rows]
    cnt = np.bincount(ri, minlength=n_img)
    per = np.median(cnt[cnt > 0]) if np.any(cnt > 0) else 1
    half = int(min(10, max(0, math.ceil(50 / max(per, 1) / 2))))

    def smooth(curves: np.ndarray) -> np.ndarray:
        if half == 0:
            return curves
        out = np.zeros_like(curves)
        for sh in range(-half, half + 1):
            src = np.roll(curves, sh, axis=0)
            same = np.roll(img_run, sh) == img_run
            if sh > 0:
                same[:sh] = False
            elif sh < 0:
                same[sh:] = False
            out += np.where(same[:, None], src, 0.0)
        return out

    row_idx = np.flatnonzero(rows)

    def search(grid_vals, make):
        curves = np.zeros((n_img, len(grid_vals)))
        for k, v in enumerate(grid_vals):
            pr = make(v, row_idx)
            curves[:, k] = np.bincount(ri, w * (Ir - pr * base) ** 2, n_img)
        curves = smooth(curves)
        k = np.argmin(curves, axis=1)
        has = curves.max(axis=1) > 0
        return k, has

    k, has = search(SIGMA_GRID, lambda s, r: partiality_rows(np.full(n_img, s), wedge_img, rows=r))
    sigma_img = np.where(has, SIGMA_GRID[k], sigma_img)
    if refine_wedge:
        ws = np.where(wedge_start > 0, wedge_start, wedge_img)
        k, has = search(WEDGE_GRID, lambda f, r: partiality_rows(sigma_img, ws * f, rows=r))
        wedge_img = np.where(has, ws * WEDGE_GRID[k], wedge_img)
    return sigma_img, wedge_img
