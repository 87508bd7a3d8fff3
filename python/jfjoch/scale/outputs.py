"""Files of a scaling run: :func:`write_scale_outputs` (every file written atomically)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..io.atomic import write_text_atomic
from ..io.reflections import (
    write_merged_cif,
    write_merged_mtz,
    write_shelx_hkl,
    write_unmerged_cif,
    write_unmerged_mtz,
)
from ..io.scale_dat import write_scale_dat
from .data import ScaleResult
from .report import render_report

__all__ = ["output_paths", "write_scale_outputs"]


def output_paths(prefix: str | os.PathLike, options) -> dict[str, Path]:
    """The files a run with these options writes, by role."""
    p = str(prefix)
    fmt = getattr(options, "scaling_output", "mtz")
    out = {
        "merged": Path(p + {"mtz": ".mtz", "cif": ".cif", "txt": ".hkl"}[fmt]),
        "unmerged": Path(p + "_unmerged.mtz"),
        "stats": Path(p + "_merging_stats.json"),
        "report": Path(p + "_report.html"),
    }
    if fmt == "cif":
        out["unmerged_cif"] = Path(p + "_unmerged.cif")
    return out


def write_scale_outputs(result: ScaleResult, prefix: str | os.PathLike, options=None) -> list[Path]:
    """Write the merged file (``--scaling-output``: ``<prefix>.mtz``, ``.cif`` or ``.hkl``),
    ``<prefix>_unmerged.mtz`` (and ``_unmerged.cif`` with cif), ``<prefix>_merging_stats.json``,
    ``<prefix>_report.html`` and, without a reference, ``<prefix>_iter<N>_scale.dat`` per round.
    Returns the paths written; each file appears complete or not at all."""
    options = options if options is not None else result.options
    paths = output_paths(prefix, options)
    written: list[Path] = []
    fmt = getattr(options, "scaling_output", "mtz")
    if fmt == "mtz":
        written.append(write_merged_mtz(paths["merged"], result))
    elif fmt == "cif":
        written.append(write_merged_cif(paths["merged"], result))
        written.append(write_unmerged_cif(paths["unmerged_cif"], result))
    else:
        path, scale = write_shelx_hkl(paths["merged"], result)
        if scale != 1.0:
            result.notes.append(f"{path.name}: intensities multiplied by {scale:.4g} to fit the SHELX format")
        written.append(path)
    written.append(write_unmerged_mtz(paths["unmerged"], result))
    for n, it in enumerate(result.iterations, start=1):
        written.append(write_scale_dat(f"{prefix}_iter{n}_scale.dat", it, comment=f"scaling round {n}"))
    written.append(write_text_atomic(paths["stats"], json.dumps(result.merging_stats_dict(), indent=1) + "\n"))
    written.append(write_text_atomic(paths["report"], render_report(result)))
    result.output_files = [str(p) for p in written]
    return written
