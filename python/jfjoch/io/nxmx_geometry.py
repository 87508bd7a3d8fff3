"""The one NXmx geometry reader and writer: beam, detector, goniometer and sample of an NXmx file.

Used for every file the package reads or writes: Jungfraujoch and DECTRIS masters (input), `_process.h5`
(output, read back by `jfjoch_scale` and the tests) and the simulator's masters. Values are converted
through their NXmx ``units`` attributes (lengths in m, mm, µm or Å; angles in degrees or radians) and
checked: a geometry field that is missing, not finite or out of range is an :class:`InputError` naming
the field and the file.

Layout read and written (lengths in the file in metres unless its units say otherwise):
``/entry/instrument/beam/incident_wavelength`` (Å), ``.../beam/incident_polarisation_fraction``,
``/entry/instrument/detector/{beam_center_x, beam_center_y}`` (pixels), ``.../detector_distance`` (m),
``.../{x,y}_pixel_size`` (m), ``.../saturation_value``, ``.../detectorSpecific/pixel_mask`` or
``.../pixel_mask``, ``.../detector_module/{fast,slow}_pixel_direction`` (their ``vector`` attributes),
``/entry/sample/transformations/omega`` (one angle per image, ``vector`` = rotation axis) with
``omega_increment_set``, ``/entry/sample/unit_cell`` (Å, degrees), ``/entry/sample/space_group``.
"""

from __future__ import annotations

import math

import h5py
import numpy as np

from jfjoch.errors import InputError
from jfjoch.experiment import Beam, Detector, Experiment, Goniometer

__all__ = ["DECTRIS_BEAM_CENTER_OFFSET_PX", "MissingFieldError", "default_saturation", "is_dectris_master",
           "read_experiment", "write_experiment"]

INT32_MAX = np.iinfo(np.int32).max

_DET = "/entry/instrument/detector"
# metres per unit, for lengths and wavelengths
_LENGTH_UNITS = {
    "m": 1.0, "meter": 1.0, "meters": 1.0, "metre": 1.0, "metres": 1.0,
    "mm": 1e-3, "millimeter": 1e-3, "millimeters": 1e-3, "millimetre": 1e-3,
    "um": 1e-6, "µm": 1e-6, "micron": 1e-6, "microns": 1e-6, "micrometer": 1e-6, "micrometers": 1e-6,
    "nm": 1e-9, "nanometer": 1e-9, "nanometers": 1e-9,
    "a": 1e-10, "å": 1e-10, "angstrom": 1e-10, "angstroms": 1e-10, "ang": 1e-10,
}  # fmt: skip
_ANGLE_UNITS = {"deg": 1.0, "degree": 1.0, "degrees": 1.0, "rad": 180.0 / np.pi, "radian": 180.0 / np.pi,
                "radians": 180.0 / np.pi}  # fmt: skip


DECTRIS_BEAM_CENTER_OFFSET_PX = 0.5
"""A DECTRIS master's beam_center_x/y (pixels) is measured from the outer corner of the first pixel, ours from
its centre: ours = DECTRIS's - 0.5 (the same as the miniCBF Beam_xy; docs/conventions.md gives the evidence)."""


def is_dectris_master(f: h5py.File) -> bool:
    """A master written by DECTRIS's own software (SIMPLON API / filewriter): it records the detector firmware
    (``detectorSpecific/eiger_fw_version``) or describes the detector as 'Dectris ...'. Jungfraujoch masters
    (also of EIGER detectors) write neither."""
    if isinstance(f.get(f"{_DET}/detectorSpecific/eiger_fw_version"), h5py.Dataset):
        return True
    desc = f.get(f"{_DET}/description")
    if isinstance(desc, h5py.Dataset):
        try:
            return _text(desc).strip().lower().startswith("dectris")
        except (TypeError, ValueError, IndexError):
            return False
    return False


class MissingFieldError(InputError):
    """A field the reader needs (geometry, data) is absent from the master file."""


def _units(obj: h5py.Dataset) -> str | None:
    u = obj.attrs.get("units")
    if u is None:
        return None
    if isinstance(u, bytes):
        u = u.decode()
    return str(np.asarray(u).ravel()[0] if np.ndim(u) else u).strip()


def _where(ds: h5py.Dataset | h5py.Group) -> str:
    """'<file>: <dataset path>', the prefix of every message about one field."""
    return f"{ds.file.filename}: {ds.name}"


def _scale(units: str | None, table: dict[str, float], default: str, ds: h5py.Dataset) -> float:
    key = (units or default).lower()
    if key not in table:
        raise InputError(f"{_where(ds)}: unknown units '{units}'")
    return table[key]


