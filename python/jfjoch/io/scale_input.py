"""Inputs of `jfjoch_scale`: the documented minimal content of a `_process.h5`, or an unmerged MTZ.

From a `_process.h5` only these are read (SPEC "Minimal input of jfjoch_scale", docs/formats.md), so any
program can write a file that `jfjoch_scale` accepts:

* ``/entry/reflections/{image, h, k, l, I, sigma}`` (required) and ``x, y, d, phi, partiality, lp,
  background, flags`` (optional: 0, 0, from the cell, NaN, NaN, 1, 0, 0 when absent);
* ``/entry/sample/unit_cell`` (a, b, c in Å, α, β, γ in degrees; required);
* ``/entry/sample/space_group_number`` (optional: ``-S`` or P 1 otherwise);
* ``/entry/instrument/beam/incident_wavelength`` (Å; optional);
* the goniometer, for rotation data (needed by ``-P rot`` and ``-w``; rows are then summed as partials):
  ``/entry/sample/goniometer/{omega_start, omega_increment, omega_axis}`` (degrees), or the NXmx
  ``/entry/sample/transformations/omega`` (start angle of every image from image 0, degrees; the
  increment from ``omega_increment_set`` or the difference of the first two values; the axis from its
  ``vector`` attribute).

Any other file is tried as an MTZ (:func:`jfjoch.io.reflections.read_unmerged_mtz`).
"""

from __future__ import annotations

import os
from pathlib import Path

import gemmi
import h5py
import numpy as np

from ..errors import InputError
from ..experiment import Goniometer
from ..scale.data import ScaleInput
from ..tables import ReflectionTable

__all__ = ["read_process_h5_reflections", "read_scale_input"]

_REQUIRED = ("image", "h", "k", "l", "I", "sigma")


def read_scale_input(path: str | os.PathLike, run_id: int = 0) -> ScaleInput:
    """One `jfjoch_scale` input: a `_process.h5` (HDF5) or an unmerged MTZ, by content."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if not p.is_file():
        raise InputError(f"{p}: not a file")
    try:
        is_h5 = h5py.is_hdf5(str(p))
    except OSError:
        raise InputError(f"{p}: cannot be read") from None
    if is_h5:
        return read_process_h5_reflections(p, run_id)
    with open(p, "rb") as f:
        magic = f.read(4)
    if magic == b"MTZ ":
        from .reflections import read_unmerged_mtz

        return read_unmerged_mtz(p, run_id)
    raise InputError(f"{p}: neither a _process.h5 (HDF5) nor an MTZ file")


def read_process_h5_reflections(path: str | os.PathLike, run_id: int = 0) -> ScaleInput:
    """The minimal input of `jfjoch_scale` from a `_process.h5` (module docstring)."""
    p = Path(path)
    try:
        f = h5py.File(p, "r")
    except OSError:
        raise InputError(f"{p}: not a readable HDF5 file") from None
    with f:
        if "entry/reflections" not in f:
            raise InputError(f"{p}: no /entry/reflections (integrate first, or give an unmerged MTZ)")
        g = f["entry/reflections"]
        missing = [k for k in _REQUIRED if k not in g]
        if missing:
            raise InputError(f"{p}: /entry/reflections lacks {', '.join(missing)}")
        cols = {k: g[k][()] for k in ReflectionTable.DTYPES if k in g}
        n = len(cols["image"])
        if any(len(v) != n for v in cols.values()):
            raise InputError(f"{p}: /entry/reflections datasets have different lengths")
        if "entry/sample/unit_cell" not in f:
            raise InputError(f"{p}: no /entry/sample/unit_cell")
        cell = tuple(float(v) for v in np.ravel(f["entry/sample/unit_cell"][()]))
        if len(cell) != 6 or min(cell[:3]) <= 0 or not all(0 < a < 180 for a in cell[3:]):
            raise InputError(f"{p}: /entry/sample/unit_cell is not a valid cell: {cell}")
        sg = int(f["entry/sample/space_group_number"][()]) if "entry/sample/space_group_number" in f else None
        wl = float(f["entry/instrument/beam/incident_wavelength"][()]) \
            if "entry/instrument/beam/incident_wavelength" in f else float("nan")
        gon = _goniometer(f, p)
    if n == 0:
        raise InputError(f"{p}: empty reflection table")
    defaults = {
        "x": np.zeros(n), "y": np.zeros(n), "d": None, "phi": np.full(n, np.nan),
        "partiality": np.full(n, np.nan), "lp": np.ones(n), "background": np.zeros(n),
        "flags": np.zeros(n, np.uint32),
    }  # fmt: skip
    for k, v in defaults.items():
        if k not in cols:
            cols[k] = v
    if cols["d"] is None:
        hkl = np.stack([cols["h"], cols["k"], cols["l"]], 1).astype(np.int32)
        cols["d"] = gemmi.UnitCell(*cell).calculate_d_array(hkl)
    table = ReflectionTable(**{k: cols[k] for k in ReflectionTable.DTYPES})
    return ScaleInput(reflections=table, cell=cell, space_group=sg, wavelength=wl, goniometer=gon, run_id=run_id,
                      name=str(p))


def _goniometer(f: h5py.File, p: Path) -> Goniometer | None:
    if "entry/sample/goniometer" in f:
        g = f["entry/sample/goniometer"]
        try:
            return Goniometer(axis=np.asarray(g["omega_axis"][()], float), start_deg=float(g["omega_start"][()]),
                              increment_deg=float(g["omega_increment"][()]))
        except KeyError as e:
            raise InputError(f"{p}: /entry/sample/goniometer lacks {e.args[0] if e.args else 'a dataset'}") from None
    if "entry/sample/transformations/omega" in f:
        d = f["entry/sample/transformations/omega"]
        om = np.ravel(d[()]).astype(float)
        axis = np.asarray(d.attrs.get("vector", (1.0, 0.0, 0.0)), float)
        t = f["entry/sample/transformations"]
        if "omega_increment_set" in t:
            inc = float(np.ravel(t["omega_increment_set"][()])[0])
        elif len(om) >= 2:
            inc = float(om[1] - om[0])
        else:
            return None
        if inc == 0 or not len(om):
            return None
        return Goniometer(axis=axis, start_deg=float(om[0]), increment_deg=inc)
    return None
