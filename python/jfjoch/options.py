"""Processing options, declared once and shared by `jfjoch_process`, `jfjoch_scale` and the Python API.

Each option is one dataclass field in one group (:class:`RunOptions`, :class:`ImageOptions`,
:class:`SpotOptions`, :class:`IndexingOptions`, :class:`SymmetryOptions`, :class:`IntegrationOptions`,
:class:`ScalingOptions`). The field's metadata holds its command-line names, help text, help panel, parser
and checks; :mod:`jfjoch.cli.options` turns them into click options, so the CLI, the API and the defaults
cannot drift apart. :class:`ProcessOptions` and :class:`ScaleOptions` are the groups composed by
inheritance, so every option is a flat attribute (``opts.threads``) and a flat keyword
(``jfjoch.process(path, threads=2)``).

Defaults follow the reference `jfjoch_process` page (shared/seed/JFJOCH_PROCESS.md) and SPEC.md.
:meth:`Options.validate` parses every value (command-line strings, numpy scalars, sequences), checks it
and returns a new instance with normalised values; any bad value raises
:class:`~jfjoch.errors.UsageError` with a one-line message that names the option.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import UsageError

__all__ = [
    "INDEXING_ALGORITHMS",
    "INTEGRATION_METHODS",
    "PARTIALITY_MODELS",
    "REFINE_MODES",
    "SCALING_OUTPUTS",
    "ClusterOptions",
    "ImageOptions",
    "IndexingOptions",
    "IntegrationOptions",
    "Options",
    "ProcessOptions",
    "RunOptions",
    "ScaleOptions",
    "ScalingOptions",
    "SpotOptions",
    "SymmetryOptions",
    "option_fields",
    "parse_cell",
    "parse_lattice",
    "parse_radii",
]

INDEXING_ALGORITHMS = ("auto", "ffbidx", "fft", "fftw", "none")
REFINE_MODES = ("none", "orientation", "beam_and_lattice", "pixelrefine")
INTEGRATION_METHODS = ("auto", "sum", "profile", "none")
PARTIALITY_MODELS = ("fixed", "rot", "unity")
SCALING_OUTPUTS = ("mtz", "cif", "txt")


# ------------------------------------------------------------------------------------------- parsers
def _name(meta: dict, fname: str) -> str:
    decls = meta.get("decls") or ()
    longs = [d for d in decls if d.startswith("--")]
    return longs[0] if longs else f"{fname}"


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def to_int(name: str, v: Any) -> int:
    """An integer from an int, a numpy integer, an integral float or a decimal string."""
    if _is_int(v):
        return int(v)
    if isinstance(v, str):
        s = v.strip()
        try:
            return int(s)
        except ValueError:
            pass
    if isinstance(v, numbers.Real) and not isinstance(v, bool) and float(v).is_integer():
        return int(v)
    raise UsageError(f"{name} must be an integer (got {v!r})")


def to_float(name: str, v: Any) -> float:
    """A finite float from a number, a numpy scalar or a string."""
    if isinstance(v, bool):
        raise UsageError(f"{name} must be a number (got {v!r})")
    try:
        x = float(v.strip() if isinstance(v, str) else v)
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be a number (got {v!r})") from None
    if not math.isfinite(x):
        raise UsageError(f"{name} must be finite (got {v!r})")
    return x


def to_bool(name: str, v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if _is_int(v) and int(v) in (0, 1):
        return bool(v)
    if hasattr(v, "dtype") and getattr(v.dtype, "kind", "") == "b":
        return bool(v)
    raise UsageError(f"{name} must be true or false (got {v!r})")


def to_text(name: str, v: Any) -> str:
    if isinstance(v, Path):
        return str(v)
    if not isinstance(v, str):
        raise UsageError(f"{name} must be text (got {v!r})")
    return v


def int_range(lo: int | None = None, hi: int | None = None) -> Callable[[str, Any], int]:
    def parse(name: str, v: Any) -> int:
        x = to_int(name, v)
        if (lo is not None and x < lo) or (hi is not None and x > hi):
            rng = f">= {lo}" if hi is None else f"between {lo} and {hi}"
            raise UsageError(f"{name} must be {rng} (got {x})")
        return x

    return parse


def float_range(lo: float | None = None, hi: float | None = None, open_low: bool = False) -> Callable:
    def parse(name: str, v: Any) -> float:
        x = to_float(name, v)
        if lo is not None and (x < lo or (open_low and x == lo)):
            raise UsageError(f"{name} must be {'>' if open_low else '>='} {lo:g} (got {v})")
        if hi is not None and x > hi:
            raise UsageError(f"{name} must be <= {hi:g} (got {v})")
        return x

    return parse


def choice(words: Sequence[str]) -> Callable[[str, Any], str]:
    def parse(name: str, v: Any) -> str:
        if not isinstance(v, str):
            raise UsageError(f"{name} must be one of {', '.join(words)} (got {v!r})")
        w = v.strip().lower()
        if w not in words:
            raise UsageError(f"{name} must be one of {', '.join(words)} (got {v!r})")
        return w

    return parse


def _floats(text: str | Sequence[float], n: int, name: str) -> tuple[float, ...]:
    if isinstance(text, str):
        parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p]
    else:
        try:
            parts = list(text)
        except TypeError:
            raise UsageError(f"{name}: expected {n} numbers separated by commas (got {text!r})") from None
    try:
        vals = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        raise UsageError(f"{name}: expected {n} numbers separated by commas (got {text!r})") from None
    if len(vals) != n:
        raise UsageError(f"{name}: expected {n} numbers (got {len(vals)})")
    if not all(math.isfinite(v) for v in vals):
        raise UsageError(f"{name}: expected {n} finite numbers (got {', '.join(f'{v:g}' for v in vals)})")
    return vals


def parse_cell(
    text: str | Sequence[float], name: str = "--unit-cell"
) -> tuple[float, float, float, float, float, float]:
    """Parse "a,b,c,alpha,beta,gamma" (Å, degrees) and check it is a valid cell."""
    a, b, c, al, be, ga = _floats(text, 6, name)
    if min(a, b, c) <= 0:
        raise UsageError(f"{name}: a, b and c must be positive (Å)")
    if not all(0 < x < 180 for x in (al, be, ga)):
        raise UsageError(f"{name}: angles must be between 0 and 180 degrees")
    ca, cb, cg = (math.cos(math.radians(x)) for x in (al, be, ga))
    if 1 - ca * ca - cb * cb - cg * cg + 2 * ca * cb * cg <= 0:
        raise UsageError(f"{name}: these angles do not form a cell")
    return a, b, c, al, be, ga


def parse_lattice(text: str | Sequence[float], name: str = "--force-rotation-lattice") -> tuple[float, ...]:
    """Parse 9 floats: real-space vectors a, b, c (Å); they must not be coplanar."""
    v = _floats(text, 9, name)
    a, b, c = v[0:3], v[3:6], v[6:9]
    det = a[0] * (b[1] * c[2] - b[2] * c[1]) - a[1] * (b[0] * c[2] - b[2] * c[0]) + a[2] * (b[0] * c[1] - b[1] * c[0])
    if abs(det) < 1.0:
        raise UsageError(f"{name}: the vectors a, b, c are coplanar")
    return v


def parse_radii(text: str | float | Sequence[float], name: str = "--integration-radius") -> tuple[float, float, float]:
    """``r1`` or ``r1,r2,r3`` (pixels): one value means r2 = r1 + 2, r3 = r1 + 4; needs 0 < r1 < r2 < r3."""
    if isinstance(text, numbers.Real) and not isinstance(text, bool):
        vals: tuple[float, ...] = (float(text),)
    elif isinstance(text, str) and "," not in text and " " not in text.strip():
        vals = (to_float(name, text),)
    else:
        try:
            vals = _floats(text, 3, name)
        except UsageError:
            raise UsageError(f"{name}: expected r1 or r1,r2,r3 in pixels (got {text!r})") from None
    if len(vals) == 1:
        vals = (vals[0], vals[0] + 2.0, vals[0] + 4.0)
    r1, r2, r3 = vals
    if not all(math.isfinite(v) for v in vals) or not 0 < r1 < r2 < r3:
        raise UsageError(f"{name}: radii must satisfy 0 < r1 < r2 < r3 (got {r1:g},{r2:g},{r3:g})")
    if r3 > 64:
        raise UsageError(f"{name}: r3 must be <= 64 pixels (got {r3:g})")
    return r1, r2, r3


def _space_group(name: str, v: Any) -> int:
    if isinstance(v, str) and not v.strip().lstrip("+-").isdigit():
        import gemmi

        sg = gemmi.find_spacegroup_by_name(v.strip())
        if sg is None:
            raise UsageError(f"{name}: unknown space group {v!r}")
        return int(sg.number)
    return int_range(1, 230)(name, v)


def _existing_file(name: str, v: Any) -> str:
    p = Path(to_text(name, v))
    if not p.is_file():
        raise UsageError(f"{name}: file not found: {p}")
    return str(p)


# ------------------------------------------------------------------------------------------- fields
def opt(
    default: Any,
    *decls: str,
    help: str,
    panel: str,
    parse: Callable[[str, Any], Any] | None = None,
    flag: bool = False,
    flag_value: Any = None,
    metavar: str | None = None,
    optional_none: bool = True,
) -> Any:
    """A dataclass field that is also a command-line option.

    decls: click declarations ("-N", "--threads"); help: help text; panel: help panel of `jfjoch_process`;
    parse(name, value) -> normalised value (raises UsageError); flag: a boolean switch; flag_value: the
    value of an option given without its argument (``-R`` = ``-R 30``); optional_none: None is allowed and
    means "off" / "not given" (not parsed).
    """
    meta = {
        "decls": decls,
        "help": help,
        "panel": panel,
        "parse": parse,
        "flag": flag,
        "flag_value": flag_value,
        "metavar": metavar,
        "optional_none": optional_none,
    }
    return field(default=default, metadata=meta)


def option_fields(cls: type) -> list:
    """The dataclass fields of an options class that are options (in declaration order)."""
    return [f for f in fields(cls) if "decls" in f.metadata]


@dataclass(frozen=True)
class Options:
    """Base of every options group: parsing/validation of all fields, then each group's cross-checks."""

    def validate(self):
        """Parse and check every value; returns a new instance with normalised values (words lower case,
        cells as tuples, numpy scalars as Python numbers)."""
        changes = {}
        for f in option_fields(type(self)):
            v = getattr(self, f.name)
            meta = f.metadata
            name = _name(meta, f.name)
            if v is None and meta["optional_none"]:
                continue
            if v is None:
                raise UsageError(f"{name} must be given")
            if meta["flag"]:
                changes[f.name] = to_bool(name, v)
            elif meta["parse"] is not None:
                changes[f.name] = meta["parse"](name, v)
        o = replace(self, **changes)
        for cls in reversed(type(self).__mro__):
            check = cls.__dict__.get("_check")
            if check is not None:
                check(o)
        return o

    @classmethod
    def from_kwargs(cls, **kwargs):
        """Build from keyword options; an unknown keyword is a UsageError naming it."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise UsageError(f"unknown option{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")
        return cls(**kwargs)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def group(self, cls: type):
        """This options object's values for one group (e.g. ``opts.group(SpotOptions)``)."""
        return cls(**{f.name: getattr(self, f.name) for f in fields(cls)})