def _values(ds: h5py.Dataset) -> np.ndarray:
    """The dataset's values as a flat float array; an InputError naming the field when they are not numbers."""
    try:
        return np.atleast_1d(np.asarray(ds[()], float)).ravel()
    except (TypeError, ValueError, OSError):
        raise InputError(f"{_where(ds)} is not a number") from None


def _length_mm_per(ds: h5py.Dataset, default_units: str) -> float:
    """Millimetres per unit of the dataset (its ``units`` attribute, default_units when it has none)."""
    return _scale(_units(ds), _LENGTH_UNITS, default_units, ds) * 1e3


def _angle_deg(ds: h5py.Dataset) -> np.ndarray:
    return _values(ds) * _scale(_units(ds), _ANGLE_UNITS, "deg", ds)


def _first(f: h5py.File, paths: tuple[str, ...]) -> h5py.Dataset | None:
    for p in paths:
        obj = f.get(p)
        if isinstance(obj, h5py.Dataset):
            return obj
    return None


def _require(f: h5py.File, paths: tuple[str, ...], what: str) -> h5py.Dataset:
    ds = _first(f, paths)
    if ds is None:
        raise MissingFieldError(f"{f.filename}: missing {what} ({' or '.join(paths)})")
    return ds


def _vector_attr(ds: h5py.Dataset | None, default: tuple[float, float, float]) -> np.ndarray:
    v = None if ds is None else ds.attrs.get("vector")
    if v is None:
        return np.asarray(default, float)
    try:
        v = np.asarray(v, float).ravel()
    except (TypeError, ValueError):
        v = np.zeros(0)
    n = float(np.linalg.norm(v)) if v.size == 3 else 0.0
    if v.size != 3 or not math.isfinite(n) or n == 0:
        raise InputError(f"{_where(ds)}: the 'vector' attribute must be 3 finite numbers, not all zero "
                         f"(got {np.asarray(ds.attrs.get('vector')).tolist()})")  # fmt: skip
    return v / n


def _text(ds: h5py.Dataset) -> str:
    v = ds[()]
    if isinstance(v, np.ndarray):
        v = v.ravel()[0]
    return v.decode() if isinstance(v, bytes) else str(v)


def default_saturation(dtype: np.dtype) -> int:
    """Saturation count implied by the pixel type when the file states none."""
    dt = np.dtype(dtype)
    return {
        np.dtype(np.int16): 32767,
        np.dtype(np.uint16): 65534,
        np.dtype(np.uint8): 254,
        np.dtype(np.int8): 127,
    }.get(dt, INT32_MAX)


def _finite(f: h5py.File, what: str, value: float, positive: bool = False) -> float:
    v = float(value)
    if not math.isfinite(v) or (positive and v <= 0):
        need = "a positive finite number" if positive else "a finite number"
        raise InputError(f"{f.filename}: {what} must be {need} (got {value:g})")
    return v


def _scalar(ds: h5py.Dataset) -> float:
    v = _values(ds)
    if v.size == 0:
        raise InputError(f"{_where(ds)} is empty")
    return float(v[0])


