"""Read NXmx master files (Jungfraujoch and DECTRIS) into an ``Experiment`` plus int32 frames.

Layouts: ``/entry/data/data`` as a real dataset or a VDS; the legacy external links
``/entry/data/data_000001``, ``data_000002``, ... (image index runs across them); single files.
Bitshuffle+LZ4 / bitshuffle+Zstd chunks of one image each (HDF5 filter 32008, modes 2/3) are read raw
with ``read_direct_chunk`` under a lock and decoded by ``jfjoch._core`` with the GIL released, so several
Python threads decode in parallel; any other storage goes through h5py (+ hdf5plugin).

Pixel values are returned as int32 (ny, nx); see :func:`to_int32` and docs/io.md for the conversion rule.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (registers the HDF5 filters for the h5py fallback)
import numpy as np

from jfjoch import _core
from jfjoch.errors import CorruptFrameError, InputError
from jfjoch.experiment import Beam, Detector, Experiment, Goniometer

__all__ = ["ImageIndexError", "MissingFieldError", "NXmxDataset", "open_master", "to_int32"]

INT32_MIN = np.iinfo(np.int32).min
INT32_MAX = np.iinfo(np.int32).max
BITSHUFFLE_FILTER = 32008

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


class MissingFieldError(InputError):
    """A field the reader needs (geometry, data) is absent from the master file."""


class ImageIndexError(InputError, IndexError):
    """Image index outside [0, n_images)."""


# ---------------------------------------------------------------------------------------------- values
def _units(obj: h5py.Dataset) -> str | None:
    u = obj.attrs.get("units")
    if u is None:
        return None
    if isinstance(u, bytes):
        u = u.decode()
    return str(np.asarray(u).ravel()[0] if np.ndim(u) else u).strip()


def _scale(units: str | None, table: dict[str, float], default: str, what: str) -> float:
    key = (units or default).lower()
    if key not in table:
        raise InputError(f"{what}: unknown units '{units}'")
    return table[key]


def _length_mm(ds: h5py.Dataset, default_units: str) -> np.ndarray:
    """Dataset value in mm, honouring its ``units`` attribute (default_units when it has none)."""
    return np.asarray(ds[()], float) * _scale(_units(ds), _LENGTH_UNITS, default_units, ds.name) * 1e3


def _wavelength_A(ds: h5py.Dataset) -> float:
    return float(np.ravel(ds[()])[0]) * _scale(_units(ds), _LENGTH_UNITS, "angstrom", ds.name) * 1e10


def _angle_deg(ds: h5py.Dataset) -> np.ndarray:
    return np.atleast_1d(np.asarray(ds[()], float)) * _scale(_units(ds), _ANGLE_UNITS, "deg", ds.name)


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
    v = np.asarray(default if v is None else v, float).ravel()
    n = np.linalg.norm(v)
    if v.size != 3 or n == 0:
        raise InputError(f"{ds.name}: invalid 'vector' attribute")
    return v / n


def _text(ds: h5py.Dataset) -> str:
    v = ds[()]
    if isinstance(v, np.ndarray):
        v = v.ravel()[0]
    return v.decode() if isinstance(v, bytes) else str(v)


# ------------------------------------------------------------------------------------------ conversion
def default_saturation(dtype: np.dtype) -> int:
    """Saturation count implied by the pixel type when the file states none."""
    dt = np.dtype(dtype)
    return {
        np.dtype(np.int16): 32767,
        np.dtype(np.uint16): 65534,
        np.dtype(np.uint8): 254,
        np.dtype(np.int8): 127,
    }.get(dt, INT32_MAX)


def to_int32(frame: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Convert a raw frame to int32 following the reader's rule (docs/io.md).

    An int32 frame is returned as is (no copy) unless ``out`` is given.

    * signed types: the type's minimum (INT16_MIN, INT32_MIN, ...) marks an error/invalid pixel -> INT32_MIN;
      other values are kept (so INT16_MAX = 32767 stays >= the int16 saturation level);
    * unsigned types: the type's maximum (0xFFFF, 0xFFFFFFFF) marks an error/invalid pixel -> INT32_MIN;
      uint32 values above INT32_MAX are clipped to INT32_MAX (saturated).
    """
    a = np.asarray(frame)
    dt = a.dtype
    if dt == np.int32 and out is None:
        return a  # nothing to convert: no copy
    if out is None:
        out = np.empty(a.shape, np.int32)
    if dt == np.int32:
        np.copyto(out, a)
        return out
    if dt.kind == "i":
        np.copyto(out, a, casting="unsafe")
        out[a == np.iinfo(dt).min] = INT32_MIN
    elif dt.kind == "u":
        info = np.iinfo(dt)
        if dt.itemsize >= 4:
            np.copyto(out, np.minimum(a, INT32_MAX), casting="unsafe")
        else:
            np.copyto(out, a, casting="unsafe")
        out[a == info.max] = INT32_MIN
    else:
        raise InputError(f"unsupported pixel type {dt}")
    return out