# ------------------------------------------------------------------------------------------- groups
@dataclass(frozen=True)
class RunOptions(Options):
    """Output, threads, verbosity (`jfjoch_process` and `jfjoch_scale`)."""

    output_prefix: str = opt(
        "output",
        "-o",
        "--output-prefix",
        panel="General",
        parse=lambda n, v: to_text(n, v),
        help="Output file prefix.",
        optional_none=False,
    )
    threads: int = opt(
        1,
        "-N",
        "--threads",
        panel="General",
        parse=int_range(1, 1024),
        help="Number of worker threads.",
        optional_none=False,
    )
    verbose: bool = opt(
        False,
        "-v",
        "--verbose",
        panel="General",
        flag=True,
        help="Verbose output (per-image lines, tracebacks).",
        optional_none=False,
    )

    def _check(self) -> None:
        if not self.output_prefix:
            raise UsageError("--output-prefix must not be empty")


@dataclass(frozen=True)
class ImageOptions(Options):
    """Which images to process."""

    start_image: int = opt(
        0,
        "-s",
        "--start-image",
        panel="General",
        parse=int_range(0, None),
        help="First image to process.",
        optional_none=False,
    )
    end_image: int | None = opt(
        None,
        "-e",
        "--end-image",
        panel="General",
        parse=int_range(0, None),
        help="Last image to process, inclusive (default: all).",
    )
    stride: int = opt(
        1,
        "-t",
        "--stride",
        panel="General",
        parse=int_range(1, None),
        help="Process every n-th image.",
        optional_none=False,
    )

    def _check(self) -> None:
        if self.end_image is not None and self.end_image < self.start_image:
            raise UsageError(f"--end-image {self.end_image} is before --start-image {self.start_image}")