def read_experiment(f: h5py.File, ny: int, nx: int, dtype: np.dtype | None = None) -> Experiment:
    """The experiment described by an open NXmx file whose images are (ny, nx) of ``dtype``.

    The detector plane is placed so that the direct beam (+z) meets it at the file's beam centre at the file's
    distance along its normal (docs/conventions.md). Jungfraujoch masters give the beam centre with pixel
    centres at integers, as jfjoch does; DECTRIS masters (:func:`is_dectris_master`) from the outer corner of
    the first pixel, so 0.5 px is subtracted from theirs.
    """
    wl_paths = (
        "/entry/instrument/beam/incident_wavelength",
        "/entry/instrument/monochromator/wavelength",
        "/entry/instrument/beam/wavelength",
    )
    wl = _require(f, wl_paths, "incident_wavelength")
    wavelength = _finite(f, "incident_wavelength", _scalar(wl) * _scale(_units(wl), _LENGTH_UNITS, "angstrom",
                                                                       wl) * 1e10, positive=True)  # fmt: skip
    px = _require(f, (f"{_DET}/x_pixel_size",), "x_pixel_size")
    pixel_mm = _finite(f, "x_pixel_size", _scalar(px) * _length_mm_per(px, "m"), positive=True)
    py_ = _first(f, (f"{_DET}/y_pixel_size",))
    if py_ is not None:
        py_mm = _finite(f, "y_pixel_size", _scalar(py_) * _length_mm_per(py_, "m"), positive=True)
        if not np.isclose(py_mm, pixel_mm, rtol=1e-6):
            raise InputError(f"{f.filename}: non-square pixels are not supported "
                             f"(x_pixel_size {pixel_mm:g} mm, y_pixel_size {py_mm:g} mm)")  # fmt: skip
    dist = _require(f, (f"{_DET}/detector_distance", f"{_DET}/distance"), "detector_distance")
    distance_mm = _finite(f, "detector_distance", _scalar(dist) * _length_mm_per(dist, "m"), positive=True)
    centre = []
    for name in ("beam_center_x", "beam_center_y"):
        ds = _require(f, (f"{_DET}/{name}",), name)
        v = _scalar(ds)
        u = (_units(ds) or "pixel").lower()
        if u not in ("pixel", "pixels", "px"):
            # a beam centre given as a length: convert to pixels
            v *= _scale(u, _LENGTH_UNITS, "m", ds) * 1e3 / pixel_mm
        centre.append(_finite(f, name, v))
    bx, by = centre
    if is_dectris_master(f):
        # DECTRIS measures the beam centre from the outer corner of the first pixel (docs/conventions.md)
        bx, by = bx - DECTRIS_BEAM_CENTER_OFFSET_PX, by - DECTRIS_BEAM_CENTER_OFFSET_PX
    fast = _vector_attr(_first(f, (f"{_DET}/detector_module/fast_pixel_direction",
                                   f"{_DET}/module/fast_pixel_direction")), (1.0, 0.0, 0.0))  # fmt: skip
    slow = _vector_attr(_first(f, (f"{_DET}/detector_module/slow_pixel_direction",
                                   f"{_DET}/module/slow_pixel_direction")), (0.0, 1.0, 0.0))  # fmt: skip
    normal = np.cross(fast, slow)
    if np.linalg.norm(normal) < 1e-6 or abs(normal[2]) < 1e-6:
        raise InputError(f"{f.filename}: the detector's fast_pixel_direction {fast.tolist()} and "
                         f"slow_pixel_direction {slow.tolist()} must span a plane the beam crosses")  # fmt: skip

    mask = None
    pm = _first(f, (f"{_DET}/detectorSpecific/pixel_mask", f"{_DET}/pixel_mask"))
    if pm is not None:
        m = np.asarray(pm[()])
        if m.shape != (ny, nx):
            raise InputError(f"{f.filename}: pixel_mask has shape {m.shape}, images are {(ny, nx)}")
        mask = m != 0
    sat_ds = _first(
        f, (f"{_DET}/saturation_value", f"{_DET}/detectorSpecific/countrate_correction_count_cutoff")
    )
    saturation = default_saturation(dtype if dtype is not None else np.int32)
    if sat_ds is not None:
        sat = _scalar(sat_ds)
        if not math.isfinite(sat) or sat < 1:
            raise InputError(f"{f.filename}: {sat_ds.name} must be a positive count (got {sat:g})")
        saturation = int(min(sat, saturation))
    extra = {}
    mat = _first(f, (f"{_DET}/sensor_material",))
    if mat is not None:
        extra["sensor_material"] = _text(mat)
    th = _first(f, (f"{_DET}/sensor_thickness",))
    if th is not None:
        extra["sensor_thickness_mm"] = _scalar(th) * _length_mm_per(th, "m")
        if not math.isfinite(extra["sensor_thickness_mm"]) or extra["sensor_thickness_mm"] < 0:
            raise InputError(f"{_where(th)} must be a finite length >= 0 (got {extra['sensor_thickness_mm']:g} mm)")
    detector = Detector(nx=nx, ny=ny, pixel_mm=pixel_mm, origin_mm=np.zeros(3), fast=fast, slow=slow, mask=mask,
                        saturation=saturation, **extra).with_beam(bx, by, distance_mm)  # fmt: skip
    pol = 0.99
    pol_ds = _first(f, ("/entry/instrument/beam/incident_polarisation_fraction",))
    if pol_ds is not None:
        pol = _scalar(pol_ds)
        if not 0.0 <= pol <= 1.0:
            raise InputError(f"{f.filename}: incident_polarisation_fraction must be in [0, 1] (got {pol:g})")
    bandwidth = 0.0
    bw_ds = _first(f, ("/entry/instrument/beam/incident_wavelength_spread",))
    if bw_ds is not None:
        spread = _scalar(bw_ds) * _scale(_units(bw_ds), _LENGTH_UNITS, "angstrom", bw_ds) * 1e10
        if math.isfinite(spread) and spread >= 0:
            bandwidth = spread / wavelength
    beam = Beam(wavelength_A=wavelength, polarization_fraction=pol, bandwidth=bandwidth)
    return Experiment(beam=beam, detector=detector, goniometer=_goniometer(f),
                      unit_cell=_unit_cell(f), space_group=_space_group(f))  # fmt: skip


