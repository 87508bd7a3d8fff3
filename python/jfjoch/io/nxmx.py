"""Read NXmx master files: Jungfraujoch (VDS, legacy external links, single file) and DECTRIS Eiger.

`open_master(path)` returns an :class:`NXmxDataset` with the experiment geometry and a thread-safe
`read_image(i)`. Frames compressed with the bitshuffle filter (HDF5 filter 32008, LZ4 or Zstd) are read
as raw chunks (`read_direct_chunk`, under a lock: HDF5 is not thread-safe) and decoded in C++ with the
GIL released, so several threads decode in parallel; other layouts go through h5py's filter pipeline.

Pixel values are returned as int32 (see docs/io.md): error/invalid values (the minimum of a signed
type, the maximum of an unsigned one) become INT32_MIN; the maximum of a signed type means saturated and
is kept at or above `detector.saturation`.
"""

from __future__ import annotations

import threading
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (registers the bitshuffle/LZ4/Zstd filters with HDF5)
import numpy as np

from ..errors import CorruptFrameError, InputError
from ..experiment import Beam, Detector, Experiment, Goniometer

__all__ = ["INT32_ERROR", "NXmxDataset", "open_master", "to_int32"]

INT32_ERROR = np.iinfo(np.int32).min
BITSHUFFLE_FILTER = 32008

_LENGTH_TO_MM = {"m": 1e3, "meter": 1e3, "metre": 1e3, "mm": 1.0, "millimeter": 1.0, "um": 1e-3,
                 "micron": 1e-3, "micrometer": 1e-3, "cm": 10.0, "nm": 1e-6}
_WAVELENGTH_TO_A = {"angstrom": 1.0, "a": 1.0, "å": 1.0, "nm": 10.0, "m": 1e10, "pm": 0.01}
_ANGLE_TO_DEG = {"deg": 1.0, "degree": 1.0, "degrees": 1.0, "rad": 180.0 / np.pi, "radian": 180.0 / np.pi,
                 "radians": 180.0 / np.pi}


def open_master(path: str | Path) -> NXmxDataset:
    """Open an NXmx master file (raises InputError with a one-line message when it cannot)."""
    return NXmxDataset(path)


def _units(ds: h5py.Dataset) -> str | None:
    u = ds.attrs.get("units")
    if u is None:
        return None
    if isinstance(u, bytes):
        u = u.decode()
    return str(u).strip().lower()


def _scalar(f: h5py.File, paths: list[str], table: dict[str, float] | None, default_unit: str | None,
            what: str, required: bool = True) -> float | None:
    for p in paths:
        if p in f:
            ds = f[p]
            v = float(np.ravel(ds[()])[0])
            if table is None:
                return v
            unit = _units(ds) or default_unit
            if unit not in table:
                raise InputError(f"{f.filename}: {p} has unknown units {unit!r}")
            return v * table[unit]
    if required:
        raise InputError(f"{f.filename}: missing geometry: {what} (looked for {', '.join(paths)})")
    return None


def _vector_attr(ds: h5py.Dataset | None, default) -> np.ndarray:
    if ds is None or "vector" not in ds.attrs:
        return np.asarray(default, float)
    v = np.asarray(ds.attrs["vector"], float).ravel()
    n = np.linalg.norm(v)
    return v / n if n > 0 else np.asarray(default, float)


