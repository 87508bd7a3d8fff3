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
from jfjoch.io.nxmx_geometry import MissingFieldError, default_saturation, read_experiment  # noqa: F401  (re-export)

__all__ = ["ImageIndexError", "MissingFieldError", "NXmxDataset", "RawChunk", "open_master", "to_int32"]

INT32_MIN = np.iinfo(np.int32).min
INT32_MAX = np.iinfo(np.int32).max
BITSHUFFLE_FILTER = 32008

@dataclass(frozen=True)
class RawChunk:
    """One image as stored: a bitshuffle chunk (HDF5 filter 32008) and how to read it."""

    data: bytes
    """The chunk, as ``read_direct_chunk`` returns it."""
    codec: int
    """Bitshuffle mode: 2 (LZ4) or 3 (Zstd)."""
    dtype: str
    """Stored pixel type: int8, uint8, int16, uint16, int32 or uint32."""


class ImageIndexError(InputError, IndexError):
    """Image index outside [0, n_images)."""


# ---------------------------------------------------------------------------------------------- values
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
        if dt.itemsize > 4:  # int64: clip rather than wrap (values beyond INT32_MAX are saturated)
            np.copyto(out, np.clip(a, INT32_MIN, INT32_MAX), casting="unsafe")
        else:
            np.copyto(out, a, casting="unsafe")
        out[a <= INT32_MIN if dt.itemsize > 4 else a == np.iinfo(dt).min] = INT32_MIN
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
                try:
                    files[src_name] = master if vs.file_name == "." else h5py.File(src_name, "r")
                except OSError:
                    # read through the VDS, an unreadable source would give fill values (zeros) silently
                    why = _file_problem(master, src_name)
                    raise InputError(f"{master.filename}: VDS source file '{vs.file_name}' {why}") from None
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


def _file_problem(master: h5py.File, file_name: str, dset_name: str | None = None) -> str:
    """Why the linked file ``file_name`` (relative to the master's folder) or its dataset cannot be opened: a
    short phrase ('is missing', 'is truncated (... of ... bytes)', ...) for the one-line error."""
    import re

    path = Path(file_name)
    if not path.is_absolute():
        path = Path(master.filename).parent / path
    if not path.exists():
        return "is missing"
    try:
        with h5py.File(path, "r") as g:
            if dset_name is not None and not isinstance(g.get(dset_name), h5py.Dataset):
                return f"has no dataset {dset_name}"
    except OSError as e:
        m = re.search(r"truncated file: eof = (\d+).*stored_eof = (\d+)", str(e))
        if m:
            return f"is truncated ({int(m.group(1))} of {int(m.group(2))} bytes)"
        return "is not a readable HDF5 file"
    return "cannot be opened"


def _find_segments(f: h5py.File) -> list[_Segment]:
    data = f.get("/entry/data")
    if not isinstance(data, h5py.Group):
        raise MissingFieldError(f"{f.filename}: no NXmx image data (missing /entry/data)")
    if "data" in data:
        try:
            dset = data["data"]
        except KeyError as e:
            link = data.get("data", getlink=True)
            if isinstance(link, h5py.ExternalLink):
                why = _file_problem(f, link.filename, link.path)
                raise InputError(f"{f.filename}: data file '{link.filename}' of /entry/data/data {why}") from e
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
            if isinstance(link, h5py.ExternalLink):
                why = _file_problem(f, link.filename, link.path)
                raise InputError(f"{f.filename}: data file '{link.filename}' of /entry/data/{k} {why}") from e
            raise InputError(f"{f.filename}: /entry/data/{k} points to a missing dataset") from e
        if not isinstance(dset, h5py.Dataset) or dset.ndim != 3:
            raise InputError(f"{f.filename}: /entry/data/{k} is not an (N, ny, nx) image stack")
        segs.append(_segment(dset, pos, dset.shape[0], 0))
        pos += dset.shape[0]
    return segs


# ------------------------------------------------------------------------------------------- geometry
# -------------------------------------------------------------------------------------------- dataset
class NXmxDataset:
    """An open NXmx master file; use as a context manager. ``read_image`` is thread-safe."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        if not self.path.exists():
            raise InputError(f"file not found: {self.path}")
        if self.path.is_dir():
            raise InputError(f"{self.path}: is a directory, not an NXmx master file")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as e:
            import re

            m = re.search(r"truncated file: eof = (\d+).*stored_eof = (\d+)", str(e))
            why = f"truncated ({int(m.group(1))} of {int(m.group(2))} bytes)" if m else "not a readable HDF5 file"
            raise InputError(f"{self.path}: {why}") from e
        try:
            self._segments = _find_segments(self._file)
            first = self._segments[0].dset
            self.n_images = sum(s.count for s in self._segments)
            self.ny, self.nx = (int(x) for x in first.shape[1:])
            self.dtype = np.dtype(first.dtype)
            for s in self._segments:
                if s.dset.shape[1:] != first.shape[1:]:
                    raise InputError(f"{self.path}: data blocks have different image sizes")
                if s.dset.dtype.kind not in "iu" or s.dset.dtype.itemsize > 8:
                    raise InputError(f"{self.path}: {s.dset.name} holds {s.dset.dtype} pixels; "
                                     "integer pixels (int8 ... int64, uint8 ... uint64) are expected")  # fmt: skip
            if self.n_images == 0:
                raise InputError(f"{self.path}: {first.name} holds no images")
            if self.ny < 1 or self.nx < 1:
                raise InputError(f"{self.path}: {first.name} has empty images ({self.ny} x {self.nx} pixels)")
            self.image_numbers = np.arange(self.n_images, dtype=np.int64)
            self.experiment = read_experiment(self._file, self.ny, self.nx, self.dtype)
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

    def read_chunk(self, i: int):
        """Image i as its stored bitshuffle chunk, for a caller that decodes it itself (the frame pass,
        :meth:`jfjoch.frame_pass.FramePass.run_chunk`); None when the image is not stored as one such chunk
        of 1-, 2- or 4-byte integers (use :meth:`read_image`)."""
        seg, k = self._locate(i)
        if seg.codec is None or seg.dset.dtype.itemsize > 4:
            return None
        with self._lock:
            try:
                mask, chunk = seg.dset.id.read_direct_chunk((k, 0, 0))
            except (OSError, KeyError, ValueError) as e:
                raise CorruptFrameError(f"image {i}: cannot read its chunk ({e})") from e
        if mask & 1:  # stored unfiltered
            return None
        return RawChunk(chunk, seg.codec, seg.dset.dtype.name)

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