@dataclass(frozen=True)
class SpotOptions(Options):
    """Spot finding."""

    spot_sigma: float = opt(
        3.0,
        "--spot-sigma",
        panel="Spot finding",
        parse=float_range(0.0, None, open_low=True),
        help="Noise sigma level for spot finding.",
        optional_none=False,
    )
    spot_threshold: float = opt(
        10.0,
        "--spot-threshold",
        panel="Spot finding",
        parse=float_range(0.0, None),
        help="Photon-count threshold for spot finding.",
        optional_none=False,
    )
    spot_high_resolution: float = opt(
        1.5,
        "--spot-high-resolution",
        panel="Spot finding",
        parse=float_range(0.0, None, open_low=True),
        help="High-resolution limit for spot finding, Å.",
        optional_none=False,
    )
    spot_min_isigma: float = opt(
        4.0,
        "--spot-min-isigma",
        panel="Spot finding",
        parse=float_range(0.0, None),
        help="Smallest I/sigma(I) of a spot (background-subtracted sum over its pixels); 0: no test, as the "
        "reference jfjoch_process.",
        optional_none=False,
    )
    spot_min_pixels: int = opt(
        2,
        "--spot-min-pixels",
        panel="Spot finding",
        parse=int_range(1, 1000),
        help="Smallest spot, pixels.",
        optional_none=False,
    )
    max_spots: int = opt(
        250,
        "--max-spots",
        panel="Spot finding",
        parse=int_range(1, 100000),
        help="Maximum spot count per image.",
        optional_none=False,
    )