# ----------------------------------------------------------------------------------------------- data
@dataclass
class _Segment:
    """A run of consecutive images stored in one HDF5 dataset."""

    dset: h5py.Dataset
    first: int  # global index of its first image
    count: int
    offset: int  # index of that image inside dset
    codec: int | None  # 2 (LZ4) / 3 (Zstd) when chunks can be decoded raw, else None (h5py)


def _raw_codec(dset: h5py.Dataset) -> int | None:
    """Bitshuffle mode (2, 3) when every chunk is one bitshuffle-compressed image, else None."""
    if dset.is_virtual or dset.chunks is None or dset.ndim != 3:
        return None
    if tuple(dset.chunks) != (1, *dset.shape[1:]):
        return None
    plist = dset.id.get_create_plist()
    if plist.get_nfilters() != 1:
        return None
    fid, _flags, cd, _name = plist.get_filter(0)
    if fid != BITSHUFFLE_FILTER or len(cd) < 5 or cd[4] not in (2, 3):
        return None
    if dset.dtype.itemsize not in (1, 2, 4, 8) or dset.dtype.kind not in "iu":
        return None
    return int(cd[4])


def _segment(dset: h5py.Dataset, first: int, count: int, offset: int) -> _Segment:
    return _Segment(dset, first, count, offset, _raw_codec(dset))


