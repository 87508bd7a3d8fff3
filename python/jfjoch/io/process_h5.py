"""Write and read `<prefix>_process.h5` (layout: SPEC.md "`_process.h5` contract", docs/formats.md).

The file is written under a temporary name in the destination directory and renamed when complete, so an
interrupted run never leaves a file that looks finished.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import h5py
import numpy as np

from ..errors import InputError, ProcessingError
from ..experiment import Beam, Detector, Experiment, Goniometer
from ..results import ImageResult, IndexingSummary, ProcessResult

__all__ = ["LAB_FRAME", "PIXEL_ORIGIN", "read_process_h5", "write_process_h5"]

LAB_FRAME = (
    "frame of the input file's NXmx vectors: right-handed, X-ray beam along +z; for Jungfraujoch files "
    "+x along the detector fast axis (increasing column) and +y along the slow axis (increasing row)"
)
PIXEL_ORIGIN = "pixel (i, j) (column i, row j, 0-based) has its centre at (i, j)"

_STAT_DATASETS = {
    # statistics key -> (dataset name, dtype, units)
    "resolution_estimate": ("resolutionEstimate", np.float32, "angstrom"),
    "background_estimate": ("backgroundEstimate", np.float32, "photons/pixel"),
    "ice_ring_score": ("iceRingScore", np.float32, None),
    "n_spots_low_resolution": ("spotsLowResolution", np.int32, None),
    "n_spots_ice_ring": ("spotsIceRing", np.int32, None),
    "max_value": ("maxValue", np.int64, "photons"),
    "n_saturated": ("saturatedPixels", np.int64, None),
    "n_error": ("errorPixels", np.int64, None),
}


def _ds(group: h5py.Group, name: str, data, units: str | None = None, **kw) -> h5py.Dataset:
    d = group.create_dataset(name, data=data, **kw)
    if units:
        d.attrs["units"] = units
    return d


def write_process_h5(path: str | os.PathLike, result: ProcessResult, *, source: str = "",
                     options: dict | None = None) -> Path:
    """Write `result` to `path` atomically; returns the final path.

    Raises ProcessingError (one line) when the destination cannot be written.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ProcessingError(f"cannot write {path}: directory {directory} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise ProcessingError(f"cannot write {path}: {e.strerror}") from None
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            _write(f, result, source, options or {})
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def _write(f: h5py.File, r: ProcessResult, source: str, options: dict) -> None:
    f.attrs["creator"] = "jfjoch"
    entry = f.create_group("entry")
    entry.attrs["NX_class"] = "NXentry"
    _ds(entry, "definition", "NXmx")
    if source:
        entry.attrs["source_file"] = source
    ims = r.images
    n = len(ims)
    m = max([im.n_spots for im in ims] + [1])

    image = entry.create_group("image")
    _ds(image, "number", np.array([im.number for im in ims], np.int64))
    _ds(image, "decoded", np.array([im.ok for im in ims], np.uint8))

    mx = entry.create_group("MX")
    mx.attrs["lab_frame"] = LAB_FRAME
    mx.attrs["pixel_origin"] = PIXEL_ORIGIN
    npk = np.array([im.n_spots for im in ims], np.int32)
    _ds(mx, "nPeaks", npk)
    px = np.zeros((n, m), np.float32)
    py = np.zeros((n, m), np.float32)
    pi = np.zeros((n, m), np.float32)
    pidx = np.zeros((n, m), np.uint8)
    pice = np.zeros((n, m), np.uint8)
    for i, im in enumerate(ims):
        k = im.n_spots
        px[i, :k], py[i, :k], pi[i, :k] = im.x, im.y, im.intensity
        if len(im.spot_indexed):
            pidx[i, :k] = im.spot_indexed
        if len(im.ice_ring):
            pice[i, :k] = im.ice_ring
    comp = {"compression": "gzip", "compression_opts": 4} if n * m > 4096 else {}
    _ds(mx, "peakXPosRaw", px, "pixel", **comp)
    _ds(mx, "peakYPosRaw", py, "pixel", **comp)
    _ds(mx, "peakTotalIntensity", pi, "photons", **comp)
    _ds(mx, "peakIndexed", pidx, **comp)
    _ds(mx, "peakIceRing", pice, **comp)
    _ds(mx, "imageIndexed", np.array([im.indexed for im in ims], np.uint8))
    lat = np.zeros((n, 3, 3), np.float32)
    cells = np.zeros((n, 6), np.float32)
    for i, im in enumerate(ims):
        if im.indexed and im.lattice is not None:
            lat[i] = im.lattice
            cells[i] = im.cell
    d = _ds(mx, "latticeRealSpace", lat, "angstrom")
    d.attrs["description"] = "rows: real-space vectors a, b, c in the lab frame at the image (mid-angle)"
    d = _ds(mx, "unitCell", cells)
    d.attrs["units"] = "angstrom, angstrom, angstrom, degree, degree, degree"
    _ds(mx, "spotsIndexed", np.array([im.n_indexed for im in ims], np.int32))
    for key, (name, dt, units) in _STAT_DATASETS.items():
        fill = np.nan if np.issubdtype(dt, np.floating) else 0
        vals = np.array([im.stats.get(key, fill) for im in ims], dtype=np.float64)
        _ds(mx, name, np.nan_to_num(vals, nan=fill).astype(dt) if fill == 0 else vals.astype(dt), units)

    ix = mx.create_group("indexing")
    s = r.indexing
    ix.attrs["algorithm"] = s.algorithm
    ix.attrs["backend"] = s.backend
    ix.attrs["mode"] = s.mode
    if s.bravais:
        ix.attrs["bravais_lattice"] = s.bravais
    if s.space_group:
        ix.attrs["space_group_number"] = int(s.space_group)
    if s.rotation_lattice is not None:
        _ds(ix, "rotationLattice", np.asarray(s.rotation_lattice, np.float64), "angstrom").attrs[
            "description"
        ] = "rows a, b, c in the lab frame at omega = 0"
    if s.notes:
        ix.attrs["notes"] = "\n".join(s.notes)

    if r.q is not None:
        az = entry.create_group("azint")
        _ds(az, "q", np.asarray(r.q, np.float32), "1/angstrom").attrs["description"] = "q = 2 pi / d"
        prof = np.full((n, len(r.q)), np.nan, np.float32)
        for i, im in enumerate(ims):
            if im.profile is not None:
                prof[i] = im.profile
        _ds(az, "profile", prof, "photons/pixel")

    _write_experiment(entry, r.experiment)
    proc = entry.create_group("processing")
    for k, v in options.items():
        if v is None:
            continue
        proc.attrs[k] = np.asarray(v) if isinstance(v, (tuple, list)) else v
    for k, v in r.timing.items():
        proc.attrs[f"time_{k}_s"] = float(v)


def _write_experiment(entry: h5py.Group, e: Experiment) -> None:
    inst = entry.create_group("instrument")
    inst.attrs["NX_class"] = "NXinstrument"
    beam = inst.create_group("beam")
    beam.attrs["NX_class"] = "NXbeam"
    _ds(beam, "incident_wavelength", e.beam.wavelength_A, "angstrom")
    _ds(beam, "incident_polarisation_fraction", e.beam.polarization_fraction)
    det = inst.create_group("detector")
    det.attrs["NX_class"] = "NXdetector"
    d = e.detector
    bx, by = d.beam_center_px
    _ds(det, "beam_center_x", bx, "pixel")
    _ds(det, "beam_center_y", by, "pixel")
    _ds(det, "detector_distance", d.distance_mm * 1e-3, "m")
    _ds(det, "x_pixel_size", d.pixel_mm * 1e-3, "m")
    _ds(det, "y_pixel_size", d.pixel_mm * 1e-3, "m")
    if d.saturation is not None:
        _ds(det, "saturation_value", int(d.saturation))
    mod = det.create_group("detector_module")
    mod.attrs["NX_class"] = "NXdetector_module"
    _ds(mod, "data_size", np.array([d.ny, d.nx], np.int32))
    _ds(mod, "fast_pixel_direction", np.asarray(d.fast, float))
    _ds(mod, "slow_pixel_direction", np.asarray(d.slow, float))
    _ds(mod, "module_origin", np.asarray(d.origin_mm, float) * 1e-3, "m").attrs["description"] = (
        "lab position of the centre of pixel (0, 0)"
    )
    if d.mask is not None:
        _ds(det, "pixel_mask", np.asarray(d.mask, np.uint8), compression="gzip", compression_opts=4)
    sample = entry.create_group("sample")
    sample.attrs["NX_class"] = "NXsample"
    if e.unit_cell is not None:
        _ds(sample, "unit_cell", np.asarray(e.unit_cell, float))
    if e.space_group is not None:
        _ds(sample, "space_group_number", int(e.space_group))
    if e.goniometer is not None:
        g = sample.create_group("goniometer")
        _ds(g, "omega_start", e.goniometer.start_deg, "degree")
        _ds(g, "omega_increment", e.goniometer.increment_deg, "degree")
        _ds(g, "omega_axis", np.asarray(e.goniometer.axis, float))


def read_process_h5(path: str | os.PathLike) -> ProcessResult:
    """Read a `_process.h5` written by :func:`write_process_h5` back into a ProcessResult."""
    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError:
        raise InputError(f"{path}: not an HDF5 file") from None
    with f:
        if "entry/MX/nPeaks" not in f:
            raise InputError(f"{path}: not a jfjoch _process.h5 file (no /entry/MX/nPeaks)")
        e = f["entry"]
        mx = e["MX"]
        nums = e["image/number"][()]
        decoded = e["image/decoded"][()] if "image/decoded" in e else np.ones(len(nums), np.uint8)
        npk = mx["nPeaks"][()]
        px, py, pi = mx["peakXPosRaw"][()], mx["peakYPosRaw"][()], mx["peakTotalIntensity"][()]
        pidx, pice = mx["peakIndexed"][()], mx["peakIceRing"][()]
        idx = mx["imageIndexed"][()]
        lat = mx["latticeRealSpace"][()]
        cells = mx["unitCell"][()]
        stats = {k: mx[name][()] for k, (name, _, _) in _STAT_DATASETS.items() if name in mx}
        q = e["azint/q"][()] if "azint/q" in e else None
        prof = e["azint/profile"][()] if "azint/profile" in e else None
        images = []
        for i, num in enumerate(nums):
            k = int(npk[i])
            im = ImageResult(
                number=int(num), ok=bool(decoded[i]),
                x=px[i, :k].copy(), y=py[i, :k].copy(), intensity=pi[i, :k].copy(),
                ice_ring=pice[i, :k].astype(bool), spot_indexed=pidx[i, :k].astype(bool),
                profile=None if prof is None else prof[i],
                stats={key: v[i].item() for key, v in stats.items()},
                indexed=bool(idx[i]),
            )
            if im.indexed:
                im.lattice = lat[i].astype(np.float64)
                im.cell = tuple(float(c) for c in cells[i])
            images.append(im)
        ix = mx["indexing"]
        summary = IndexingSummary(
            algorithm=str(ix.attrs.get("algorithm", "none")), backend=str(ix.attrs.get("backend", "cpu")),
            mode=str(ix.attrs.get("mode", "stills")),
            rotation_lattice=ix["rotationLattice"][()] if "rotationLattice" in ix else None,
            bravais=ix.attrs.get("bravais_lattice"),
            space_group=int(ix.attrs["space_group_number"]) if "space_group_number" in ix.attrs else None,
        )
        experiment = _read_experiment(e)
    return ProcessResult(experiment=experiment, images=images, q=q, indexing=summary, output_path=str(path))


def _read_experiment(e: h5py.Group) -> Experiment:
    det = e["instrument/detector"]
    mod = det["detector_module"]
    ny, nx = (int(v) for v in mod["data_size"][()])
    mask = det["pixel_mask"][()].astype(bool) if "pixel_mask" in det else None
    detector = Detector(
        nx=nx, ny=ny, pixel_mm=float(det["x_pixel_size"][()]) * 1e3,
        origin_mm=mod["module_origin"][()] * 1e3, fast=mod["fast_pixel_direction"][()],
        slow=mod["slow_pixel_direction"][()], mask=mask,
        saturation=int(det["saturation_value"][()]) if "saturation_value" in det else None,
    )
    b = e["instrument/beam"]
    beam = Beam(float(b["incident_wavelength"][()]), float(b["incident_polarisation_fraction"][()]))
    s = e["sample"]
    gon = None
    if "goniometer" in s:
        g = s["goniometer"]
        gon = Goniometer(axis=g["omega_axis"][()], start_deg=float(g["omega_start"][()]),
                         increment_deg=float(g["omega_increment"][()]))
    cell = tuple(float(v) for v in s["unit_cell"][()]) if "unit_cell" in s else None
    sg = int(s["space_group_number"][()]) if "space_group_number" in s else None
    return Experiment(beam=beam, detector=detector, goniometer=gon, unit_cell=cell, space_group=sg)