@dataclass(frozen=True)
class SymmetryOptions(Options):
    """The space group (indexing setting and scaling)."""

    space_group: int | None = opt(
        None,
        "-S",
        "--space-group",
        panel="Indexing",
        parse=_space_group,
        help="Space group number (used for indexing and scaling).",
    )


@dataclass(frozen=True)
class IndexingOptions(Options):
    """Indexing and rotation modes."""

    indexing_algorithm: str = opt(
        "auto",
        "-X",
        "--indexing-algorithm",
        panel="Indexing",
        parse=choice(INDEXING_ALGORITHMS),
        help="FFBIDX | FFT | FFTW | Auto | None (case-insensitive).",
        optional_none=False,
    )
    unit_cell: tuple[float, float, float, float, float, float] | None = opt(
        None,
        "-C",
        "--unit-cell",
        panel="Indexing",
        parse=lambda n, v: parse_cell(v, n),
        metavar="CELL",
        help='Reference unit cell "a,b,c,alpha,beta,gamma" (Å, degrees; required by ffbidx).',
    )
    two_pass_rotation: int | None = opt(
        None,
        "-R",
        "--two-pass-rotation",
        panel="Indexing",
        parse=int_range(1, None),
        flag_value=30,
        help="Two-pass rotation indexing over the first N images (default 30).",
    )
    single_pass_rotation: float | None = opt(
        None,
        "--single-pass-rotation",
        panel="Indexing",
        parse=float_range(0.0, 360.0, open_low=True),
        flag_value=20.0,
        help="Single-pass rotation indexing once the spots span this many degrees (default 20).",
    )
    redo_rotation_spots: bool = opt(
        False,
        "--redo-rotation-spots",
        panel="Indexing",
        flag=True,
        help="Redo spot finding for the two-pass first pass.",
        optional_none=False,
    )
    force_rotation_lattice: tuple[float, ...] | None = opt(
        None,
        "--force-rotation-lattice",
        panel="Indexing",
        parse=lambda n, v: parse_lattice(v, n),
        metavar="VEC",
        help="Force the rotation lattice: 9 floats, a, b, c in Å (lab frame at omega 0); skips the first pass.",
    )

    def _check(self) -> None:
        if self.indexing_algorithm == "ffbidx" and self.unit_cell is None:
            raise UsageError("-X ffbidx needs a unit cell (-C a,b,c,alpha,beta,gamma)")
        if self.two_pass_rotation is not None and self.single_pass_rotation is not None:
            raise UsageError("--two-pass-rotation and --single-pass-rotation exclude each other")

    @property
    def rotation_mode(self) -> bool:
        """True when a rotation indexing mode was asked for."""
        return (
            self.two_pass_rotation is not None
            or self.single_pass_rotation is not None
            or self.force_rotation_lattice is not None
        )