def _goniometer(f: h5py.File) -> Goniometer | None:
    om = _first(f, ("/entry/sample/transformations/omega", "/entry/sample/goniometer/omega"))
    if om is None:
        return None
    angles = _angle_deg(om)
    if not np.all(np.isfinite(angles)):
        raise InputError(f"{f.filename}: {om.name} holds non-finite angles")
    if np.unique(angles).size < 2:
        return None
    inc_paths = (
        f"{om.parent.name}/omega_increment_set",
        "/entry/sample/goniometer/omega_increment_set",
        "/entry/sample/goniometer/omega_range_average",
    )
    inc_ds = _first(f, inc_paths)
    increment = (_scalar(inc_ds) * _scale(_units(inc_ds), _ANGLE_UNITS, "deg", inc_ds) if inc_ds is not None
                 else float(angles[1] - angles[0]))  # fmt: skip
    if not math.isfinite(increment) or increment == 0:
        raise InputError(f"{f.filename}: the omega increment must be a non-zero finite angle (got {increment:g})")
    axis = _vector_attr(om, (1.0, 0.0, 0.0))
    return Goniometer(axis=axis, start_deg=float(angles[0]), increment_deg=increment)


def _unit_cell(f: h5py.File) -> tuple[float, ...] | None:
    uc = _first(f, ("/entry/sample/unit_cell", "/entry/sample/sample/unit_cell"))
    if uc is None:
        return None
    try:
        v = np.asarray(uc[()], float).ravel()
    except (TypeError, ValueError):
        raise InputError(f"{f.filename}: {uc.name} must hold 6 numbers") from None
    if v.size != 6:
        raise InputError(f"{f.filename}: {uc.name} must hold 6 numbers")
    from jfjoch.errors import UsageError
    from jfjoch.options import parse_cell

    try:
        return parse_cell(v, name=f"{f.filename}: {uc.name}")
    except UsageError as e:
        raise InputError(str(e)) from None


def _space_group(f: h5py.File) -> int | None:
    sg = _first(f, ("/entry/sample/space_group", "/entry/sample/space_group_number"))
    if sg is None:
        return None
    import gemmi

    v = sg[()]
    if isinstance(v, np.ndarray):
        v = v.ravel()[0] if v.size else ""
    if isinstance(v, (bytes, str)):
        text = (v.decode(errors="replace") if isinstance(v, bytes) else v).strip()
        g = gemmi.find_spacegroup_by_number(int(text)) if text.isdigit() else gemmi.find_spacegroup_by_name(text)
    else:
        try:
            number = float(v)
        except (TypeError, ValueError):
            number = math.nan
        g = gemmi.find_spacegroup_by_number(int(number)) if number.is_integer() and 1 <= number <= 230 else None
        text = str(v)
    if g is None:
        raise InputError(f"{_where(sg)}: unknown space group '{text}' (a number 1-230 or a Hermann-Mauguin symbol)")
    return int(g.number)


# ---------------------------------------------------------------------------------------------- write
def _num(g: h5py.Group, name: str, value, units: str | None = None, dtype=None) -> h5py.Dataset:
    ds = g.create_dataset(name, data=np.asarray(value, dtype=dtype))
    if units is not None:
        ds.attrs["units"] = units
    return ds


def _group(parent: h5py.Group, name: str, nx_class: str) -> h5py.Group:
    g = parent.require_group(name)
    g.attrs["NX_class"] = nx_class
    return g


