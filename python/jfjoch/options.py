"""Processing options shared by the command line and the Python API (one source, so they cannot drift).

Defaults follow the reference `jfjoch_process` page (shared/seed/JFJOCH_PROCESS.md) and SPEC.md.
Every value is validated by :meth:`ProcessOptions.validate`, which raises :class:`~jfjoch.errors.UsageError`
with a one-line message.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

from .errors import UsageError

__all__ = ["INDEXING_ALGORITHMS", "ProcessOptions", "parse_cell", "parse_lattice"]

INDEXING_ALGORITHMS = ("auto", "ffbidx", "fft", "fftw", "none")


@dataclass(frozen=True)
class ProcessOptions:
    """Options of `jfjoch_process` / :func:`jfjoch.process`."""

    # general
    output_prefix: str = "output"
    threads: int = 1
    start_image: int = 0
    end_image: int | None = None
    """Last image to process (inclusive); None = the last image of the file."""
    stride: int = 1
    verbose: bool = False
    # spot finding
    spot_sigma: float = 3.0
    spot_threshold: float = 10.0
    """Photon-count threshold for a strong pixel."""
    spot_high_resolution: float = 1.5
    """High-resolution limit for spots, Å."""
    max_spots: int = 250
    # indexing
    indexing_algorithm: str = "auto"
    unit_cell: tuple[float, float, float, float, float, float] | None = None
    """Reference cell (a, b, c in Å; α, β, γ in degrees)."""
    space_group: int | None = None
    two_pass_rotation: int | None = None
    """-R[=N]: index the pooled spots of the first N images (None = off)."""
    single_pass_rotation: float | None = None
    """--single-pass-rotation[=deg]: index once the spots span this many degrees (None = off)."""
    redo_rotation_spots: bool = False
    force_rotation_lattice: tuple[float, ...] | None = None
    """9 floats: real-space a, b, c (Å) in the lab frame at omega = 0."""

    def validate(self) -> ProcessOptions:
        """Check every value; returns self with words normalised (lower case)."""
        o = replace(self, indexing_algorithm=str(self.indexing_algorithm).lower())
        if not o.output_prefix:
            raise UsageError("--output-prefix must not be empty")
        _int_range("--threads", o.threads, 1, 1024)
        _int_range("--start-image", o.start_image, 0, None)
        if o.end_image is not None:
            _int_range("--end-image", o.end_image, 0, None)
            if o.end_image < o.start_image:
                raise UsageError(f"--end-image {o.end_image} is before --start-image {o.start_image}")
        _int_range("--stride", o.stride, 1, None)
        _float_range("--spot-sigma", o.spot_sigma, 0.0, None, open_low=True)
        _float_range("--spot-threshold", o.spot_threshold, 0.0, None)
        _float_range("--spot-high-resolution", o.spot_high_resolution, 0.0, None, open_low=True)
        _int_range("--max-spots", o.max_spots, 1, 100000)
        if o.indexing_algorithm not in INDEXING_ALGORITHMS:
            raise UsageError(
                f"--indexing-algorithm must be one of {', '.join(INDEXING_ALGORITHMS)} "
                f"(got {self.indexing_algorithm!r})"
            )
        if o.unit_cell is not None:
            parse_cell(o.unit_cell)
        if o.indexing_algorithm == "ffbidx" and o.unit_cell is None:
            raise UsageError("-X ffbidx needs a unit cell (-C a,b,c,alpha,beta,gamma)")
        if o.space_group is not None:
            _int_range("--space-group", o.space_group, 1, 230)
        if o.two_pass_rotation is not None:
            _int_range("--two-pass-rotation", o.two_pass_rotation, 1, None)
        if o.single_pass_rotation is not None:
            _float_range("--single-pass-rotation", o.single_pass_rotation, 0.0, 360.0, open_low=True)
        if o.two_pass_rotation is not None and o.single_pass_rotation is not None:
            raise UsageError("--two-pass-rotation and --single-pass-rotation exclude each other")
        if o.force_rotation_lattice is not None:
            parse_lattice(o.force_rotation_lattice)
        return o

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _int_range(name: str, v, lo: int | None, hi: int | None) -> None:
    if isinstance(v, bool) or not isinstance(v, int):
        raise UsageError(f"{name} must be an integer (got {v!r})")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"between {lo} and {hi}"
        raise UsageError(f"{name} must be {rng} (got {v})")


def _float_range(name: str, v, lo: float | None, hi: float | None, open_low: bool = False) -> None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be a number (got {v!r})") from None
    if not math.isfinite(x):
        raise UsageError(f"{name} must be finite (got {v!r})")
    if lo is not None and (x < lo or (open_low and x == lo)):
        raise UsageError(f"{name} must be {'>' if open_low else '>='} {lo} (got {v})")
    if hi is not None and x > hi:
        raise UsageError(f"{name} must be <= {hi} (got {v})")


def _floats(text: str | Sequence[float], n: int, name: str) -> tuple[float, ...]:
    if isinstance(text, str):
        parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p]
    else:
        parts = list(text)
    try:
        vals = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        raise UsageError(f"{name}: expected {n} numbers separated by commas (got {text!r})") from None
    if len(vals) != n or not all(math.isfinite(v) for v in vals):
        raise UsageError(f"{name}: expected {n} finite numbers (got {len(vals)})")
    return vals


def parse_cell(text: str | Sequence[float]) -> tuple[float, float, float, float, float, float]:
    """Parse "a,b,c,alpha,beta,gamma" (Å, degrees) and check it is a valid cell."""
    a, b, c, al, be, ga = _floats(text, 6, "--unit-cell")
    if min(a, b, c) <= 0:
        raise UsageError("--unit-cell: a, b and c must be positive (Å)")
    if not all(0 < x < 180 for x in (al, be, ga)):
        raise UsageError("--unit-cell: angles must be between 0 and 180 degrees")
    ca, cb, cg = (math.cos(math.radians(x)) for x in (al, be, ga))
    if 1 - ca * ca - cb * cb - cg * cg + 2 * ca * cb * cg <= 0:
        raise UsageError("--unit-cell: these angles do not form a cell")
    return a, b, c, al, be, ga


def parse_lattice(text: str | Sequence[float]) -> tuple[float, ...]:
    """Parse 9 floats: real-space vectors a, b, c (Å); they must not be coplanar."""
    v = _floats(text, 9, "--force-rotation-lattice")
    a, b, c = v[0:3], v[3:6], v[6:9]
    det = (
        a[0] * (b[1] * c[2] - b[2] * c[1]) - a[1] * (b[0] * c[2] - b[2] * c[0]) + a[2] * (b[0] * c[1] - b[1] * c[0])
    )
    if abs(det) < 1.0:
        raise UsageError("--force-rotation-lattice: the vectors a, b, c are coplanar")
    return v