@dataclass(frozen=True)
class IntegrationOptions(Options):
    """Geometry refinement, prediction and Bragg integration."""

    refine: str = opt(
        "beam_and_lattice",
        "-r",
        "--refine",
        panel="Integration",
        parse=choice(REFINE_MODES),
        help="Geometry refinement: none | orientation | beam_and_lattice | pixelrefine "
        "(pixelrefine needs --reference-mtz).",
        optional_none=False,
    )
    integration: str = opt(
        "auto",
        "--integration",
        panel="Integration",
        parse=choice(INTEGRATION_METHODS),
        help="Intensity estimate: auto (profile fitting for rotation sweeps, summation for stills) | profile "
        "(2-D profile fitting) | sum (summation) | none.",
        optional_none=False,
    )
    integration_radius: tuple[float, float, float] | None = opt(
        None,
        "--integration-radius",
        panel="Integration",
        parse=lambda n, v: parse_radii(v, n),
        metavar="R",
        help="Signal-disc radius r1, or r1,r2,r3 (px; background annulus r2..r3). One value: r2 = r1 + 2, "
        "r3 = r1 + 4 (default: 5.5,7.5,9.5).",
    )
    profile_multiplier: float = opt(
        6.0,
        "--profile-multiplier",
        panel="Integration",
        parse=float_range(0.0, 100.0, open_low=True),
        help="Scale the measured profile width into the profile-fitting aperture (XDS-style generous aperture).",
        optional_none=False,
    )
    bandwidth: float | None = opt(
        None,
        "--bandwidth",
        panel="Integration",
        parse=float_range(0.0, 0.5),
        help="Relative X-ray bandwidth FWHM (e.g. 0.01 for a 1% DMM); default from the file or 0 (monochromatic).",
    )
    integration_high_resolution: float | None = opt(
        None,
        "--integration-high-resolution",
        panel="Integration",
        parse=float_range(0.0, None, open_low=True),
        help="High-resolution limit of prediction and integration, Å (default: the detector corner).",
    )


