"""`<prefix>_iter<N>_scale.dat` (and `<prefix>_scale.dat`): per-image scaling parameters as text.

One header line starting with ``#`` names the columns; then one line per image, whitespace-separated:

    image  scale  b_factor  mosaicity  cc  accepted  run  batch  n_obs  wedge  reason

image (number in its input), scale G, b_factor (Å²), mosaicity (-P rot: refined rocking width η, degrees;
``nan`` otherwise), cc (CC of the image's scaled observations to the merged set or the reference; ``nan``
when undefined), accepted (1/0) — the columns of SPEC — then run (input index), batch (MTZ BATCH),
n_obs (full observations merged from the image), wedge (degrees; ``nan`` for stills), reason (``-`` or why
the image was rejected).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..scale.data import ImageScales
from .atomic import write_text_atomic

__all__ = ["COLUMNS", "read_scale_dat", "write_scale_dat"]

COLUMNS = ("image", "scale", "b_factor", "mosaicity", "cc", "accepted", "run", "batch", "n_obs", "wedge", "reason")


def write_scale_dat(path: str | os.PathLike, images: ImageScales, comment: str = "") -> Path:
    lines = []
    if comment:
        lines.append(f"# {comment}")
    lines.append("# " + " ".join(COLUMNS))
    for i in range(len(images)):
        lines.append(
            f"{images.image[i]:d} {images.scale[i]:.6g} {images.b_factor[i]:.4g} {images.mosaicity[i]:.5g} "
            f"{images.cc[i]:.4f} {int(bool(images.accepted[i]))} {images.run[i]:d} {images.batch[i]:d} "
            f"{images.n_obs[i]:d} {images.wedge[i]:.5g} {images.reason[i] or '-'}"
        )
    return write_text_atomic(path, "\n".join(lines) + "\n")


def read_scale_dat(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Columns of a scale.dat file (numbers as arrays, reason as str array)."""
    rows = [ln.split() for ln in Path(path).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    out: dict[str, np.ndarray] = {}
    for j, name in enumerate(COLUMNS):
        vals = [r[j] for r in rows]
        if name == "reason":
            out[name] = np.array(["" if v == "-" else v for v in vals])
        elif name in ("image", "accepted", "run", "batch", "n_obs"):
            out[name] = np.array(vals, np.int64)
        else:
            out[name] = np.array(vals, float)
    return out
