"""`jfjoch.process`: plan -> per-image worker -> streaming writer.

1. Plan: open the dataset, validate the options against it, resolve the indexer and backends, and for
   rotation data run the first pass (index the pooled spots of the first N images, refine the sweep,
   estimate the mosaicity). The result is a picklable :class:`~jfjoch.worker.Plan`.
2. Worker: :class:`~jfjoch.worker.ImageWorker` does read -> decode -> spots -> index -> refine -> predict ->
   integrate -> azint for one image; ``threads`` Python threads run it (every kernel releases the GIL).
   At most a few images per thread are in flight, so memory does not grow with the number of images.
3. Writer: results are appended to `<prefix>_process.h5` in image order as they complete
   (:class:`~jfjoch.io.process_h5.ProcessWriter`: temporary name, renamed when complete).
The output does not depend on the thread count. The library never prints; progress goes to a callback.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from .errors import CorruptFrameError, InputError, JfjochError, ProcessingError, UsageError
from .experiment import Experiment
from .integrate import DEFAULT_RADII, IntegrationSettings
from .options import ProcessOptions
from .predict import PredictionSettings
from .refine import RefineSettings
from .results import IndexingSummary, ProcessResult
from .spots import SpotFinderSettings
from .worker import ImageWorker, IndexingSettings, Plan, RotationModel, StageSettings

__all__ = ["ProgressCallback", "make_stage_settings", "open_dataset", "process", "select_images"]

ProgressCallback = Callable[[str, int, int], None]
"""progress(stage, done, total)."""

MOSAICITY_IMAGES = 12
"""Consecutive first-pass images integrated to estimate the sweep mosaicity."""
DEFAULT_MOSAICITY_DEG = 0.1
"""Mosaicity used when the first pass cannot estimate it (a note says so)."""
FORCED_LATTICE_IMAGES = 30
"""--force-rotation-lattice: images read to estimate the mosaicity (no indexing pass)."""


def open_dataset(path: str | Path | list):
    """Open an input dataset: an NXmx master file, or a miniCBF series: one file, a list of files, or a
    template ``name_####.cbf[.bz2|.gz]`` (docs/io.md)."""
    from .io.cbf import is_cbf_name, open_cbf

    paths = list(path) if isinstance(path, (list, tuple)) else [path]
    if not paths or not all(isinstance(p, (str, Path)) for p in paths):
        got = type(path).__name__ if not isinstance(path, (list, tuple)) else "an empty list" if not paths else \
            "a list holding " + next(type(p).__name__ for p in paths if not isinstance(p, (str, Path)))
        raise InputError(f"the input must be a file path, a list of CBF file paths or a CBF template (got {got})")
    other = [p for p in paths if not is_cbf_name(p)]
    if not other:
        return open_cbf(paths[0] if len(paths) == 1 else paths)
    if len(paths) == 1:
        from .io.nxmx import open_master

        return open_master(Path(paths[0]))
    if len(other) < len(paths):
        raise InputError(f"cannot mix CBF images and other files: {other[0]} is not a miniCBF image "
                         "(.cbf, .cbf.bz2, .cbf.gz)")  # fmt: skip
    raise InputError(f"several input files must all be miniCBF images (.cbf, .cbf.bz2, .cbf.gz); {other[0]} is "
                     "not: give one NXmx master file")  # fmt: skip


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


def _resolve_algorithm(options: ProcessOptions, cell) -> str:
    algo = options.indexing_algorithm
    if algo == "auto":
        return "ffbidx" if cell is not None else "fft"
    return algo


def make_stage_settings(options: ProcessOptions, experiment: Experiment, algorithm: str) -> StageSettings:
    """The per-image stages' settings from the options (and the file's bandwidth)."""
    bandwidth = options.bandwidth if options.bandwidth is not None else experiment.beam.bandwidth
    refine_mode = options.refine if options.refine != "pixelrefine" else "beam_and_lattice"
    return StageSettings(
        spots=SpotFinderSettings(
            photon_threshold=math.ceil(options.spot_threshold),  # counts are integers
            sigma=float(options.spot_sigma),
            min_isigma=float(options.spot_min_isigma),
            min_pixels=int(options.spot_min_pixels),
            high_resolution_A=float(options.spot_high_resolution),
            max_spots=int(options.max_spots),
        ),
        indexing=IndexingSettings(algorithm=algorithm, cell=experiment.unit_cell, space_group=experiment.space_group),
        refine=RefineSettings(mode=refine_mode),
        prediction=PredictionSettings(d_min=options.integration_high_resolution, bandwidth=float(bandwidth)),
        integration=IntegrationSettings(method=options.integration,
                                        radii=options.integration_radius or DEFAULT_RADII,
                                        profile_multiplier=float(options.profile_multiplier)),
    )  # fmt: skip