@dataclass(frozen=True)
class ScalingOptions(Options):
    """Scaling and merging (`jfjoch_process -M`, `jfjoch_scale`)."""

    scale_merge: bool = opt(
        False,
        "-M",
        "--scale-merge",
        panel="Scaling and merging",
        flag=True,
        help="Scale and merge.",
        optional_none=False,
    )
    partiality: str = opt(
        "fixed",
        "-P",
        "--partiality",
        panel="Scaling and merging",
        parse=choice(PARTIALITY_MODELS),
        help="Partiality model: fixed | rot | unity.",
        optional_none=False,
    )
    anomalous: bool = opt(
        False,
        "-A",
        "--anomalous",
        panel="Scaling and merging",
        flag=True,
        help="Anomalous mode (keep Friedel pairs separate).",
        optional_none=False,
    )
    refine_bfactor: bool = opt(
        False,
        "-B",
        "--refine-bfactor",
        panel="Scaling and merging",
        flag=True,
        help="Refine a per-image B-factor.",
        optional_none=False,
    )
    wedge: float | None = opt(
        None,
        "-w",
        "--wedge",
        panel="Scaling and merging",
        parse=float_range(0.0, 90.0),
        flag_value=0.0,
        help="Refine the per-image rotation wedge (optional starting value, degrees; 0 = automatic).",
    )
    scaling_high_resolution: float | None = opt(
        None,
        "--scaling-high-resolution",
        panel="Scaling and merging",
        parse=float_range(0.0, None, open_low=True),
        help="High-resolution limit for scaling, Å (default: no limit).",
    )
    min_partiality: float = opt(
        0.02,
        "--min-partiality",
        panel="Scaling and merging",
        parse=float_range(0.0, 1.0),
        help="Minimum partiality to accept a reflection.",
        optional_none=False,
    )
    reject_outliers: float | None = opt(
        None,
        "--reject-outliers",
        panel="Scaling and merging",
        parse=float_range(0.0, None, open_low=True),
        help="Per-observation outlier rejection, N sigma from the per-reflection median (default: off).",
    )
    reject_delta_cchalf: float | None = opt(
        None,
        "--reject-delta-cchalf",
        panel="Scaling and merging",
        parse=float_range(0.0, None),
        help="Drop images with delta-CC1/2 below mean - N stddev (default: off).",
    )
    min_image_cc: float | None = opt(
        None,
        "--min-image-cc",
        panel="Scaling and merging",
        parse=float_range(-100.0, 100.0),
        help="Per-image CC limit, percent (default: no limit).",
    )
    scaling_iterations: int = opt(
        3,
        "--scaling-iterations",
        panel="Scaling and merging",
        parse=int_range(1, 100),
        help="Scaling iterations with no reference data.",
        optional_none=False,
    )
    scaling_output: str = opt(
        "mtz",
        "--scaling-output",
        panel="Scaling and merging",
        parse=choice(SCALING_OUTPUTS),
        help="Reflection output format: mtz | cif | txt.",
        optional_none=False,
    )
    reference_mtz: str | None = opt(
        None,
        "-z",
        "--reference-mtz",
        panel="Scaling and merging",
        parse=_existing_file,
        metavar="FILE",
        help="Reference MTZ (enables reference-driven scaling).",
    )

    @property
    def merging(self) -> bool:
        """Scaling and merging asked for: -M, or any reference MTZ."""
        return bool(self.scale_merge or self.reference_mtz is not None)


def _dask_address(name: str, v: Any) -> str:
    from .cluster import parse_dask_address

    t = to_text(name, v)
    parse_dask_address(t)
    return t


@dataclass(frozen=True)
class ClusterOptions(Options):
    """Running the per-image pass on a Dask cluster (docs/cluster.md)."""

    dask: str | None = opt(
        None,
        "--dask",
        panel="Cluster",
        parse=_dask_address,
        metavar="ADDRESS",
        help="Run the per-image pass on a Dask cluster: a scheduler address (tcp://host:8786) or local:N "
        "(N worker processes on this machine). Needs jfjoch[cluster].",
    )
    shard_size: int | None = opt(
        None,
        "--shard-size",
        panel="Cluster",
        parse=int_range(1, 100000),
        help="Images per Dask task (default: about 4 shards per worker, at least 8 images).",
    )

    def _check(self) -> None:
        if self.shard_size is not None and self.dask is None:
            raise UsageError("--shard-size needs --dask")


@dataclass(frozen=True)
class ProcessOptions(
    ClusterOptions,
    ScalingOptions,
    IntegrationOptions,
    IndexingOptions,
    SymmetryOptions,
    SpotOptions,
    ImageOptions,
    RunOptions,
):
    """Every option of `jfjoch_process` / :func:`jfjoch.process`."""

    def _check(self) -> None:
        if self.refine == "pixelrefine" and self.reference_mtz is None:
            raise UsageError("-r pixelrefine needs a reference (-z/--reference-mtz)")


@dataclass(frozen=True)
class ScaleOptions(ScalingOptions, SymmetryOptions, RunOptions):
    """Every option of `jfjoch_scale` / :func:`jfjoch.scale`."""


_DEFAULTS_CHECKED = all(f.default is not MISSING for f in fields(ProcessOptions))
assert _DEFAULTS_CHECKED, "every option has a default"
