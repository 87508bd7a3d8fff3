"""Write and read `<prefix>_process.h5` (layout: SPEC.md "`_process.h5` contract", docs/formats.md).

:class:`ProcessWriter` streams: it creates the file under a temporary name in the destination directory,
appends image results in image order into chunked, resizable datasets (a few images buffered at a time,
so memory does not grow with the number of images), and on :meth:`ProcessWriter.finish` writes the
run-level groups and renames the file. :meth:`ProcessWriter.abort` (also on any exception inside a
``with`` block) removes the temporary file, so an interrupted run never leaves a file that looks finished.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import h5py
import numpy as np

from ..errors import InputError, ProcessingError
from ..results import ImageResult, IndexingSummary, IntegrationCounts, ProcessResult
from ..tables import ReflectionTable, SpotTable
from .nxmx_geometry import read_experiment, write_experiment

__all__ = ["LAB_FRAME", "PIXEL_ORIGIN", "ProcessWriter", "read_process_h5", "remove_stale_temporaries",
           "write_process_h5"]

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
_COUNT_DATASETS = {
    "predicted": "predicted",
    "integrated": "integrated",
    "profile_fitted": "profileFitted",
    "dropped_masked": "droppedMasked",
    "dropped_background": "droppedBackground",
    "dropped_edge": "droppedEdge",
    "overlapped": "overlapped",
    "saturated": "saturated",
}
_FLUSH_IMAGES = 32
"""Images buffered before they are written (bounds the writer's memory)."""
_REFLECTION_CHUNK = 1 << 15
_SPACE_MARGIN = 8 << 20
"""Bytes kept free beyond a flush's uncompressed size (HDF5 metadata, chunk rounding)."""


_TMP_STEM = 120
"""Characters of the final name kept in the temporary name (which must fit where the final name fits)."""


def _temp_prefix(path: Path) -> str:
    return f".{path.name[:_TMP_STEM]}.jfj"


def _check_name(path: Path, directory: Path) -> None:
    """The final name must be creatable: its length within the file system's limit."""
    try:
        limit = os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    if len(os.fsencode(path.name)) > limit:
        raise ProcessingError(f"cannot write {path}: the file name is longer than {limit} bytes")


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove temporary files of earlier runs with the same output name whose process is gone."""
    directory = path.parent if str(path.parent) else Path(".")
    removed = []
    prefix = _temp_prefix(path)
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        parts = name[len(prefix):].split(".")
        if len(parts) != 3 or not parts[0].isdigit():
            continue
        pid = int(parts[0])
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
            continue  # that run is still going
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        with contextlib.suppress(OSError):
            os.unlink(directory / name)
            removed.append(directory / name)
    return removed


def _temp_path(path: Path) -> Path:
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ProcessingError(f"cannot write {path}: directory {directory} does not exist")
    _check_name(path, directory)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{_temp_prefix(path)}{os.getpid()}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise ProcessingError(f"cannot write {path}: {e.strerror}") from None
    os.close(fd)
    # mkstemp creates 0600: give the file the mode a plain open() would (0666 minus the umask)
    umask = os.umask(0)
    os.umask(umask)
    with contextlib.suppress(OSError):
        os.chmod(tmp, 0o666 & ~umask)
    return Path(tmp)


class ProcessWriter:
    """Streaming writer of `_process.h5` (see the module docstring). Not thread-safe: one thread appends.

    Args:
        path: the final file name.
        max_spots: width M of the per-spot tables.
        n_bins: number of azimuthal-integration bins (q is written at finish).
        source: the input file, stored as an attribute.
        options: the run's options, stored as attributes of /entry/processing.
    """

    def __init__(self, path: str | os.PathLike, *, max_spots: int, n_bins: int, source: str = "",
                 options: dict | None = None) -> None:  # fmt: skip
        self.path = Path(path)
        self.max_spots = max(int(max_spots), 1)
        self.n_bins = max(int(n_bins), 1)
        self._tmp = _temp_path(self.path)
        self._buffer: list[ImageResult] = []
        self._refl_buffer: list[ReflectionTable] = []
        self._n = 0
        self._n_refl = 0
        self._last_number: int | None = None
        self._f = None
        try:
            self._f = h5py.File(self._tmp, "w")
            self._create(source, options or {})
        except (OSError, RuntimeError) as e:
            self._fail(e)
        except BaseException:
            self.abort()
            raise

    # ------------------------------------------------------------------------------------ layout
    def _ds(self, group: h5py.Group, name: str, shape_tail: tuple[int, ...], dtype, units: str | None = None,
            chunk_rows: int = 256, compress: bool = False, fill=None) -> h5py.Dataset:  # fmt: skip
        kw = {}
        if compress:
            kw = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
        if fill is not None:
            kw["fillvalue"] = fill
        d = group.create_dataset(name, shape=(0, *shape_tail), maxshape=(None, *shape_tail), dtype=dtype,
                                 chunks=(chunk_rows, *shape_tail), **kw)  # fmt: skip
        if units:
            d.attrs["units"] = units
        return d

    def _create(self, source: str, options: dict) -> None:
        f = self._f
        f.attrs["creator"] = "jfjoch"
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry.create_dataset("definition", data="NXmx", dtype=h5py.string_dtype())
        if source:
            entry.attrs["source_file"] = source
        M, B = self.max_spots, self.n_bins
        img = entry.create_group("image")
        self._ds(img, "number", (), np.int64)
        self._ds(img, "decoded", (), np.uint8)
        self._ds(img, "error", (), h5py.string_dtype()).attrs["description"] = (
            "why the image failed (empty when it was processed)")
        mx = entry.create_group("MX")
        mx.attrs["lab_frame"] = LAB_FRAME
        mx.attrs["pixel_origin"] = PIXEL_ORIGIN
        self._ds(mx, "nPeaks", (), np.int32)
        rows = max(1, min(256, (1 << 16) // M))
        for name, dt, units in (("peakXPosRaw", np.float32, "pixel"), ("peakYPosRaw", np.float32, "pixel"),
                                ("peakTotalIntensity", np.float32, "photons"), ("peakIndexed", np.uint8, None),
                                ("peakIceRing", np.uint8, None)):  # fmt: skip
            self._ds(mx, name, (M,), dt, units, chunk_rows=rows, compress=True)
        self._ds(mx, "imageIndexed", (), np.uint8)
        d = self._ds(mx, "latticeRealSpace", (3, 3), np.float32, "angstrom")
        d.attrs["description"] = "rows: real-space vectors a, b, c in the lab frame at the image (mid-angle)"
        d = self._ds(mx, "unitCell", (6,), np.float32)
        d.attrs["units"] = "angstrom, angstrom, angstrom, degree, degree, degree"
        self._ds(mx, "spotsIndexed", (), np.int32)
        for _key, (name, dt, units) in _STAT_DATASETS.items():
            self._ds(mx, name, (), dt, units)
        integ = entry.create_group("integration")
        for name in _COUNT_DATASETS.values():
            self._ds(integ, name, (), np.int32)
        self._ds(integ, "profileRadius", (), np.float32, "1/angstrom").attrs["description"] = (
            "stills: Ewald-offset cutoff R0 of the prediction (NaN for rotation data)")
        self._ds(integ, "mosaicity", (), np.float32, "degree").attrs["description"] = (
            "rotation: mosaicity (Gaussian sigma) of the partialities (NaN for stills)")
        self._ds(integ, "profileWidth", (), np.float32, "pixel").attrs["description"] = (
            "RMS radius of the learned spot profile")
        self._ds(integ, "refinedBeamX", (), np.float32, "pixel")
        self._ds(integ, "refinedBeamY", (), np.float32, "pixel")
        self._ds(integ, "refinedDistance", (), np.float32, "mm")
        self._ds(integ, "refinementRms", (), np.float32, "pixel")
        for name, units in (("pixelrefineScale", None), ("pixelrefineB", "angstrom^2"),
                            ("pixelrefineWidth", "pixel"), ("pixelrefinePartialityWidth", "1/angstrom")):
            self._ds(integ, name, (), np.float32, units)
        az = entry.create_group("azint")
        self._ds(az, "profile", (B,), np.float32, "photons/pixel", chunk_rows=max(1, min(256, (1 << 16) // B)),
                 compress=True)  # fmt: skip
        refl = entry.create_group("reflections")
        refl.attrs["description"] = ("one row per integrated observation (a reflection on one image), sorted by "
                                     "image then h, k, l; I is not divided by partiality or lp")  # fmt: skip
        for name, dt in ReflectionTable.DTYPES.items():
            self._ds(refl, name, (), dt, ReflectionTable.UNITS.get(name), chunk_rows=_REFLECTION_CHUNK,
                     compress=True)  # fmt: skip
        proc = entry.create_group("processing")
        for k, v in options.items():
            if v is None:
                continue
            proc.attrs[k] = np.asarray(v) if isinstance(v, (tuple, list)) else v

    # ------------------------------------------------------------------------------------ append
    def _fail(self, e: BaseException) -> None:
        """A write failed (e.g. a full disk): remove the temporary file and raise a one-line error. The HDF5
        file is never touched again (closing a file whose last write failed is done once, errors ignored)."""
        msg = str(e)
        if "No space left" in msg or getattr(e, "errno", None) == 28:
            why = "no space left on device"
        elif isinstance(e, OSError) and e.strerror:
            why = e.strerror
        else:
            why = msg.split("\n")[0][:200]
        self.abort()
        raise ProcessingError(f"cannot write {self.path}: {why}") from None

    def append(self, r: ImageResult) -> None:
        """Add the next image (image numbers must increase)."""
        if self._last_number is not None and r.number <= self._last_number:
            raise ValueError(f"images must be appended in increasing order ({r.number} after {self._last_number})")
        self._last_number = r.number
        self._buffer.append(r)
        if len(r.reflections):
            self._refl_buffer.append(r.reflections.sorted())
        if len(self._buffer) >= _FLUSH_IMAGES:
            try:
                self._flush()
            except (OSError, RuntimeError, ValueError) as e:
                self._fail(e)

    def _ensure_space(self, nbytes: int) -> None:
        """Refuse to hand HDF5 a write the disk cannot take: libhdf5 does not survive a full disk (its chunk
        cache fails on eviction and the process crashes), so the writer checks the free space first (the
        uncompressed size plus a margin bounds what a flush writes) and flushes after every batch."""
        import shutil

        try:
            free = shutil.disk_usage(self._tmp.parent).free
        except OSError:
            return
        if free < int(nbytes * 1.25) + _SPACE_MARGIN:
            self._fail(OSError(28, "No space left on device"))

    def _grow(self, d: h5py.Dataset, values: np.ndarray, start: int) -> None:
        d.resize(start + len(values), axis=0)
        d[start:start + len(values)] = values

    def _flush(self) -> None:
        ims = self._buffer
        need = sum(t.nbytes for t in self._refl_buffer) + len(ims) * (self.max_spots * 17 + self.n_bins * 4 + 256)
        self._ensure_space(need)
        if ims:
            f, n0, k, M = self._f, self._n, len(ims), self.max_spots
            e = f["entry"]
            put = self._grow
            put(e["image/number"], np.array([im.number for im in ims], np.int64), n0)
            put(e["image/decoded"], np.array([im.ok for im in ims], np.uint8), n0)
            put(e["image/error"], np.array([im.error or "" for im in ims], dtype=object), n0)
            mx = e["MX"]
            put(mx["nPeaks"], np.array([min(im.n_spots, M) for im in ims], np.int32), n0)
            peak_types = (("peakXPosRaw", np.float32), ("peakYPosRaw", np.float32),
                          ("peakTotalIntensity", np.float32), ("peakIndexed", np.uint8), ("peakIceRing", np.uint8))
            cols = {name: np.zeros((k, M), dt) for name, dt in peak_types}
            for i, im in enumerate(ims):
                s, m = im.spots, min(im.n_spots, M)
                cols["peakXPosRaw"][i, :m] = s.x[:m]
                cols["peakYPosRaw"][i, :m] = s.y[:m]
                cols["peakTotalIntensity"][i, :m] = s.intensity[:m]
                cols["peakIndexed"][i, :m] = s.indexed[:m]
                cols["peakIceRing"][i, :m] = s.ice_ring[:m]
            for name, v in cols.items():
                put(mx[name], v, n0)
            put(mx["imageIndexed"], np.array([im.indexed for im in ims], np.uint8), n0)
            lat = np.zeros((k, 3, 3), np.float32)
            cells = np.zeros((k, 6), np.float32)
            for i, im in enumerate(ims):
                if im.indexed and im.lattice is not None:
                    lat[i] = im.lattice
                    cells[i] = im.cell
            put(mx["latticeRealSpace"], lat, n0)
            put(mx["unitCell"], cells, n0)
            put(mx["spotsIndexed"], np.array([im.n_indexed for im in ims], np.int32), n0)
            for key, (name, dt, _units) in _STAT_DATASETS.items():
                fill = np.nan if np.issubdtype(dt, np.floating) else 0
                vals = np.array([im.stats.get(key, fill) for im in ims], dtype=np.float64)
                if fill == 0:
                    vals = np.nan_to_num(vals, nan=0)
                put(mx[name], vals.astype(dt), n0)
            ig = e["integration"]
            for key, name in _COUNT_DATASETS.items():
                put(ig[name], np.array([getattr(im.counts, key) for im in ims], np.int32), n0)
            put(ig["profileRadius"], np.array([im.profile_radius for im in ims], np.float32), n0)
            put(ig["mosaicity"], np.array([im.mosaicity for im in ims], np.float32), n0)
            put(ig["profileWidth"], np.array([im.profile_width for im in ims], np.float32), n0)
            beam = np.array([im.refined_beam if im.refined_beam is not None else (np.nan,) * 3 for im in ims],
                            np.float32).reshape(k, 3)  # fmt: skip
            put(ig["refinedBeamX"], beam[:, 0], n0)
            put(ig["refinedBeamY"], beam[:, 1], n0)
            put(ig["refinedDistance"], beam[:, 2], n0)
            put(ig["refinementRms"], np.array([im.refine_rms_px for im in ims], np.float32), n0)
            prv = np.array([im.pixelrefine if im.pixelrefine is not None else (np.nan,) * 4 for im in ims],
                           np.float32).reshape(k, 4)  # fmt: skip
            for j, name in enumerate(("pixelrefineScale", "pixelrefineB", "pixelrefineWidth",
                                      "pixelrefinePartialityWidth")):
                put(ig[name], prv[:, j], n0)
            prof = np.full((k, self.n_bins), np.nan, np.float32)
            for i, im in enumerate(ims):
                if im.profile is not None and len(im.profile) == self.n_bins:
                    prof[i] = im.profile
            put(e["azint/profile"], prof, n0)
            self._n += k
            self._buffer = []
        if self._refl_buffer:
            t = ReflectionTable.concat(self._refl_buffer)
            g = self._f["entry/reflections"]
            for name, col in t.columns().items():
                self._grow(g[name], col, self._n_refl)
            self._n_refl += len(t)
            self._refl_buffer = []
        self._f.flush()

    def read_reflections(self) -> ReflectionTable:
        """Every observation written so far (the whole table, for scaling at the end of the run)."""
        try:
            self._flush()
        except (OSError, RuntimeError, ValueError) as e:
            self._fail(e)
        g = self._f["entry/reflections"]
        return ReflectionTable(**{k: g[k][()] for k in ReflectionTable.DTYPES})

    # ------------------------------------------------------------------------------------ finish
    def finish(self, *, experiment, q: np.ndarray | None, indexing: IndexingSummary, timing: dict,
               input_experiment=None, n_angles: int = 2, scaling=None) -> Path:  # fmt: skip
        """Write the run-level groups (refined geometry, indexing, q, timing and, when merging, /entry/scaling),
        close and rename."""
        try:
            self._flush()
            mask = experiment.detector.mask
            self._ensure_space(0 if mask is None else int(np.asarray(mask).size) * 4)
            e = self._f["entry"]
            if q is not None:
                d = e["azint"].create_dataset("q", data=np.asarray(q, np.float32))
                d.attrs["units"] = "1/angstrom"
                d.attrs["description"] = "q = 2 pi / d"
            ix = e["MX"].create_group("indexing")
            s = indexing
            ix.attrs["algorithm"] = s.algorithm
            ix.attrs["backend"] = s.backend
            ix.attrs["mode"] = s.mode
            ix.attrs["integration"] = s.integration
            if s.bravais:
                ix.attrs["bravais_lattice"] = s.bravais
            if s.space_group:
                ix.attrs["space_group_number"] = int(s.space_group)
            if s.rotation_lattice is not None:
                d = ix.create_dataset("rotationLattice", data=np.asarray(s.rotation_lattice, np.float64))
                d.attrs["units"] = "angstrom"
                d.attrs["description"] = "rows a, b, c in the lab frame at omega = 0"
            if s.mosaicity_deg is not None:
                ix.attrs["mosaicity_deg"] = float(s.mosaicity_deg)
            for k, v in s.refinement.items():
                ix.attrs[f"refinement_{k}"] = v
            if s.notes:
                ix.attrs["notes"] = "\n".join(s.notes)
            write_experiment(e, experiment, n_angles=n_angles)
            if s.rotation_lattice is not None:
                ub = e["sample"].create_dataset("ub_matrix", data=np.linalg.inv(np.asarray(s.rotation_lattice, float)))
                ub.attrs["units"] = "1/angstrom"
                ub.attrs["description"] = "columns a*, b*, c* (no 2 pi) in the lab frame at omega = 0 (refined)"
            if input_experiment is not None:
                g = e.create_group("input_geometry")
                bx, by, dist = input_experiment.core.beam()
                g.attrs["beam_center_x"] = bx
                g.attrs["beam_center_y"] = by
                g.attrs["detector_distance_mm"] = dist
            if scaling is not None:
                from .scaling_h5 import write_scaling_group

                write_scaling_group(e.require_group("scaling"), scaling)
            proc = e["processing"]
            for k, v in timing.items():
                proc.attrs[f"time_{k}_s"] = float(v)
            self._f.close()
            self._f = None
            os.replace(self._tmp, self.path)
        except (OSError, RuntimeError, ValueError) as e:
            self._fail(e)
        except BaseException:
            self.abort()
            raise
        remove_stale_temporaries(self.path)
        return self.path

    def abort(self) -> None:
        """Close and remove the temporary file (nothing is left behind)."""
        f = getattr(self, "_f", None)
        self._f = None
        if f is not None:
            with contextlib.suppress(Exception):
                f.close()
        with contextlib.suppress(OSError):
            os.unlink(self._tmp)

    def __enter__(self) -> ProcessWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


def write_process_h5(path: str | os.PathLike, result: ProcessResult, *, source: str = "",
                     options: dict | None = None, max_spots: int | None = None) -> Path:  # fmt: skip
    """Write a whole :class:`ProcessResult` whose ``images`` are full :class:`ImageResult` (atomically)."""
    ims = result.images
    m = max_spots if max_spots is not None else max([im.n_spots for im in ims] + [1])
    n_bins = len(result.q) if result.q is not None else 1
    w = ProcessWriter(path, max_spots=m, n_bins=n_bins, source=source, options=options)
    with w:
        for im in ims:
            w.append(im)
        return w.finish(experiment=result.experiment, q=result.q, indexing=result.indexing, timing=result.timing)


# ---------------------------------------------------------------------------------------------- read
def read_process_h5(path: str | os.PathLike) -> ProcessResult:
    """Read a `_process.h5` back: full per-image results, the reflections and the refined experiment."""
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
        errors = [x.decode() if isinstance(x, bytes) else str(x) for x in e["image/error"][()]] \
            if "image/error" in e else [""] * len(nums)  # fmt: skip
        npk = mx["nPeaks"][()]
        px, py, pi = mx["peakXPosRaw"][()], mx["peakYPosRaw"][()], mx["peakTotalIntensity"][()]
        pidx, pice = mx["peakIndexed"][()], mx["peakIceRing"][()]
        idx = mx["imageIndexed"][()]
        lat = mx["latticeRealSpace"][()]
        cells = mx["unitCell"][()]
        stats = {k: mx[name][()] for k, (name, _, _) in _STAT_DATASETS.items() if name in mx}
        q = e["azint/q"][()] if "azint/q" in e else None
        prof = e["azint/profile"][()] if "azint/profile" in e else None
        ig = e.get("integration")
        counts = {k: ig[n][()] for k, n in _COUNT_DATASETS.items()} if ig is not None else {}
        extra = {n: ig[n][()] for n in ("profileRadius", "mosaicity", "profileWidth", "refinedBeamX", "refinedBeamY",
                                        "refinedDistance", "refinementRms")} if ig is not None else {}  # fmt: skip
        refl = None
        if "reflections" in e and "image" in e["reflections"]:
            g = e["reflections"]
            refl = ReflectionTable(**{k: g[k][()] for k in ReflectionTable.DTYPES})
        images = []
        for i, num in enumerate(nums):
            k = int(npk[i])
            spots = SpotTable(x=px[i, :k], y=py[i, :k], intensity=pi[i, :k], d=np.full(k, np.nan, np.float32),
                              ice_ring=pice[i, :k].astype(bool), indexed=pidx[i, :k].astype(bool))  # fmt: skip
            im = ImageResult(number=int(num), ok=bool(decoded[i]), error=errors[i] or None, spots=spots,
                             profile=None if prof is None else prof[i],
                             stats={key: v[i].item() for key, v in stats.items()}, indexed=bool(idx[i]))  # fmt: skip
            if counts:
                im.counts = IntegrationCounts(**{key: int(v[i]) for key, v in counts.items()})
                im.profile_radius = float(extra["profileRadius"][i])
                im.mosaicity = float(extra["mosaicity"][i])
                im.profile_width = float(extra["profileWidth"][i])
                im.refine_rms_px = float(extra["refinementRms"][i])
                if np.isfinite(extra["refinedBeamX"][i]):
                    im.refined_beam = (float(extra["refinedBeamX"][i]), float(extra["refinedBeamY"][i]),
                                       float(extra["refinedDistance"][i]))  # fmt: skip
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
            mosaicity_deg=float(ix.attrs["mosaicity_deg"]) if "mosaicity_deg" in ix.attrs else None,
        )  # fmt: skip
        ny, nx = (int(v) for v in e["instrument/detector/detector_module/data_size"][()])
        experiment = read_experiment(f, ny, nx)
    if refl is not None:
        by_image: dict[int, np.ndarray] = {}
        if len(refl):
            bounds = np.flatnonzero(np.diff(refl.image)) + 1
            starts = np.concatenate([[0], bounds])
            ends = np.concatenate([bounds, [len(refl)]])
            by_image = {int(refl.image[a]): (a, b) for a, b in zip(starts, ends)}
        for im in images:
            if im.number in by_image:
                a, b = by_image[im.number]
                im.reflections = refl.select(slice(a, b))
    return ProcessResult(experiment=experiment, images=images, q=q, indexing=summary, output_path=str(path),
                         reflections=refl)  # fmt: skip
