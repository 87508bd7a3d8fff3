"""`jfjoch.scale(paths, **options)`: read the inputs, scale and merge, write the files (`jfjoch_scale`)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from ..errors import InputError
from ..options import ScaleOptions
from .data import ScaleResult
from .engine import scale_and_merge
from .outputs import write_scale_outputs

__all__ = ["load_inputs", "read_inputs", "scale"]


def read_inputs(paths: Sequence[str | os.PathLike], threads: int = 1) -> list:
    """ScaleInput per path (`_process.h5` or unmerged MTZ), run ids 0, 1, ... in the given order."""
    from ..io.scale_input import read_scale_input

    paths = [str(p) for p in paths]
    if not paths:
        raise InputError("no input file given")
    if threads > 1 and len(paths) > 1:
        with ThreadPoolExecutor(min(threads, len(paths))) as pool:
            return list(pool.map(read_scale_input, paths, range(len(paths))))
    return [read_scale_input(p, k) for k, p in enumerate(paths)]


def load_inputs(paths: Sequence[str | os.PathLike], opts: ScaleOptions, *, check_output: bool = True):
    """The runs (:func:`read_inputs`) and the reference (``opts.reference_mtz``, None without one).
    With ``check_output``, first fails when the output directory does not exist (before any work)."""
    if check_output:
        from pathlib import Path

        from ..errors import ProcessingError

        out_dir = Path(opts.output_prefix).parent
        if not out_dir.is_dir():
            raise ProcessingError(f"cannot write {opts.output_prefix}*: directory {out_dir} does not exist")
    runs = read_inputs(paths, opts.threads)
    reference = None
    if opts.reference_mtz is not None:
        from ..io.reflections import read_reference_mtz

        reference = read_reference_mtz(opts.reference_mtz)
    return runs, reference


def scale(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    options: ScaleOptions | None = None,
    *,
    progress: Callable[[str, int, int], None] | None = None,
    write: bool = True,
    **overrides,
) -> ScaleResult:
    """Scale and merge `_process.h5` files and/or unmerged MTZ files; returns the result and (when
    ``write``) writes the files of :func:`~jfjoch.scale.outputs.write_scale_outputs` under
    ``output_prefix``. ``overrides`` are ScaleOptions fields (``space_group=96, partiality="unity"``).
    Inputs are only read. Raises JfjochError subclasses with one-line messages."""
    opts = options or ScaleOptions()
    if overrides:
        unknown = sorted(set(overrides) - set(ScaleOptions.__dataclass_fields__))
        if unknown:
            from ..errors import UsageError

            raise UsageError(f"unknown option{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")
        opts = replace(opts, **overrides)
    opts = opts.validate()
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    t0 = time.perf_counter()
    inputs, reference = load_inputs(paths, opts, check_output=write)
    t_read = time.perf_counter() - t0
    result = scale_and_merge(inputs, opts, reference=reference, progress=progress)
    result.timing = {"read": t_read, **{k: v for k, v in result.timing.items() if k != "total"}}
    if write:
        t1 = time.perf_counter()
        write_scale_outputs(result, opts.output_prefix, opts)
        result.timing["write"] = time.perf_counter() - t1
    result.timing["total"] = time.perf_counter() - t0
    return result