def _ordered(pool: ThreadPoolExecutor, fn: Callable, items: Iterable, window: int) -> Iterator:
    """fn(item) for every item, results in the items' order, at most ``window`` in flight."""
    it = iter(items)
    pending = deque(pool.submit(fn, x) for _, x in zip(range(window), it))
    try:
        while pending:
            r = pending.popleft().result()
            for x in it:
                pending.append(pool.submit(fn, x))
                break
            yield r
    finally:
        for f in pending:
            f.cancel()


def _backend_notes(algorithm: str, rotation: bool) -> tuple[str, list[str]]:
    """Where the indexer runs, and the one-time notes of GPU families falling back to the CPU (resolved here
    in the main thread, so the worker threads do not warn again)."""
    from .backend import resolve_backend

    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resolve_backend("auto", "spot finder")
        resolve_backend("auto", "azimuthal integration")
        backend = "cpu"
        if algorithm == "ffbidx":
            backend = resolve_backend("cuda", "fast-feedback indexer (ffbidx)", soft=True)
        elif algorithm == "fft":
            backend = resolve_backend("cuda", "FFT indexer", soft=True)
    notes += [str(w.message) for w in caught]
    return backend, notes


def process(
    master_path: str | Path | list,
    options: ProcessOptions | None = None,
    *,
    progress: ProgressCallback | None = None,
    write: bool = True,
    **overrides,
) -> ProcessResult:
    """Process a dataset; returns the results and (when `write`) writes `<prefix>_process.h5`.

    `master_path`: an NXmx master file, or a miniCBF series (one file, a list of files, or a template
    ``name_####.cbf[.bz2|.gz]``; see :func:`open_dataset`).

    `overrides` are ProcessOptions fields (e.g. ``threads=2, indexing_algorithm="none"``); every value is
    validated before anything runs. Raises JfjochError subclasses with one-line messages.
    """
    if options is not None and not isinstance(options, ProcessOptions):
        raise UsageError(f"options must be a ProcessOptions (got {type(options).__name__})")
    base = options or ProcessOptions()
    opts = ProcessOptions.from_kwargs(**{**base.as_dict(), **overrides}).validate()
    t_start = time.perf_counter()
    timing: dict[str, float] = {}
    progress = progress or (lambda stage, done, total: None)

    with open_dataset(master_path) as ds:
        exp_in: Experiment = ds.experiment
        if opts.unit_cell is not None or opts.space_group is not None:
            exp_in = replace(exp_in, unit_cell=opts.unit_cell or exp_in.unit_cell,
                             space_group=opts.space_group or exp_in.space_group)  # fmt: skip
        numbers = select_images(ds.n_images, opts)
        if opts.rotation_mode and exp_in.goniometer is None:
            raise UsageError("rotation indexing (-R, --single-pass-rotation, --force-rotation-lattice) needs "
                             "rotation data: the input file has no omega scan")  # fmt: skip
        algo = _resolve_algorithm(opts, exp_in.unit_cell)
        if algo == "ffbidx" and exp_in.unit_cell is None:
            raise UsageError("-X ffbidx needs a unit cell (-C a,b,c,alpha,beta,gamma, or one stored in the file)")
        stages = make_stage_settings(opts, exp_in, algo)
        if opts.refine == "pixelrefine":
            if opts.rotation_mode:
                raise UsageError("-r pixelrefine integrates stills; rotation data (-R ...) cannot use it")
            if exp_in.space_group is None:
                raise UsageError("-r pixelrefine needs the space group of the reference (-S)")
            from .pixelrefine import PixelRefineSettings, ReferenceIntensities

            ref = ReferenceIntensities.from_mtz(opts.reference_mtz, int(exp_in.space_group))
            stages = replace(stages, pixelrefine=PixelRefineSettings(reference=ref),
                             integration=replace(stages.integration, method="sum"))
        summary = IndexingSummary(algorithm=algo)
        summary.backend, summary.notes = _backend_notes(algo, opts.rotation_mode)
        source = str(getattr(ds, "source", master_path))  # a CBF series names its template or files
        out_path = Path(f"{opts.output_prefix}_process.h5")
        _check_not_an_input(out_path, ds)
        threads = _worker_count(opts.threads, summary.notes)
        writer = None
        if write:
            from .io.process_h5 import ProcessWriter

            try:  # the output must be creatable before anything runs
                writer = ProcessWriter(out_path, max_spots=opts.max_spots, n_bins=_n_bins(exp_in),
                                       source=source, options=_options_attrs(opts))  # fmt: skip
            except ProcessingError as e:
                raise UsageError(str(e)) from None
        runner = None
        try:
            if opts.dask is not None:
                from .cluster import DaskRunner, parse_dask_address

                runner = DaskRunner(parse_dask_address(opts.dask), summary.notes)
                summary.notes.append(runner.describe() if opts.verbose else
                                     f"dask: {len(runner.workers)} worker(s) at {opts.dask}")  # fmt: skip
            source = _absolute_source(master_path)
            with ThreadPoolExecutor(max_workers=threads) as pool:
                timing["setup"] = time.perf_counter() - t_start
                t0 = time.perf_counter()
                if opts.rotation_mode and (algo != "none" or opts.force_rotation_lattice is not None):
                    plan = _rotation_plan(ds, exp_in, opts, stages, algo, numbers, pool, summary, progress)
                else:
                    summary.mode = "stills"
                    plan = Plan(experiment=exp_in, stages=stages)
                plan = _resolve_integration(plan)
                summary.integration = plan.stages.integration.method
                timing["first_pass"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                worker = ImageWorker(plan)
                images = []
                if runner is not None:
                    runner.check_source(source)
                    results = runner.run(plan, source, numbers, opts.shard_size)
                else:
                    results = _ordered(pool, lambda n: worker.run(ds, n), numbers, 2 * threads + 2)
                for done, r in enumerate(results, 1):
                    if writer is not None:
                        writer.append(r)
                    images.append(r.summary())
                    progress("images", done, len(numbers))
                timing["images"] = time.perf_counter() - t0
            if summary.mode == "stills" and algo != "none":
                first = next((im for im in images if im.indexed), None)
                if first is not None:
                    summary.bravais = first.bravais
                    summary.space_group = exp_in.space_group
            result = ProcessResult(experiment=plan.experiment, images=images, q=worker.azint.q, indexing=summary,
                                   timing=timing, input_experiment=exp_in)  # fmt: skip
            scale_error = None
            if opts.merging:
                t0 = time.perf_counter()
                try:
                    result.scaling = _scale(result, writer, opts, source, progress)
                except JfjochError as e:  # the integration results are still written
                    scale_error = e
                timing["scaling"] = time.perf_counter() - t0
            if writer is not None:
                t0 = time.perf_counter()
                n_angles = max(numbers) + 1
                result.output_path = str(writer.finish(experiment=plan.experiment, q=worker.azint.q,
                                                       indexing=summary, timing=timing, input_experiment=exp_in,
                                                       n_angles=n_angles, scaling=result.scaling))  # fmt: skip
                timing["write"] = time.perf_counter() - t0
                if result.scaling is not None:
                    from .scale import write_scale_outputs

                    t0 = time.perf_counter()
                    result.scaled_paths = [str(p) for p in write_scale_outputs(result.scaling, opts.output_prefix,
                                                                               opts)]  # fmt: skip
                    timing["write_merged"] = time.perf_counter() - t0
            if scale_error is not None:
                raise scale_error
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        finally:
            if runner is not None:
                runner.close()
    timing["total"] = time.perf_counter() - t_start
    failed = [im for im in images if not im.ok]
    if images and len(failed) == len(images):
        where = f" ({result.output_path} records why)" if result.output_path else ""
        raise ProcessingError(f"no image could be read: {failed[0].error}{where}")
    return result


_POINT_GROUP_OF_BRAVAIS = {"aP": 1, "mP": 3, "mC": 5, "oP": 16, "oC": 21, "oI": 23, "oF": 22, "tP": 89, "tI": 97,
                           "hP": 177, "hR": 155, "cP": 207, "cI": 211, "cF": 209}  # fmt: skip
"""Without -S: the highest-symmetry point group of the lattice, as its symmorphic space group (SPEC)."""


def _scale(result: ProcessResult, writer, opts: ProcessOptions, master_path, progress):
    """Scale and merge the run's integrated observations (read back from the file being written)."""
    from .scale import ScaleInput
    from .scale.data import ImageStats
    from .tables import ReflectionTable

    if writer is None:
        raise UsageError("-M needs the _process.h5 output (write=False was given)")
    table: ReflectionTable = writer.read_reflections()
    if not len(table):
        raise ProcessingError("nothing to merge: no image was indexed and integrated")
    e = result.experiment
    sg = e.space_group or result.indexing.space_group
    if sg is None:
        sg = _POINT_GROUP_OF_BRAVAIS.get(result.indexing.bravais or "", 1)
        lattice = result.indexing.bravais or "aP"
        result.indexing.notes.append(f"no space group given (-S): merging in {_sg_symbol(sg)}, the highest "
                                     f"point-group symmetry of the {lattice} lattice")  # fmt: skip
    if result.indexing.rotation_lattice is not None and e.unit_cell is not None:
        cell = tuple(float(c) for c in e.unit_cell)
    else:
        mc = result.mean_cell()
        cell = tuple(float(c) for c in mc[0]) if mc is not None else tuple(e.unit_cell)
    ims = result.images
    inp = ScaleInput(reflections=table, cell=cell, space_group=int(sg), wavelength=float(e.beam.wavelength_A),
                     goniometer=e.goniometer if result.indexing.rotation_lattice is not None else None, run_id=0,
                     name=str(master_path),
                     image_stats=ImageStats(image=[im.number for im in ims], n_spots=[im.n_spots for im in ims],
                                            indexed=[im.indexed for im in ims]))  # fmt: skip
    from .scale import scale_and_merge

    return scale_and_merge([inp], opts, progress=progress)


def _sg_symbol(number: int) -> str:
    import gemmi

    return gemmi.find_spacegroup_by_number(int(number)).hm


def _worker_count(threads: int, notes: list[str]) -> int:
    """Threads beyond the CPUs only add frames in flight (memory), not speed: capped, with a note."""
    import os

    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    if threads > cpus:
        notes.append(f"-N {threads} is more than the {cpus} CPUs available: {cpus} worker threads used")
        return cpus
    return threads


def _input_files(ds) -> list[Path]:
    files = [Path(getattr(ds, "path", ""))] if getattr(ds, "path", None) else []
    files += [Path(p) for p in getattr(ds, "paths", [])]
    for seg in getattr(ds, "_segments", []):
        with contextlib.suppress(AttributeError, ValueError):
            files.append(Path(seg.dset.file.filename))
    return files


def _check_not_an_input(out_path: Path, ds) -> None:
    """Refuse an output name that is one of the input files (also through symbolic or hard links)."""
    import os

    try:
        target = out_path.resolve()
        exists = out_path.exists()
    except OSError:  # e.g. a name too long: the writer says so
        return
    for f in _input_files(ds):
        same = f.resolve() == target
        if not same and exists and f.exists():
            with contextlib.suppress(OSError):
                same = os.path.samefile(f, out_path)
        if same:
            raise UsageError(f"the output {out_path} would overwrite the input file {f}: choose another -o prefix")


def _absolute_source(path):
    """The input as the workers of a cluster open it: absolute paths (their working directory differs)."""
    if isinstance(path, (list, tuple)):
        return [str(Path(p).resolve()) for p in path]
    return str(Path(path).resolve())


def _resolve_integration(plan: Plan) -> Plan:
    """--integration auto: profile fitting for rotation sweeps, summation for stills. Measured on the shared
    data (docs/integration.md): on hewl_rot1 profile fitting raises the merged CC to the truth from 0.9935 to
    0.9979 with honest sigmas; on hewl_stills1 the weak partial stills are wider than the strong spots the
    profiles are learned from, so profile fitting biases them low (median I/true 0.72 at 20-50 photons) and
    only summation keeps (I - true)/sigma within the bars."""
    st = plan.stages
    if st.integration.method != "auto":
        return plan
    method = "profile" if plan.rotation is not None else "sum"
    return replace(plan, stages=replace(st, integration=replace(st.integration, method=method)))


def _n_bins(experiment: Experiment) -> int:
    from .azint import AzimuthalIntegrator

    return AzimuthalIntegrator(experiment).n_bins


def _options_attrs(opts: ProcessOptions) -> dict:
    return {k: v for k, v in opts.as_dict().items() if (v is not None and not isinstance(v, bool)) or v is True}


# ---------------------------------------------------------------------------------------------- rotation
def _spots_xy(ds, number: int, finder, opts: ProcessOptions) -> np.ndarray:
    """Spots of one first-pass image: those stored in the input file unless --redo-rotation-spots."""
    if not opts.redo_rotation_spots:
        stored = ds.stored_spots(number) if hasattr(ds, "stored_spots") else None
        if stored is not None and len(stored[0]):
            return np.stack([np.asarray(stored[0], float), np.asarray(stored[1], float)], 1)
    try:
        image = ds.read_image(number)
    except CorruptFrameError:
        return np.zeros((0, 2))
    return finder.find(image).xy


def _rotation_plan(ds, exp: Experiment, opts: ProcessOptions, stages: StageSettings, algo: str, numbers: list[int],
                   pool: ThreadPoolExecutor, summary: IndexingSummary, progress: ProgressCallback) -> Plan:  # fmt: skip
    """First rotation pass: the sweep lattice (indexed or forced), the refined geometry and the mosaicity."""
    from .refine import cell_system
    from .rotation import estimate_mosaicity, index_sweep
    from .spots import SpotFinder

    gon = exp.goniometer
    start_number = None
    if opts.force_rotation_lattice is not None:
        summary.mode = "forced_rotation_lattice"
        A0 = np.linalg.inv(np.asarray(opts.force_rotation_lattice, float).reshape(3, 3))
        system = cell_system(exp.space_group, lattice=np.linalg.inv(A0))
        first = numbers[:FORCED_LATTICE_IMAGES]
    else:
        if opts.two_pass_rotation is not None:
            summary.mode = "two_pass_rotation"
            first = numbers[: opts.two_pass_rotation]
        else:
            summary.mode = "single_pass_rotation"
            first = []
            for n in numbers:
                first.append(n)
                if (n - numbers[0] + 1) * abs(gon.increment_deg) >= opts.single_pass_rotation:
                    break
            else:
                summary.notes.append(
                    f"the images span less than {opts.single_pass_rotation:g} deg: indexed once all had arrived")
            start_number = first[-1]
        finder = SpotFinder(exp, stages.spots)
        spot_lists = list(pool.map(lambda n: (n, _spots_xy(ds, n, finder, opts)), first))
        progress("first pass", len(first), len(first))
        sweep = index_sweep(exp, spot_lists, algo, exp.unit_cell, exp.space_group, stages.refine, summary.notes)
        if sweep is None:
            summary.notes.append("rotation indexing: the first pass found no lattice")
            no_index = replace(stages, indexing=IndexingSettings(algorithm="none"))
            return Plan(experiment=exp, stages=no_index)
        exp, A0, system = sweep.experiment, sweep.A0, sweep.system
        from .experiment import cell_from_lattice

        exp = replace(exp, unit_cell=cell_from_lattice(np.linalg.inv(A0)))  # the refined cell goes to the file
        summary.bravais, summary.space_group, summary.backend = sweep.bravais, sweep.space_group, sweep.backend
        summary.refinement = sweep.refinement
    summary.rotation_lattice = np.linalg.inv(A0)
    # mosaicity from consecutive first-pass images (the middle ones), integrated one at a time
    mid = len(first) // 2
    mos_numbers = first[max(0, mid - MOSAICITY_IMAGES // 2): max(0, mid - MOSAICITY_IMAGES // 2) + MOSAICITY_IMAGES]
    mosaicity = None
    if stages.integration.method != "none":
        mosaicity = estimate_mosaicity(exp, A0, mos_numbers, ds.read_image, stages.integration, stages.prediction,
                                       pool=pool)
    if mosaicity is None:
        mosaicity = DEFAULT_MOSAICITY_DEG
        if stages.integration.method != "none":
            summary.notes.append(f"the mosaicity could not be estimated from the first pass: {mosaicity:g} deg used")
    summary.mosaicity_deg = mosaicity
    rot = RotationModel(A0=A0, system=system, mosaicity_deg=float(mosaicity), first_image=min(numbers),
                        last_image=max(numbers), start_number=start_number)  # fmt: skip
    return Plan(experiment=exp, stages=stages, rotation=rot)