def write_experiment(
    entry: h5py.Group,
    e: Experiment,
    *,
    n_angles: int = 2,
    mask_in_detector_specific: bool = False,
    pixel_mask: np.ndarray | None = None,
) -> None:
    """Write the geometry of ``e`` into an NXentry group, in the layout :func:`read_experiment` reads.

    n_angles: how many omega values to write for a rotation experiment (one per image of the dataset).
    mask_in_detector_specific: put the mask at ``detectorSpecific/pixel_mask`` (Jungfraujoch masters)
    rather than ``pixel_mask``. pixel_mask: values to write instead of ``e.detector.mask`` (e.g. per-class
    bits). Every dataset carries its NXmx units.
    """
    inst = _group(entry, "instrument", "NXinstrument")
    beam = _group(inst, "beam", "NXbeam")
    _num(beam, "incident_wavelength", e.beam.wavelength_A, "angstrom")
    _num(beam, "incident_polarisation_fraction", e.beam.polarization_fraction)
    if e.beam.bandwidth > 0:
        _num(beam, "incident_wavelength_spread", e.beam.bandwidth * e.beam.wavelength_A, "angstrom")
    det = _group(inst, "detector", "NXdetector")
    d = e.detector
    bx, by, dist = e.core.beam()
    _num(det, "beam_center_x", bx, "pixel")
    _num(det, "beam_center_y", by, "pixel")
    _num(det, "detector_distance", dist * 1e-3, "m")
    _num(det, "x_pixel_size", d.pixel_mm * 1e-3, "m")
    _num(det, "y_pixel_size", d.pixel_mm * 1e-3, "m")
    if d.saturation is not None:
        _num(det, "saturation_value", int(d.saturation))
    det.create_dataset("sensor_material", data=d.sensor_material, dtype=h5py.string_dtype())
    _num(det, "sensor_thickness", d.sensor_thickness_mm * 1e-3, "m")
    # NXmx transformation chain: the plane sits at L along the beam (L = D / (n . z)), pixel (0, 0) at the
    # in-plane offset -(bx fast + by slow) * pixel from there
    n_vec = np.cross(d.fast, d.slow)
    n_vec = n_vec / np.linalg.norm(n_vec)
    L = dist / abs(n_vec[2])
    det.create_dataset("depends_on", data="/entry/instrument/detector/transformations/translation",
                       dtype=h5py.string_dtype())  # fmt: skip
    tr = _group(det, "transformations", "NXtransformations")
    t = _num(tr, "translation", [L], "mm")
    t.attrs.update({"depends_on": ".", "transformation_type": "translation", "vector": [0.0, 0.0, 1.0]})
    mod = _group(det, "detector_module", "NXdetector_module")
    _num(mod, "data_origin", [0, 0], dtype=np.int32)
    _num(mod, "data_size", [d.ny, d.nx], dtype=np.int32)
    off = _num(mod, "module_offset", [0.0], "mm")
    off.attrs.update({
        "depends_on": "/entry/instrument/detector/transformations/translation",
        "offset": np.asarray(d.origin_mm, float) - np.array([0.0, 0.0, L]),
        "offset_units": "mm",
        "transformation_type": "translation",
        "vector": [1.0, 0.0, 0.0],
    })  # fmt: skip
    for name, vec in (("fast_pixel_direction", d.fast), ("slow_pixel_direction", d.slow)):
        ds = _num(mod, name, [d.pixel_mm], "mm")
        ds.attrs.update({
            "depends_on": "/entry/instrument/detector/detector_module/module_offset",
            "offset": [0.0, 0.0, 0.0],
            "offset_units": "mm",
            "transformation_type": "translation",
            "vector": np.asarray(vec, float),
        })  # fmt: skip
    mask = pixel_mask if pixel_mask is not None else d.mask
    if mask is not None:
        parent = _group(det, "detectorSpecific", "NXcollection") if mask_in_detector_specific else det
        parent.create_dataset("pixel_mask", data=np.asarray(mask, np.uint32), compression="gzip",
                              compression_opts=4)  # fmt: skip
    sample = _group(entry, "sample", "NXsample")
    if e.unit_cell is not None:
        _num(sample, "unit_cell", np.asarray(e.unit_cell, float))
    if e.space_group is not None:
        import gemmi

        sg = gemmi.find_spacegroup_by_number(int(e.space_group))
        sample.create_dataset("space_group", data=sg.hm.replace(" ", ""), dtype=h5py.string_dtype())
        _num(sample, "space_group_number", int(e.space_group))
    g = e.goniometer
    if g is not None:
        sample.create_dataset("depends_on", data="/entry/sample/transformations/omega", dtype=h5py.string_dtype())
        tr = _group(sample, "transformations", "NXtransformations")
        n = max(int(n_angles), 2)
        om = _num(tr, "omega", g.start_deg + np.arange(n) * g.increment_deg, "deg")
        om.attrs["depends_on"] = "."
        om.attrs["transformation_type"] = "rotation"
        om.attrs["vector"] = np.asarray(g.axis, float)
        _num(tr, "omega_increment_set", g.increment_deg, "deg")
        # plain copies for readers that want no NeXus transformations (SPEC: jfjoch_scale's minimal input)
        gon = _group(sample, "goniometer", "NXcollection")
        _num(gon, "omega_start", g.start_deg, "deg")
        _num(gon, "omega_increment", g.increment_deg, "deg")
        _num(gon, "omega_axis", np.asarray(g.axis, float))
