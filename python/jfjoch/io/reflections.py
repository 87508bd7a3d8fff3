"""Reflection files via gemmi: merged/unmerged MTZ, mmCIF (``_refln`` / ``_diffrn_refln``), SHELX HKLF 4;
reading unmerged MTZ files as scaling input and reference MTZ files (``-z``). Formats: docs/formats.md.

Every writer writes atomically (temporary name in the destination directory, then a rename).
"""

from __future__ import annotations

import os
from pathlib import Path

import gemmi
import numpy as np

from ..errors import InputError
from ..scale.data import ScaleInput, ScaleResult
from ..scale.symmetry import Symmetry
from ..tables import ReflectionTable
from .atomic import atomic_path, write_text_atomic

__all__ = [
    "UNMERGED_INTENSITY_COLUMNS",
    "read_reference_mtz",
    "read_unmerged_mtz",
    "unmerged_mtz_statistics",
    "write_merged_cif",
    "write_merged_mtz",
    "write_shelx_hkl",
    "write_unmerged_cif",
    "write_unmerged_mtz",
]

UNMERGED_INTENSITY_COLUMNS = (("IPR", "SIGIPR"), ("I", "SIGI"))
"""Intensity columns of an unmerged MTZ input, in order of preference: DIALS' profile-fitted IPR, then I
(summation in DIALS files, the only one in AIMLESS/XDS-converted files); else the first J column with the
Q column after it."""

REFERENCE_INTENSITY_COLUMNS = ("IMEAN", "I", "I-obs", "IOBS", "I_mean")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jfjoch")
    except PackageNotFoundError:
        return "0.0.0+source"


def _read_mtz(path: str | os.PathLike) -> gemmi.Mtz:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    try:
        return gemmi.read_mtz_file(str(p))
    except (RuntimeError, ValueError, OSError) as e:
        why = str(e).splitlines()[0] if str(e) else "bad header"
        raise InputError(f"{p}: not a readable MTZ file ({why})") from None


def _labels(mtz: gemmi.Mtz) -> list[str]:
    return [c.label for c in mtz.columns]


def _wavelength(mtz: gemmi.Mtz) -> float:
    for ds in mtz.datasets:
        if ds.wavelength and ds.wavelength > 0:
            return float(ds.wavelength)
    for b in mtz.batches:
        if b.wavelength and b.wavelength > 0:
            return float(b.wavelength)
    return float("nan")


def read_unmerged_mtz(path: str | os.PathLike, run_id: int = 0) -> ScaleInput:
    """An unmerged MTZ (H K L M/ISYM BATCH I SIGI, as AIMLESS/XDS/DIALS write it) as one run.

    Intensities: :data:`UNMERGED_INTENSITY_COLUMNS`. Indices: the original ones (M/ISYM applied). Image =
    BATCH - 1; consecutive batches are consecutive images of one sweep. Partiality: FRACTIONCALC when
    present, else 1; lp = 1 (the intensities of these programs are already Lorentz-polarisation
    corrected); phi from ROT, x/y from XDET/YDET, background from BG when present. The rows are full
    observations (never summed).
    """
    p = Path(path)
    mtz = _read_mtz(p)
    labels = _labels(mtz)
    if "BATCH" not in labels:
        raise InputError(f"{p}: not an unmerged MTZ (no BATCH column)")
    pair = next(((i, s) for i, s in UNMERGED_INTENSITY_COLUMNS if i in labels and s in labels), None)
    if pair is None:
        js = [c.label for c in mtz.columns if c.type == "J"]
        for j in js:
            k = labels.index(j)
            if k + 1 < len(labels) and mtz.columns[k + 1].type == "Q":
                pair = (j, labels[k + 1])
                break
    if pair is None:
        raise InputError(f"{p}: no intensity column (I/SIGI, IPR/SIGIPR or a J column followed by Q)")
    if mtz.nreflections == 0:
        raise InputError(f"{p}: empty reflection table")
    if "M/ISYM" in labels:
        mtz.switch_to_original_hkl()
    a = np.array(mtz, copy=False)

    def col(name, default=None):
        if name in labels:
            return a[:, labels.index(name)].astype(np.float64)
        return np.full(len(a), default, np.float64)

    n = len(a)
    batch = np.rint(col("BATCH")).astype(np.int64)
    table = ReflectionTable(
        image=batch - 1,
        h=np.rint(a[:, 0]).astype(np.int32), k=np.rint(a[:, 1]).astype(np.int32), l=np.rint(a[:, 2]).astype(np.int32),
        I=col(pair[0]), sigma=col(pair[1]),
        x=col("XDET", 0.0), y=col("YDET", 0.0), d=np.zeros(n), phi=col("ROT", np.nan),
        partiality=col("FRACTIONCALC", 1.0), lp=np.ones(n), background=col("BG", 0.0),
        flags=np.zeros(n, np.uint32),
    )  # fmt: skip
    uc = mtz.cell
    table = ReflectionTable(**{**table.columns(), "d": uc.calculate_d_array(table.hkl.astype(np.int32))})
    return ScaleInput(
        reflections=table.sorted(), cell=tuple(uc.parameters), space_group=int(mtz.spacegroup.number),
        wavelength=_wavelength(mtz), goniometer=None, run_id=run_id, name=str(p), full_observations=True,
    )