def to_int32(frame: np.ndarray) -> np.ndarray:
    """Convert a frame to int32 with the error/saturation rules of the module docstring."""
    dt = frame.dtype
    if dt == np.int32:
        return frame
    if dt == np.int16 or dt == np.int8:
        out = frame.astype(np.int32)
        out[frame == np.iinfo(dt).min] = INT32_ERROR
        return out
    if dt in (np.uint8, np.uint16):
        out = frame.astype(np.int32)
        out[frame == np.iinfo(dt).max] = INT32_ERROR
        return out
    if dt in (np.uint32, np.uint64, np.int64):
        big = frame > np.iinfo(np.int32).max - 1
        out = np.minimum(frame, np.iinfo(np.int32).max - 1).astype(np.int32)
        if dt != np.int64:
            out[frame == np.iinfo(dt).max] = INT32_ERROR
            big &= frame != np.iinfo(dt).max
        out[big] = np.iinfo(np.int32).max
        return out
    if np.issubdtype(dt, np.floating):
        out = np.nan_to_num(frame, nan=INT32_ERROR).clip(INT32_ERROR, np.iinfo(np.int32).max).astype(np.int32)
        return out
    raise InputError(f"unsupported pixel type {dt}")


def _default_saturation(dt: np.dtype) -> int:
    if dt == np.int16:
        return int(np.iinfo(np.int16).max)
    if dt in (np.uint8, np.uint16):
        return int(np.iinfo(dt).max) - 1
    return int(np.iinfo(np.int32).max)


class _Source:
    """One HDF5 dataset of frames (N, ny, nx) and whether its chunks can be decoded in C++."""

    def __init__(self, ds: h5py.Dataset):
        self.ds = ds
        self.n = int(ds.shape[0])
        self.dtype = ds.dtype
        self.direct = False
        self.codec_mode = None
        try:
            plist = ds.id.get_create_plist()
            nfilt = plist.get_nfilters()
            filters = [plist.get_filter(k) for k in range(nfilt)]
        except Exception:  # VDS or unusual layouts: use h5py
            filters = []
        if (
            ds.chunks is not None
            and ds.chunks[0] == 1
            and tuple(ds.chunks[1:]) == tuple(ds.shape[1:])
            and len(filters) == 1
            and filters[0][0] == BITSHUFFLE_FILTER
            and not ds.is_virtual
        ):
            self.direct = True


