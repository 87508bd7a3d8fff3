"""The image loop: read -> decode -> spots -> azimuthal integration -> statistics -> indexing.

`process()` is the Python entry point behind `jfjoch_process`. It never prints; progress is reported
through an optional callback. Images are processed by a pool of `threads` Python threads (every kernel
releases the GIL); results are ordered by image number, so the output does not depend on the thread count.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .errors import CorruptFrameError, InputError, UsageError
from .experiment import Experiment, cell_from_lattice, rotation_matrix
from .options import ProcessOptions
from .results import ImageResult, IndexingSummary, ProcessResult

__all__ = ["ProgressCallback", "open_dataset", "process", "select_images"]

ProgressCallback = Callable[[str, int, int], None]
"""progress(stage, done, total)."""

MIN_INDEXED_SPOTS = 5
"""An image counts as indexed when at least this many spots ..."""
MIN_INDEXED_FRACTION = 0.2
"""... and at least this fraction of its spots are indexed."""
ROTATION_FFBIDX_SPOTS = 300
"""Pooled first-pass spots handed to the known-cell indexer in rotation modes (an even subsample)."""


def open_dataset(path: str | Path):
    """Open an input dataset: an NXmx master file, or (mini)CBF image file(s)."""
    p = Path(path)
    name = p.name.lower()
    if name.endswith((".cbf", ".cbf.bz2", ".cbf.gz")):
        from .io.cbf import open_cbf

        return open_cbf([p])
    from .io.nxmx import open_master

    return open_master(p)


def select_images(n_images: int, options: ProcessOptions) -> list[int]:
    """Image numbers selected by --start-image/--end-image/--stride (validated against the file)."""
    if n_images <= 0:
        raise InputError("the input file holds no images")
    if options.start_image >= n_images:
        raise UsageError(f"--start-image {options.start_image} is out of range: the file has {n_images} images")
    end = n_images - 1 if options.end_image is None else options.end_image
    if end >= n_images:
        raise UsageError(f"--end-image {end} is out of range: the file has {n_images} images (0..{n_images - 1})")
    return list(range(options.start_image, end + 1, options.stride))


class _Stages:
    """Per-run stage objects (built once, shared by all threads: each is thread-safe)."""

    def __init__(self, experiment: Experiment, options: ProcessOptions):
        from .azint import AzimuthalIntegrator
        from .spots import SpotFinder, SpotFinderSettings

        self.experiment = experiment
        self.options = options
        self.spot_finder = SpotFinder(
            experiment,
            SpotFinderSettings(
                photon_threshold=math.ceil(options.spot_threshold),  # counts are integers
                sigma=float(options.spot_sigma),
                high_resolution_A=float(options.spot_high_resolution),
                max_spots=int(options.max_spots),
            ),
        )
        self.azint = AzimuthalIntegrator(experiment)

    def analyse(self, number: int, image: np.ndarray) -> ImageResult:
        from .image_stats import compute_image_statistics

        spots = self.spot_finder.find(image)
        profile, counts = self.azint.integrate_with_counts(image)
        stats = compute_image_statistics(spots, profile, self.azint.q, profile_count=counts)
        return ImageResult(
            number=number,
            x=np.asarray(spots.x, np.float32),
            y=np.asarray(spots.y, np.float32),
            intensity=np.asarray(spots.intensity, np.float32),
            d=np.asarray(spots.d, np.float32),
            ice_ring=np.asarray(spots.ice_ring, bool),
            spot_indexed=np.zeros(len(spots.x), bool),
            profile=np.asarray(profile, np.float32),
            stats=stats.as_dict(),
        )


def _resolve_algorithm(options: ProcessOptions, cell) -> str:
    algo = options.indexing_algorithm
    if algo == "auto":
        return "ffbidx" if cell is not None else "fft"
    return algo


def _index_still(s: np.ndarray, cell, space_group, method: str):
    from .index import index_reciprocal

    return index_reciprocal(s, cell=cell, space_group=space_group, method=method)


def _accept(n_indexed: int, n_spots: int) -> bool:
    return n_indexed >= MIN_INDEXED_SPOTS and n_indexed >= MIN_INDEXED_FRACTION * max(n_spots, 1)


def process(
    master_path: str | Path,
    options: ProcessOptions | None = None,
    *,
    progress: ProgressCallback | None = None,
    write: bool = True,
    **overrides,
) -> ProcessResult:
    """Process a dataset; returns the results and (when `write`) writes `<prefix>_process.h5`.

    `overrides` are ProcessOptions fields (e.g. ``threads=2, indexing_algorithm="none"``).
    Raises JfjochError subclasses with one-line messages.
    """
    from .io.process_h5 import write_process_h5

    opts = (options or ProcessOptions())
    if overrides:
        from dataclasses import replace

        opts = replace(opts, **overrides)
    opts = opts.validate()
    t_start = time.perf_counter()
    timing: dict[str, float] = {}
    progress = progress or (lambda stage, done, total: None)

    with open_dataset(master_path) as ds:
        exp: Experiment = ds.experiment
        if opts.unit_cell is not None or opts.space_group is not None:
            from dataclasses import replace

            exp = replace(
                exp, unit_cell=opts.unit_cell or exp.unit_cell, space_group=opts.space_group or exp.space_group
            )
        numbers = select_images(ds.n_images, opts)
        rotation_mode = (
            opts.two_pass_rotation is not None
            or opts.single_pass_rotation is not None
            or opts.force_rotation_lattice is not None
        )
        if rotation_mode and exp.goniometer is None:
            raise UsageError("rotation indexing (-R, --single-pass-rotation, --force-rotation-lattice) needs "
                             "rotation data: the input file has no omega scan")
        out_path = Path(f"{opts.output_prefix}_process.h5")
        if write:
            _check_writable(out_path)
        stages = _Stages(exp, opts)
        timing["setup"] = time.perf_counter() - t_start

        cache: dict[int, ImageResult] = {}
        lock = threading.Lock()
        done = [0]

        def analyse(num: int) -> ImageResult:
            try:
                img = ds.read_image(num)
            except CorruptFrameError as e:
                r = ImageResult(number=num, ok=False, error=str(e))
            else:
                r = stages.analyse(num, img)
            with lock:
                done[0] += 1
                progress("images", done[0], len(numbers))
            return r

        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=opts.threads) as pool:
            results = list(pool.map(analyse, numbers))
            timing["spots_azint"] = time.perf_counter() - t0
            cache.update({r.number: r for r in results})

            t0 = time.perf_counter()
            cell = exp.unit_cell
            algo = _resolve_algorithm(opts, cell)
            summary = IndexingSummary(algorithm=algo)
            if algo != "none" or opts.force_rotation_lattice is not None:
                summary.backend, note = _backend_note(algo)
                if note:
                    summary.notes.append(note)
                if rotation_mode:
                    _index_rotation(ds, exp, opts, algo, results, summary, pool, progress)
                else:
                    _index_stills(exp, algo, results, summary, pool, progress)
            timing["indexing"] = time.perf_counter() - t0

    result = ProcessResult(experiment=exp, images=results, q=stages.azint.q, indexing=summary, timing=timing)
    if write:
        t0 = time.perf_counter()
        result.output_path = str(
            write_process_h5(out_path, result, source=str(master_path), options=_options_attrs(opts))
        )
        timing["write"] = time.perf_counter() - t0
    timing["total"] = time.perf_counter() - t_start
    return result


def _options_attrs(opts: ProcessOptions) -> dict:
    return {k: v for k, v in opts.as_dict().items() if (v is not None and not isinstance(v, bool)) or v is True}


def _check_writable(path: Path) -> None:
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise UsageError(f"cannot write {path}: directory {directory} does not exist")
    import os

    if not os.access(directory, os.W_OK):
        raise UsageError(f"cannot write {path}: directory {directory} is not writable")


def _backend_note(algo: str) -> tuple[str, str | None]:
    """Backend an indexer runs on here, and a one-time note when a GPU algorithm falls back to the CPU."""
    from . import _core

    if algo in ("fft", "ffbidx"):
        if _core.cuda_device_count() > 0:
            return "cuda", None
        return "cpu", f"no GPU available: -X {algo} runs its CPU implementation"
    return "cpu", None


def _set_indexed(r: ImageResult, lattice: np.ndarray, indexed_mask: np.ndarray) -> None:
    r.spot_indexed = np.asarray(indexed_mask, bool)
    if _accept(r.n_indexed, r.n_spots):
        r.indexed = True
        r.lattice = np.asarray(lattice, float)
        r.cell = cell_from_lattice(r.lattice)
    else:
        r.indexed = False
        r.spot_indexed = np.zeros(r.n_spots, bool)


def _index_stills(exp, algo, results, summary, pool, progress) -> None:
    summary.mode = "stills"
    done = [0]
    lock = threading.Lock()

    def one(r: ImageResult) -> None:
        if r.ok and r.n_spots >= MIN_INDEXED_SPOTS:
            s = exp.pixels_to_recip(np.stack([r.x, r.y], 1).astype(float))
            res = _index_still(s, exp.unit_cell, exp.space_group, algo)
            if res.ok:
                _set_indexed(r, res.lattice, res.indexed)
                if summary.bravais is None:
                    summary.bravais = getattr(res, "bravais", None)
                    summary.space_group = getattr(res, "space_group", None)
        with lock:
            done[0] += 1
            progress("indexing", done[0], len(results))

    list(pool.map(one, results))


def _spots_xy(ds, r: ImageResult, opts: ProcessOptions) -> np.ndarray:
    """Spots of image r for the first rotation pass: stored in the input file unless redo is asked for."""
    if not opts.redo_rotation_spots:
        stored = ds.stored_spots(r.number) if hasattr(ds, "stored_spots") else None
        if stored is not None and len(stored[0]):
            return np.stack([np.asarray(stored[0], float), np.asarray(stored[1], float)], 1)
    return np.stack([r.x, r.y], 1).astype(float)


def _index_rotation(ds, exp: Experiment, opts: ProcessOptions, algo, results, summary, pool, progress) -> None:
    from .rotation import assign_rotation_image, refine_rotation_lattice, to_crystal_frame

    gon = exp.goniometer
    ok_results = [r for r in results if r.ok]
    if opts.force_rotation_lattice is not None:
        summary.mode = "forced_rotation_lattice"
        A0 = np.linalg.inv(np.asarray(opts.force_rotation_lattice, float).reshape(3, 3))
        first = []
    else:
        if opts.two_pass_rotation is not None:
            summary.mode = "two_pass_rotation"
            first = ok_results[: opts.two_pass_rotation]
        else:
            summary.mode = "single_pass_rotation"
            first = []
            for r in ok_results:
                first.append(r)
                if (r.number - ok_results[0].number + 1) * abs(gon.increment_deg) >= opts.single_pass_rotation:
                    break
            else:
                summary.notes.append(
                    f"the images span less than {opts.single_pass_rotation} deg: indexed once all had arrived"
                )
        pooled, owners = [], []
        for r in first:
            xy = _spots_xy(ds, r, opts)
            if len(xy):
                s = to_crystal_frame(exp.pixels_to_recip(xy), gon.angle_mid_deg(r.number), gon.axis)
                pooled.append(s)
                owners.append((r.number, xy))
        if not pooled:
            summary.notes.append("rotation indexing: no spots in the first pass")
            return
        s_all = np.concatenate(pooled)
        if algo == "ffbidx" and len(s_all) > ROTATION_FFBIDX_SPOTS:
            # the known-cell indexer works on a few hundred spots: take an even subsample over the
            # whole pool (all resolutions, all images), not the first or the lowest-resolution ones
            s_all = s_all[np.linspace(0, len(s_all) - 1, ROTATION_FFBIDX_SPOTS).astype(int)]
        res = _index_still(s_all, exp.unit_cell, exp.space_group, algo)
        if not res.ok:
            summary.notes.append("rotation indexing: the first pass found no lattice")
            return
        summary.bravais = getattr(res, "bravais", None)
        summary.space_group = getattr(res, "space_group", None)
        A0 = np.linalg.inv(np.asarray(res.lattice, float))
        # refine the whole-sweep lattice against the first-pass spots (exact diffraction angles)
        for max_px in (4.0, 2.5):
            obs = []
            for num, xy in owners:
                a = assign_rotation_image(A0, xy, num, exp, max_px=max_px)
                obs.append((num, xy[a.indexed], a.hkl[a.indexed]))
            A0 = refine_rotation_lattice(A0, obs, exp)
    summary.rotation_lattice = np.linalg.inv(A0)
    start_number = first[-1].number if summary.mode == "single_pass_rotation" else None
    done = [0]
    lock = threading.Lock()

    def one(r: ImageResult) -> None:
        if r.ok and r.n_spots and (start_number is None or r.number >= start_number):
            _assign_and_refine(r, A0, exp)
        with lock:
            done[0] += 1
            progress("indexing", done[0], len(results))

    list(pool.map(one, results))


def _assign_and_refine(r: ImageResult, A0: np.ndarray, exp: Experiment) -> None:
    from .rotation import assign_rotation_image, refine_orientation_image

    gon = exp.goniometer
    xy = np.stack([r.x, r.y], 1).astype(float)
    a = assign_rotation_image(A0, xy, r.number, exp)
    A = A0
    if a.indexed.sum() >= MIN_INDEXED_SPOTS:
        A = refine_orientation_image(A0, xy[a.indexed], a.hkl[a.indexed], r.number, exp)
        a = assign_rotation_image(A, xy, r.number, exp)
    A_mid = rotation_matrix(gon.axis, float(gon.angle_mid_deg(r.number))) @ A
    _set_indexed(r, np.linalg.inv(A_mid), a.indexed)