def _select_bounds(space: h5py.h5s.SpaceID, shape: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """(start, end) corners of a selection; 'all' selections cover the whole extent (shape)."""
    if space.get_select_type() == h5py.h5s.SEL_ALL:
        return tuple(0 for _ in shape), tuple(n - 1 for n in shape)
    return space.get_select_bounds()


def _vds_segments(master: h5py.File, vds: h5py.Dataset) -> list[_Segment] | None:
    """Resolve a VDS into its source datasets (None when it cannot be mapped image by image)."""
    base = Path(master.filename).parent
    segs = []
    files: dict[str, h5py.File] = {}
    try:
        for vs in vds.virtual_sources():
            (v0, *vrest), (v1, *_) = _select_bounds(vs.vspace, vds.shape)
            src_name = master.filename if vs.file_name == "." else str(base / vs.file_name)
            if not Path(src_name).exists():
                raise InputError(f"{master.filename}: VDS source file '{vs.file_name}' is missing")
            if src_name not in files:
                files[src_name] = master if vs.file_name == "." else h5py.File(src_name, "r")
            src = files[src_name][vs.dset_name]
            (s0, *srest), (s1, *_) = _select_bounds(vs.src_space, src.shape)
            if list(vrest) != [0, 0] or list(srest) != [0, 0] or (v1 - v0) != (s1 - s0):
                return None
            if src.ndim != 3 or src.shape[1:] != vds.shape[1:]:
                return None
            if vs.vspace.get_select_npoints() != (v1 - v0 + 1) * int(np.prod(vds.shape[1:])):
                return None
            segs.append(_segment(src, int(v0), int(v1 - v0 + 1), int(s0)))
    except (OSError, KeyError, ValueError):
        return None
    segs.sort(key=lambda s: s.first)
    pos = 0
    for s in segs:
        if s.first != pos:
            return None
        pos += s.count
    if pos != vds.shape[0]:
        return None
    return segs


def _find_segments(f: h5py.File) -> list[_Segment]:
    data = f.get("/entry/data")
    if not isinstance(data, h5py.Group):
        raise MissingFieldError(f"{f.filename}: no NXmx image data (missing /entry/data)")
    if "data" in data:
        try:
            dset = data["data"]
        except KeyError as e:
            raise InputError(f"{f.filename}: /entry/data/data points to a missing file or dataset") from e
        if not isinstance(dset, h5py.Dataset) or dset.ndim != 3:
            raise InputError(f"{f.filename}: /entry/data/data is not an (N, ny, nx) image stack")
        if dset.is_virtual:
            segs = _vds_segments(f, dset)
            if segs is not None:
                return segs
            return [_Segment(dset, 0, dset.shape[0], 0, None)]
        return [_segment(dset, 0, dset.shape[0], 0)]
    keys = sorted(k for k in data if k.startswith("data_") and k[5:].isdigit())
    if not keys:
        raise MissingFieldError(
            f"{f.filename}: no NXmx image data (/entry/data/data or /entry/data/data_NNNNNN)"
        )
    segs, pos = [], 0
    for k in keys:
        try:
            dset = data[k]
        except KeyError as e:
            link = data.get(k, getlink=True)
            target = getattr(link, "filename", k)
            raise InputError(f"{f.filename}: data file '{target}' of /entry/data/{k} is missing") from e
        if not isinstance(dset, h5py.Dataset) or dset.ndim != 3:
            raise InputError(f"{f.filename}: /entry/data/{k} is not an (N, ny, nx) image stack")
        segs.append(_segment(dset, pos, dset.shape[0], 0))
        pos += dset.shape[0]
    return segs


# ------------------------------------------------------------------------------------------- geometry
def _read_experiment(f: h5py.File, ny: int, nx: int, dtype: np.dtype) -> Experiment:
    wl_paths = (
        "/entry/instrument/beam/incident_wavelength",
        "/entry/instrument/monochromator/wavelength",
        "/entry/instrument/beam/wavelength",
    )
    wl = _require(f, wl_paths, "incident_wavelength")
    wavelength = _wavelength_A(wl)
    px = _require(f, (f"{_DET}/x_pixel_size",), "x_pixel_size")
    pixel_mm = float(np.ravel(_length_mm(px, "m"))[0])
    py_ = _first(f, (f"{_DET}/y_pixel_size",))
    if py_ is not None and not np.isclose(float(np.ravel(_length_mm(py_, "m"))[0]), pixel_mm, rtol=1e-6):
        raise InputError(f"{f.filename}: non-square pixels are not supported")
    dist = _require(f, (f"{_DET}/detector_distance", f"{_DET}/distance"), "detector_distance")
    distance_mm = float(np.ravel(_length_mm(dist, "m"))[0])
    bx = float(np.ravel(_require(f, (f"{_DET}/beam_center_x",), "beam_center_x")[()])[0])
    by = float(np.ravel(_require(f, (f"{_DET}/beam_center_y",), "beam_center_y")[()])[0])
    for name in ("beam_center_x", "beam_center_y"):
        ds = f[f"{_DET}/{name}"]
        u = (_units(ds) or "pixel").lower()
        if u not in ("pixel", "pixels", "px"):
            # a beam centre given as a length: convert to pixels
            scale = _scale(u, _LENGTH_UNITS, "m", ds.name) * 1e3 / pixel_mm
            if name == "beam_center_x":
                bx *= scale
            else:
                by *= scale
    fast = _vector_attr(_first(f, (f"{_DET}/detector_module/fast_pixel_direction",
                                   f"{_DET}/module/fast_pixel_direction")), (1.0, 0.0, 0.0))  # fmt: skip
    slow = _vector_attr(_first(f, (f"{_DET}/detector_module/slow_pixel_direction",
                                   f"{_DET}/module/slow_pixel_direction")), (0.0, 1.0, 0.0))  # fmt: skip
    origin = np.array([0.0, 0.0, distance_mm]) - (bx * fast + by * slow) * pixel_mm

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
    saturation = default_saturation(dtype)
    if sat_ds is not None:
        saturation = int(min(int(np.ravel(sat_ds[()])[0]), saturation))
    extra = {}
    mat = _first(f, (f"{_DET}/sensor_material",))
    if mat is not None:
        extra["sensor_material"] = _text(mat)
    th = _first(f, (f"{_DET}/sensor_thickness",))
    if th is not None:
        extra["sensor_thickness_mm"] = float(np.ravel(_length_mm(th, "m"))[0])
    detector = Detector(nx=nx, ny=ny, pixel_mm=pixel_mm, origin_mm=origin, fast=fast, slow=slow, mask=mask,
                        saturation=saturation, **extra)  # fmt: skip
    return Experiment(beam=Beam(wavelength_A=wavelength), detector=detector, goniometer=_goniometer(f),
                      unit_cell=_unit_cell(f), space_group=_space_group(f))  # fmt: skip


def _goniometer(f: h5py.File) -> Goniometer | None:
    om = _first(f, ("/entry/sample/transformations/omega", "/entry/sample/goniometer/omega"))
    if om is None:
        return None
    angles = _angle_deg(om)
    if np.unique(angles).size < 2:
        return None
    inc_paths = (
        f"{om.parent.name}/omega_increment_set",
        "/entry/sample/goniometer/omega_increment_set",
        "/entry/sample/goniometer/omega_range_average",
    )
    inc_ds = _first(f, inc_paths)
    increment = float(_angle_deg(inc_ds)[0]) if inc_ds is not None else float(angles[1] - angles[0])
    axis = _vector_attr(om, (1.0, 0.0, 0.0))
    return Goniometer(axis=axis, start_deg=float(angles[0]), increment_deg=increment)


def _unit_cell(f: h5py.File) -> tuple[float, ...] | None:
    uc = _first(f, ("/entry/sample/unit_cell", "/entry/sample/sample/unit_cell"))
    if uc is None:
        return None
    v = np.asarray(uc[()], float).ravel()
    if v.size != 6:
        raise InputError(f"{f.filename}: {uc.name} must hold 6 numbers")
    return tuple(float(x) for x in v)


def _space_group(f: h5py.File) -> int | None:
    sg = _first(f, ("/entry/sample/space_group", "/entry/sample/space_group_number"))
    if sg is None:
        return None
    v = sg[()]
    if isinstance(v, np.ndarray):
        v = v.ravel()[0]
    if isinstance(v, (bytes, str)):
        s = v.decode() if isinstance(v, bytes) else v
        if s.strip().isdigit():
            return int(s)
        import gemmi

        g = gemmi.find_spacegroup_by_name(s.strip())
        if g is None:
            raise InputError(f"{f.filename}: unknown space group '{s}'")
        return int(g.number)
    return int(v)


# -------------------------------------------------------------------------------------------- dataset
class NXmxDataset:
    """An open NXmx master file; use as a context manager. ``read_image`` is thread-safe."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        if not self.path.exists():
            raise InputError(f"file not found: {self.path}")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as e:
            raise InputError(f"{self.path}: not a readable HDF5 file") from e
        try:
            self._segments = _find_segments(self._file)
            first = self._segments[0].dset
            self.n_images = sum(s.count for s in self._segments)
            self.ny, self.nx = (int(x) for x in first.shape[1:])
            self.dtype = np.dtype(first.dtype)
            for s in self._segments:
                if s.dset.shape[1:] != first.shape[1:]:
                    raise InputError(f"{self.path}: data blocks have different image sizes")
            self.image_numbers = np.arange(self.n_images, dtype=np.int64)
            self.experiment = _read_experiment(self._file, self.ny, self.nx, self.dtype)
        except Exception:
            self._file.close()
            raise

    # context manager
    def __enter__(self) -> NXmxDataset:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def __len__(self) -> int:
        return self.n_images

    def _locate(self, i: int) -> tuple[_Segment, int]:
        if not (isinstance(i, (int, np.integer)) and 0 <= i < self.n_images):
            raise ImageIndexError(f"image index {i} out of range [0, {self.n_images})")
        for s in self._segments:
            if i < s.first + s.count:
                return s, s.offset + (int(i) - s.first)
        raise ImageIndexError(f"image index {i} out of range [0, {self.n_images})")  # pragma: no cover

    def read_raw(self, i: int, out: np.ndarray | None = None) -> np.ndarray:
        """Image i in its stored pixel type, shape (ny, nx); decoded into ``out`` when given (same dtype)."""
        seg, k = self._locate(i)
        if out is not None and (out.shape != (self.ny, self.nx) or out.dtype != seg.dset.dtype
                                or not out.flags.c_contiguous):  # fmt: skip
            raise ValueError(f"out must be C-contiguous {seg.dset.dtype} of shape {(self.ny, self.nx)}")
        if seg.codec is not None:
            with self._lock:
                try:
                    mask, chunk = seg.dset.id.read_direct_chunk((k, 0, 0))
                except (OSError, KeyError, ValueError) as e:
                    raise CorruptFrameError(f"image {i}: cannot read its chunk ({e})") from e
            if out is None:
                out = np.empty((self.ny, self.nx), seg.dset.dtype)
            if mask & 1:  # the filter was skipped for this chunk: stored as is
                if len(chunk) != out.nbytes:
                    raise CorruptFrameError(f"image {i}: unfiltered chunk has {len(chunk)} bytes")
                out[...] = np.frombuffer(chunk, out.dtype).reshape(out.shape)
                return out
            try:
                _core.bitshuffle_decompress(chunk, out, seg.codec)
            except ValueError as e:
                raise CorruptFrameError(f"image {i}: corrupt chunk: {e}") from e
            return out
        with self._lock:
            try:
                if out is None:
                    return np.asarray(seg.dset[k])
                seg.dset.read_direct(out, np.s_[k])
                return out
            except (OSError, ValueError) as e:
                raise CorruptFrameError(f"image {i}: cannot decode ({e})") from e

    def read_image(self, i: int, out: np.ndarray | None = None) -> np.ndarray:
        """Image i as int32 (ny, nx): invalid/error pixels INT32_MIN, saturated >= detector.saturation.

        ``out``: optional C-contiguous int32 (ny, nx) buffer to fill (saves a 4 bytes/pixel allocation).
        """
        if out is not None and (out.dtype != np.int32 or out.shape != (self.ny, self.nx)):
            raise ValueError(f"out must be an int32 array of shape {(self.ny, self.nx)}")
        seg, _ = self._locate(i)
        if seg.dset.dtype == np.int32:
            return self.read_raw(i, out)
        return to_int32(self.read_raw(i), out)

    def stored_spots(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Spots stored in the master (CXI /entry/MX/nPeaks...): (x, y, intensity) in pixels, or None."""
        self._locate(i)
        with self._lock:
            mx = self._file.get("/entry/MX")
            if not isinstance(mx, h5py.Group) or "nPeaks" not in mx:
                return None
            try:
                n = int(mx["nPeaks"][i])
                x = np.asarray(mx["peakXPosRaw"][i, :n], float)
                y = np.asarray(mx["peakYPosRaw"][i, :n], float)
                inten = np.asarray(mx["peakTotalIntensity"][i, :n], float) if "peakTotalIntensity" in mx \
                    else np.zeros(n)  # fmt: skip
            except (KeyError, IndexError, ValueError) as e:
                raise InputError(f"{self.path}: malformed /entry/MX spot tables ({e})") from e
        return x, y, inten


def open_master(path: str | Path) -> NXmxDataset:
    """Open a Jungfraujoch or DECTRIS NXmx master file (see the module docstring)."""
    return NXmxDataset(path)