class NXmxDataset:
    """An opened NXmx master file. Use as a context manager; `read_image` is thread-safe."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(f"{self.path}: no such file")
        if self.path.is_dir():
            raise InputError(f"{self.path}: is a directory, not an HDF5 master file")
        try:
            ok = h5py.is_hdf5(self.path)
        except OSError as e:
            raise InputError(f"{self.path}: cannot read: {e}") from None
        if not ok:
            raise InputError(f"{self.path}: not an HDF5 file")
        try:
            self._f = h5py.File(self.path, "r")
        except OSError as e:
            raise InputError(f"{self.path}: cannot open HDF5 file: {e}") from None
        self._lock = threading.Lock()
        try:
            self._sources = self._find_sources()
            self.n_images = sum(s.n for s in self._sources)
            self._offsets = np.cumsum([0] + [s.n for s in self._sources])
            first = self._sources[0].ds
            self.dtype = first.dtype
            self.image_shape = tuple(int(v) for v in first.shape[1:])
            self.experiment = self._read_experiment()
        except BaseException:
            self._f.close()
            raise
        try:
            from .. import _core

            self._decompress = getattr(_core, "bitshuffle_decompress", None)
        except ImportError:  # pragma: no cover
            self._decompress = None

    # -- context manager -------------------------------------------------------------------------
    def __enter__(self) -> NXmxDataset:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._f.close()

    @property
    def image_numbers(self) -> np.ndarray:
        return np.arange(self.n_images)

    # -- layout ------------------------------------------------------------------------------------
    def _find_sources(self) -> list[_Source]:
        f = self._f
        if "entry" not in f:
            raise InputError(f"{self.path}: not an NXmx file (no /entry)")
        data = f.get("entry/data")
        if data is None:
            raise InputError(f"{self.path}: no NXmx image data (/entry/data missing)")
        if "data" in data and isinstance(data.get("data", getlink=False), h5py.Dataset):
            return [self._source(data, "data")]
        names = sorted(k for k in data if k.startswith("data_") and k[5:].isdigit())
        if not names:
            raise InputError(f"{self.path}: no NXmx image data (/entry/data/data or /entry/data/data_NNNNNN)")
        return [self._source(data, k) for k in names]

    def _source(self, group: h5py.Group, name: str) -> _Source:
        try:
            ds = group[name]
        except KeyError:
            link = group.get(name, getlink=True)
            target = getattr(link, "filename", name)
            raise InputError(f"{self.path}: image data file {target} is missing") from None
        except OSError as e:
            raise InputError(f"{self.path}: cannot open image data {name}: {e}") from None
        if not isinstance(ds, h5py.Dataset) or ds.ndim != 3:
            raise InputError(f"{self.path}: /entry/data/{name} is not an (N, ny, nx) image stack")
        return _Source(ds)

    # -- geometry ----------------------------------------------------------------------------------
    def _read_experiment(self) -> Experiment:
        f = self._f
        det = "/entry/instrument/detector"
        ny, nx = self.image_shape
        wl = _scalar(f, ["/entry/instrument/beam/incident_wavelength", "/entry/instrument/monochromator/wavelength",
                         "/entry/instrument/beam/wavelength"], _WAVELENGTH_TO_A, "angstrom", "wavelength")
        bx = _scalar(f, [f"{det}/beam_center_x"], None, None, "beam_center_x")
        by = _scalar(f, [f"{det}/beam_center_y"], None, None, "beam_center_y")
        dist = _scalar(f, [f"{det}/detector_distance", f"{det}/distance"], _LENGTH_TO_MM, "m", "detector_distance")
        px = _scalar(f, [f"{det}/x_pixel_size"], _LENGTH_TO_MM, "m", "x_pixel_size")
        py = _scalar(f, [f"{det}/y_pixel_size"], _LENGTH_TO_MM, "m", "y_pixel_size", required=False) or px
        if not (wl > 0 and dist > 0 and px > 0):
            raise InputError(f"{self.path}: wavelength, distance and pixel size must be positive")
        if abs(py - px) > 1e-6 * px:
            raise InputError(f"{self.path}: non-square pixels ({px} x {py} mm) are not supported")
        fast_ds = self._first([f"{det}/detector_module/fast_pixel_direction", f"{det}/module/fast_pixel_direction"])
        slow_ds = self._first([f"{det}/detector_module/slow_pixel_direction", f"{det}/module/slow_pixel_direction"])
        fast = _vector_attr(fast_ds, [1.0, 0.0, 0.0])
        slow = _vector_attr(slow_ds, [0.0, 1.0, 0.0])
        # The beam (+z) meets the detector at the beam centre; the plane sits at `dist` along +z.
        origin = np.array([0.0, 0.0, dist]) - (bx * fast + by * slow) * px
        mask_ds = self._first([f"{det}/detectorSpecific/pixel_mask", f"{det}/pixel_mask"])
        mask = None
        if mask_ds is not None:
            m = np.asarray(mask_ds[()])
            if m.shape == (ny, nx):
                mask = m != 0
        sat = _scalar(f, [f"{det}/saturation_value", f"{det}/detectorSpecific/countrate_correction_count_cutoff"],
                      None, None, "saturation", required=False)
        saturation = int(sat) if sat is not None and sat > 0 else _default_saturation(self.dtype)
        if self.dtype == np.int16:
            saturation = min(saturation, int(np.iinfo(np.int16).max))
        detector = Detector(nx=nx, ny=ny, pixel_mm=px, origin_mm=origin, fast=fast, slow=slow, mask=mask,
                            saturation=saturation)
        return Experiment(beam=Beam(wavelength_A=wl), detector=detector, goniometer=self._goniometer(),
                          unit_cell=self._cell(), space_group=self._space_group())

    def _first(self, paths: list[str]) -> h5py.Dataset | None:
        for p in paths:
            if p in self._f and isinstance(self._f[p], h5py.Dataset):
                return self._f[p]
        return None

    def _goniometer(self) -> Goniometer | None:
        ds = self._first(["/entry/sample/transformations/omega", "/entry/sample/goniometer/omega"])
        if ds is None:
            return None
        scale = _ANGLE_TO_DEG.get(_units(ds) or "deg")
        if scale is None:
            raise InputError(f"{self.path}: omega has unknown units {_units(ds)!r}")
        w = np.ravel(ds[()]).astype(float) * scale
        inc = None
        for p in ("/entry/sample/transformations/omega_increment_set", "/entry/sample/goniometer/omega_increment"):
            if p in self._f:
                inc = float(np.ravel(self._f[p][()])[0]) * _ANGLE_TO_DEG.get(_units(self._f[p]) or "deg", 1.0)
        if inc is None and len(w) > 1:
            inc = float(w[1] - w[0])
        if inc is None or abs(inc) < 1e-9:
            return None
        axis = _vector_attr(ds, [1.0, 0.0, 0.0])
        return Goniometer(axis=axis, start_deg=float(w[0]), increment_deg=inc)

    def _cell(self) -> tuple[float, ...] | None:
        ds = self._first(["/entry/sample/unit_cell"])
        if ds is None:
            return None
        v = np.ravel(ds[()]).astype(float)
        if len(v) != 6 or not np.all(np.isfinite(v)) or np.any(v[:3] <= 0):
            return None
        return tuple(float(x) for x in v)

    def _space_group(self) -> int | None:
        ds = self._first(["/entry/sample/space_group", "/entry/sample/space_group_number"])
        if ds is None:
            return None
        v = ds[()]
        if isinstance(v, bytes):
            v = v.decode()
        if isinstance(v, str):
            import gemmi

            sg = gemmi.find_spacegroup_by_name(v.strip())
            if sg is None and v.strip().isdigit():
                sg = gemmi.find_spacegroup_by_number(int(v))
            return int(sg.number) if sg is not None else None
        n = int(np.ravel(v)[0])
        return n if 1 <= n <= 230 else None

    # -- frames --------------------------------------------------------------------------------------
    def _locate(self, i: int) -> tuple[_Source, int]:
        if not 0 <= i < self.n_images:
            raise InputError(f"image {i} is out of range: the file has {self.n_images} images")
        k = int(np.searchsorted(self._offsets, i, side="right") - 1)
        return self._sources[k], i - int(self._offsets[k])

    def read_image(self, i: int) -> np.ndarray:
        """Image i as an (ny, nx) int32 array (error pixels INT32_MIN). Thread-safe.

        Raises CorruptFrameError when the frame cannot be decoded.
        """
        src, j = self._locate(int(i))
        if src.direct and self._decompress is not None:
            with self._lock:
                try:
                    _, chunk = src.ds.id.read_direct_chunk((j, 0, 0))
                except Exception as e:
                    raise CorruptFrameError(f"image {i}: cannot read its chunk: {e}") from None
            out = np.empty(self.image_shape, dtype=src.dtype)
            try:
                self._decompress(chunk, out)
            except Exception as e:
                raise CorruptFrameError(f"image {i}: corrupt compressed chunk: {e}") from None
            return to_int32(out)
        with self._lock:
            try:
                frame = src.ds[j]
            except Exception as e:
                raise CorruptFrameError(f"image {i}: cannot decode: {e}") from None
        return to_int32(np.asarray(frame))

    def stored_spots(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Spots stored in the master file for image i (CXI-style /entry/MX tables), or None."""
        f = self._f
        if "/entry/MX/nPeaks" not in f or "/entry/MX/peakXPosRaw" not in f:
            return None
        with self._lock:
            n = int(f["/entry/MX/nPeaks"][i])
            x = f["/entry/MX/peakXPosRaw"][i, :n].astype(float)
            y = f["/entry/MX/peakYPosRaw"][i, :n].astype(float)
            inten = f["/entry/MX/peakTotalIntensity"][i, :n].astype(float) if "/entry/MX/peakTotalIntensity" in f \
                else np.zeros(n)
        return x, y, inten
