"""Read |F|² of a structure model or a reflection file (gemmi): input of the simulator."""

from __future__ import annotations

from pathlib import Path

import gemmi
import numpy as np

from ..errors import InputError

__all__ = ["MTZ_INTENSITY_COLUMNS", "read_model_intensities"]

MTZ_INTENSITY_COLUMNS = ("I", "IMEAN", "I-obs", "FC", "F-model", "FP", "F", "F-obs")
"""MTZ columns tried in this order; amplitude columns (type F) are squared."""


def read_model_intensities(
    path: str | Path, d_min: float
) -> tuple[np.ndarray, np.ndarray, gemmi.SpaceGroup | None]:
    """(hkl (n, 3) int32, |F|² (n,), space group or None) from a PDB/mmCIF model or an MTZ file.

    PDB/mmCIF: structure factors of the atomic model, gemmi DensityCalculatorX + FFT to ``d_min`` (Å),
    asymmetric unit of the model's space group. MTZ: the first column of MTZ_INTENSITY_COLUMNS present.
    Raises InputError (one line) when the file is missing, unreadable or has no usable column.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"model file not found: {path}")
    try:
        if path.suffix.lower() == ".mtz":
            mtz = gemmi.read_mtz_file(str(path))
            col = None
            for name in MTZ_INTENSITY_COLUMNS:
                col = mtz.column_with_label(name)
                if col is not None:
                    break
            if col is None:
                raise InputError(
                    f"{path}: no intensity or amplitude column ({', '.join(MTZ_INTENSITY_COLUMNS)})"
                )
            data = np.array(mtz, copy=False)
            hkl = data[:, :3].astype(np.int32)
            vals = data[:, col.idx].astype(float)
            ok = np.isfinite(vals)
            hkl, vals = hkl[ok], vals[ok]
            if col.type == "F":
                vals = vals**2
            return hkl, vals, mtz.spacegroup
        st = gemmi.read_structure(str(path))
        st.setup_entities()
        if len(st) == 0:
            raise InputError(f"{path}: no model")
        dc = gemmi.DensityCalculatorX()
        dc.d_min = d_min
        dc.grid.setup_from(st)
        dc.put_model_density_on_grid(st[0])
        asu = gemmi.transform_map_to_f_phi(dc.grid).prepare_asu_data(dmin=d_min)
        hkl = np.asarray(asu.miller_array, np.int32)
        vals = np.abs(np.asarray(asu.value_array)) ** 2
        return hkl, vals, st.find_spacegroup()
    except InputError:
        raise
    except (RuntimeError, ValueError, OSError) as e:
        raise InputError(f"cannot read model {path}: {e}") from None