def read_reference_mtz(path: str | os.PathLike):
    """Reference intensities for ``-z``: IMEAN (or I, I-obs, ...), or the mean of I(+)/I(-) (K columns).

    Raises InputError (one line) when the file has no intensities (amplitudes alone are not accepted).
    """
    from ..scale.engine import ReferenceData

    p = Path(path)
    mtz = _read_mtz(p)
    labels = _labels(mtz)
    types = {c.label: c.type for c in mtz.columns}
    a = np.array(mtz, copy=False)
    hkl = np.rint(a[:, :3]).astype(np.int64)
    vals = None
    for name in REFERENCE_INTENSITY_COLUMNS:
        if name in labels and types[name] == "J":
            vals = a[:, labels.index(name)].astype(float)
            break
    if vals is None:
        js = [c.label for c in mtz.columns if c.type == "J"]
        if js:
            vals = a[:, labels.index(js[0])].astype(float)
    if vals is None:
        ks = [c.label for c in mtz.columns if c.type == "K"]
        plus = next((k for k in ks if "+" in k), None)
        minus = next((k for k in ks if "-" in k and k != plus), None)
        if plus and minus:
            ip, im = a[:, labels.index(plus)], a[:, labels.index(minus)]
            vals = np.where(np.isfinite(ip) & np.isfinite(im), 0.5 * (ip + im), np.where(np.isfinite(ip), ip, im))
    if vals is None:
        raise InputError(f"{p}: reference MTZ has no intensities (needs IMEAN, I, or I(+)/I(-); has "
                         f"{', '.join(labels[3:8])}{'...' if len(labels) > 8 else ''})")
    ok = np.isfinite(vals)
    if not ok.any():
        raise InputError(f"{p}: reference MTZ has no intensity values")
    if "M/ISYM" in labels:
        mtz.switch_to_original_hkl()
        hkl = np.rint(np.array(mtz, copy=False)[:, :3]).astype(np.int64)
    return ReferenceData(hkl[ok], vals[ok], tuple(mtz.cell.parameters), int(mtz.spacegroup.number), path=str(p))


# --------------------------------------------------------------------------------------------- writing
def _new_mtz(result: ScaleResult, title: str) -> gemmi.Mtz:
    mtz = gemmi.Mtz(with_base=True)
    mtz.title = title
    mtz.spacegroup = gemmi.find_spacegroup_by_number(result.space_group_number)
    mtz.cell = gemmi.UnitCell(*result.cell)
    ds = mtz.add_dataset("jfjoch")
    ds.project_name = "jfjoch"
    ds.crystal_name = "crystal"
    ds.dataset_name = "scaled"
    ds.wavelength = float(result.wavelength) if np.isfinite(result.wavelength) else 0.0
    mtz.history = [f"jfjoch {_version()} scaling and merging", f"space group {result.space_group_name}"]
    return mtz


def write_merged_mtz(path: str | os.PathLike, result: ScaleResult, anomalous: bool | None = None) -> Path:
    """H K L IMEAN SIGIMEAN (with -A also I(+) SIGI(+) I(-) SIGI(-), NaN = missing)."""
    m = result.merged
    anomalous = result.anomalous if anomalous is None else anomalous
    mtz = _new_mtz(result, "jfjoch merged intensities")
    mtz.add_column("IMEAN", "J")
    mtz.add_column("SIGIMEAN", "Q")
    cols = [m.hkl[:, 0], m.hkl[:, 1], m.hkl[:, 2], m.I, m.sigma]
    if anomalous and m.i_plus is not None:
        for lab, t in (("I(+)", "K"), ("SIGI(+)", "M"), ("I(-)", "K"), ("SIGI(-)", "M")):
            mtz.add_column(lab, t)
        cols += [m.i_plus, m.sig_plus, m.i_minus, m.sig_minus]
    data = np.stack([np.asarray(c, np.float32) for c in cols], 1)
    order = np.lexsort((data[:, 2], data[:, 1], data[:, 0]))
    mtz.set_data(np.ascontiguousarray(data[order]))
    mtz.update_reso()
    with atomic_path(path) as tmp:
        mtz.write_to_file(str(tmp))
    return Path(path)


def _unmerged_mtz(result: ScaleResult, original: bool = False) -> gemmi.Mtz:
    """The unmerged MTZ; ``original``: H K L are the original indices (and M/ISYM 1) instead of the ASU."""
    o = result.observations
    mtz = _new_mtz(result, "jfjoch scaled unmerged intensities")
    for lab, t in (("M/ISYM", "Y"), ("BATCH", "B"), ("I", "J"), ("SIGI", "Q"), ("FRACTIONCALC", "R")):
        mtz.add_column(lab, t)
    h = o.hkl if original else o.asu
    isym = np.ones(len(o.isym)) if original else o.isym
    data = np.stack([h[:, 0], h[:, 1], h[:, 2], isym, o.batch, o.I, o.sigma, o.fraction], 1).astype(np.float32)
    order = np.lexsort((data[:, 4], data[:, 2], data[:, 1], data[:, 0]))
    mtz.set_data(np.ascontiguousarray(data[order]))
    mtz.sort_order = [1, 2, 3, 4, 5]
    uc = gemmi.UnitCell(*result.cell)
    wl = float(result.wavelength) if np.isfinite(result.wavelength) else 0.0
    im = result.images
    batches = np.unique(o.batch)
    run_of_batch = dict(zip(im.batch.tolist(), im.run.tolist()))
    img_of_batch = dict(zip(im.batch.tolist(), im.image.tolist()))
    runs = {r.run_id: r for r in result.runs}
    for b in batches.tolist():
        bt = gemmi.Mtz.Batch()
        run_id = run_of_batch.get(b, 0)
        image = img_of_batch.get(b, b - 1)
        bt.number = int(b)
        bt.title = f"run {run_id} image {image}"
        bt.cell = uc
        bt.wavelength = wl
        bt.dataset_id = 1
        # CCP4 orientation block: NCRYST (ints[12]), LDTYPE (ints[14]: 2 = rotation, 1 = still), NGONAX,
        # NDET; PHISTT/PHIEND (floats[36:38]), SCANAX (floats[38:41]), PHIRANGE (floats[47])
        ints, floats = bt.ints, bt.floats
        run = runs.get(run_id)
        gon = run.goniometer if run is not None else None
        ints[12] = int(run_id) + 1
        ints[14] = 2 if gon is not None else 1
        ints[17] = 1
        ints[19] = 1
        if gon is not None:
            start = gon.start_deg + image * gon.increment_deg
            floats[36], floats[37] = start, start + gon.increment_deg
            for k, v in enumerate(np.asarray(gon.axis, float)[:3]):
                floats[38 + k] = float(v)
            floats[47] = gon.increment_deg
        mtz.batches.append(bt)
    mtz.update_reso()
    return mtz


def write_unmerged_mtz(path: str | os.PathLike, result: ScaleResult) -> Path:
    """Scaled unmerged observations: H K L (ASU) M/ISYM BATCH I SIGI FRACTIONCALC, one batch header per
    image (BATCH = image + 1 + the run's offset, 10000 per input)."""
    mtz = _unmerged_mtz(result)
    with atomic_path(path) as tmp:
        mtz.write_to_file(str(tmp))
    return Path(path)


def _cif_text(mtz: gemmi.Mtz, block: str) -> str:
    conv = gemmi.MtzToCif()
    conv.with_comments = False
    text = conv.write_cif_to_string(mtz)
    return text.replace("data_mtz", f"data_{block}", 1)


def write_merged_cif(path: str | os.PathLike, result: ScaleResult) -> Path:
    """mmCIF ``_refln`` (gemmi mtz2cif of the merged MTZ: intensity_meas, intensity_sigma [, anomalous])."""
    m = result.merged
    mtz = _new_mtz(result, "jfjoch merged intensities")
    mtz.add_column("IMEAN", "J")
    mtz.add_column("SIGIMEAN", "Q")
    cols = [m.hkl[:, 0], m.hkl[:, 1], m.hkl[:, 2], m.I, m.sigma]
    if result.anomalous and m.i_plus is not None:
        for lab, t in (("I(+)", "K"), ("SIGI(+)", "M"), ("I(-)", "K"), ("SIGI(-)", "M")):
            mtz.add_column(lab, t)
        cols += [m.i_plus, m.sig_plus, m.i_minus, m.sig_minus]
    mtz.set_data(np.ascontiguousarray(np.stack([np.asarray(c, np.float32) for c in cols], 1)))
    return write_text_atomic(path, _cif_text(mtz, "jfjoch_merged"))


def write_unmerged_cif(path: str | os.PathLike, result: ScaleResult) -> Path:
    """mmCIF ``_diffrn_refln`` (original indices, scaled intensity_net/intensity_sigma, image id = BATCH)."""
    return write_text_atomic(path, _cif_text(_unmerged_mtz(result, original=True), "jfjoch_unmerged"))


def write_shelx_hkl(path: str | os.PathLike, result: ScaleResult) -> tuple[Path, float]:
    """SHELX HKLF 4 (``3I4,2F8.2``) of the merged intensities; returns (path, scale factor applied).

    Intensities are scaled so the largest |I| fits F8.2 (< 99999); with -A the Friedel mates are
    separate lines (h k l and -h -k -l). Ends with the 0 0 0 line.
    """
    m = result.merged
    if result.anomalous and m.i_plus is not None:
        hkl = np.concatenate([m.hkl, -m.hkl[~m.centric]])
        I = np.concatenate([m.i_plus, m.i_minus[~m.centric]])
        s = np.concatenate([m.sig_plus, m.sig_minus[~m.centric]])
    else:
        hkl, I, s = m.hkl, m.I, m.sigma
    ok = np.isfinite(I) & np.isfinite(s)
    hkl, I, s = hkl[ok], I[ok], s[ok]
    big = float(max(np.max(np.abs(I), initial=0.0), np.max(s, initial=0.0)))
    scale = 1.0 if big < 99999.0 else 99999.0 / big
    if np.max(np.abs(hkl), initial=0) > 999:
        raise InputError("Miller indices beyond 999 cannot be written in SHELX format")
    lines = [f"{h:4d}{k:4d}{l:4d}{i * scale:8.2f}{sg * scale:8.2f}"
             for (h, k, l), i, sg in zip(hkl.tolist(), I.tolist(), s.tolist())]
    lines.append(f"{0:4d}{0:4d}{0:4d}{0.0:8.2f}{0.0:8.2f}")
    return write_text_atomic(path, "\n".join(lines) + "\n"), scale


def check_sym_roundtrip(result: ScaleResult) -> bool:
    """The unmerged observations' ASU index and ISYM give back their original indices (self-check)."""
    sym = Symmetry(result.space_group_number)
    o = result.observations
    return bool(np.array_equal(sym.from_asu(o.asu, o.isym), o.hkl))


def unmerged_mtz_statistics(path: str | os.PathLike, label: str | None = None, n_shells: int = 10,
                            space_group: int | None = None, seed: int = 0):
    """(shells, overall) merging statistics of an unmerged MTZ as it stands (no scaling): the figures
    `jfjoch_scale` prints, computed from a file; ``label`` the intensity column (default: as
    :func:`read_unmerged_mtz`). Systematic absences and σ <= 0 are left out, as cctbx does."""
    from ..scale.stats import merging_statistics
    from ..scale.symmetry import pack

    p = Path(path)
    mtz = _read_mtz(p)
    labels = _labels(mtz)
    if label is None:
        pair = next(((i, s) for i, s in UNMERGED_INTENSITY_COLUMNS if i in labels and s in labels), None)
        if pair is None:
            raise InputError(f"{p}: no intensity column")
    else:
        k = labels.index(label)
        pair = (label, labels[k + 1])
    if "M/ISYM" in labels:
        mtz.switch_to_original_hkl()
    a = np.array(mtz, copy=False)
    hkl = np.rint(a[:, :3]).astype(np.int64)
    x = a[:, labels.index(pair[0])].astype(float)
    sx = a[:, labels.index(pair[1])].astype(float)
    sym = Symmetry(space_group or mtz.spacegroup.number)
    ok = np.isfinite(x) & np.isfinite(sx) & (sx > 0) & ~sym.absent(hkl)
    hkl, x, sx = hkl[ok], x[ok], sx[ok]
    asu, _ = sym.to_asu(hkl)
    uk, first, ref = np.unique(pack(asu), return_index=True, return_inverse=True)
    uc = mtz.cell
    d = uc.calculate_d_array(asu[first].astype(np.int32))
    possible = sym.possible(uc, float(d.min()) * (1 - 1e-6))
    shells, overall, _ = merging_statistics(ref, x, sx, 1.0 / d**2, 1.0 / uc.calculate_d_array(possible) ** 2,
                                            n_shells=n_shells, seed=seed)
    return shells, overall
