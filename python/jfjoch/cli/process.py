"""`jfjoch_process`: option parsing and printing only; the work is done by jfjoch.pipeline.process."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import rich_click as click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .. import __version__
from ..errors import JfjochError, UsageError
from ..options import INDEXING_ALGORITHMS, ProcessOptions, parse_cell, parse_lattice
from ..results import ProcessResult

click.rich_click.TEXT_MARKUP = None
click.rich_click.OPTION_GROUPS = {
    "jfjoch_process": [
        {"name": "General", "options": ["--output-prefix", "--threads", "--start-image", "--end-image",
                                        "--stride", "--verbose", "--help", "--version"]},
        {"name": "Spot finding", "options": ["--spot-sigma", "--spot-threshold", "--spot-high-resolution",
                                             "--max-spots"]},
        {"name": "Indexing", "options": ["--indexing-algorithm", "--unit-cell", "--space-group",
                                         "--two-pass-rotation", "--single-pass-rotation",
                                         "--redo-rotation-spots", "--force-rotation-lattice"]},
    ]
}


@click.command(name="jfjoch_process", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("input_master", metavar="INPUT_MASTER.h5")
@click.option("-o", "--output-prefix", default="output", show_default=True, help="Output file prefix.")
@click.option("-N", "--threads", type=int, default=1, show_default=True, help="Number of worker threads.")
@click.option("-s", "--start-image", type=int, default=0, show_default=True, help="First image to process.")
@click.option("-e", "--end-image", type=int, default=None, help="Last image to process (default: all).")
@click.option("-t", "--stride", type=int, default=1, show_default=True, help="Process every n-th image.")
@click.option("-v", "--verbose", is_flag=True, help="Verbose output (per-image lines, tracebacks).")
@click.option("--spot-sigma", type=float, default=3.0, show_default=True, help="Noise sigma level for spot finding.")
@click.option("--spot-threshold", type=float, default=10.0, show_default=True,
              help="Photon-count threshold for spot finding.")
@click.option("--spot-high-resolution", type=float, default=1.5, show_default=True,
              help="High-resolution limit for spot finding, Å.")
@click.option("--max-spots", type=int, default=250, show_default=True, help="Maximum spot count per image.")
@click.option("-X", "--indexing-algorithm", default="auto", show_default=True,
              help="FFBIDX | FFT | FFTW | Auto | None (case-insensitive).")
@click.option("-C", "--unit-cell", default=None, help='Reference unit cell "a,b,c,alpha,beta,gamma" (Å, deg).')
@click.option("-S", "--space-group", type=int, default=None, help="Space group number.")
@click.option("-R", "--two-pass-rotation", type=int, is_flag=False, flag_value=30, default=None,
              help="Two-pass rotation indexing over the first N images (default 30).")
@click.option("--single-pass-rotation", type=float, is_flag=False, flag_value=20.0, default=None,
              help="Single-pass rotation indexing once the spots span this many degrees (default 20).")
@click.option("--redo-rotation-spots", is_flag=True, help="Redo spot finding for the two-pass first pass.")
@click.option("--force-rotation-lattice", default=None,
              help="Force the rotation lattice: 9 floats, a, b, c in Å (lab frame at omega 0).")
@click.version_option(__version__, "--version")
def command(input_master: str, **kw) -> None:
    """Process a Jungfraujoch (NXmx) dataset: spot finding, azimuthal integration, indexing.

    Writes <prefix>_process.h5 and prints a summary.
    """
    opts = _options(kw)
    run(input_master, opts)


def _options(kw: dict) -> ProcessOptions:
    algo = str(kw.pop("indexing_algorithm")).lower()
    if algo not in INDEXING_ALGORITHMS:
        raise UsageError(f"-X/--indexing-algorithm must be one of {', '.join(INDEXING_ALGORITHMS)} (got {algo!r})")
    cell = kw.pop("unit_cell")
    lat = kw.pop("force_rotation_lattice")
    return ProcessOptions(
        indexing_algorithm=algo,
        unit_cell=parse_cell(cell) if cell is not None else None,
        force_rotation_lattice=parse_lattice(lat) if lat is not None else None,
        **kw,
    ).validate()


def run(input_master: str, opts: ProcessOptions) -> ProcessResult:
    from ..pipeline import process

    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = max(console.width, 120)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=not console.is_terminal, transient=True,
    ) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if not tasks:  # the input opened and validated: now say what runs
                console.print(f"[bold]jfjoch_process[/bold] {__version__}  input: {input_master}")
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        with warnings.catch_warnings():
            # library warnings (e.g. a GPU indexer running on the CPU) reach the user as the run's notes
            warnings.simplefilter("ignore" if not opts.verbose else "default")
            result = process(input_master, opts, progress=progress)
    print_summary(console, result, opts)
    return result


def print_summary(console: Console, r: ProcessResult, opts: ProcessOptions) -> None:
    e = r.experiment
    d = e.detector
    bx, by = d.beam_center_px
    gon = e.goniometer
    console.print(
        f"detector {d.nx} x {d.ny} px of {d.pixel_mm * 1000:.0f} µm, distance {d.distance_mm:.2f} mm, "
        f"beam centre ({bx:.2f}, {by:.2f}) px, wavelength {e.beam.wavelength_A:.5f} Å"
        + (f", rotation {gon.increment_deg:g}°/image about {np.round(gon.axis, 3).tolist()}" if gon else ", stills")
    )
    for note in r.indexing.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    table = Table(title="Per-image results", show_lines=False)
    for col in ("images", "spots (mean)", "ice-ring spots", "indexed", "indexed spots (mean)",
                "resolution est. (Å)", "background (ph/px)", "failed"):
        table.add_column(col, justify="right")
    ims = r.images
    n_rows = len(ims) if opts.verbose else min(len(ims), 20)
    for block in np.array_split(np.arange(len(ims)), max(n_rows, 1)):
        if not len(block):
            continue
        sel = [ims[i] for i in block]
        ok = [im for im in sel if im.ok]
        label = f"{sel[0].number}" if len(sel) == 1 else f"{sel[0].number}-{sel[-1].number}"
        res = [im.stats.get("resolution_estimate", np.nan) for im in ok]
        bkg = [im.stats.get("background_estimate", np.nan) for im in ok]
        table.add_row(
            label,
            f"{np.mean([im.n_spots for im in ok]):.1f}" if ok else "-",
            f"{sum(int(np.count_nonzero(im.ice_ring)) for im in ok)}",
            f"{sum(im.indexed for im in ok)}/{len(ok)}",
            f"{np.mean([im.n_indexed for im in ok]):.1f}" if ok else "-",
            _nanfmt(res, ".2f"),
            _nanfmt(bkg, ".3f"),
            str(len(sel) - len(ok)),
        )
    console.print(table)
    n_ok = sum(im.ok for im in ims)
    failed = len(ims) - n_ok
    if failed:
        console.print(f"[red]{failed} image(s) could not be read[/red]: "
                      + ", ".join(str(im.number) for im in ims if not im.ok)[:200])
    if r.indexing.algorithm != "none" or r.indexing.mode != "stills":
        rate = r.indexing_rate
        console.print(
            f"indexing ({r.indexing.algorithm}, {r.indexing.backend}, {r.indexing.mode}): "
            f"{sum(im.indexed for im in ims)}/{n_ok} images indexed ({100 * rate:.1f}%)"
            + (f", lattice {r.indexing.bravais}" if r.indexing.bravais else "")
        )
        mc = r.mean_cell()
        if mc is not None:
            m, s = mc
            console.print(
                "mean cell  a {:.3f}({:.3f}) b {:.3f}({:.3f}) c {:.3f}({:.3f}) Å  "
                "α {:.2f}({:.2f}) β {:.2f}({:.2f}) γ {:.2f}({:.2f})°".format(*np.ravel(np.stack([m, s], 1)))
            )
    console.print("time: " + ", ".join(f"{k} {v:.2f} s" for k, v in r.timing.items()))
    if r.output_path:
        console.print(f"wrote {r.output_path}")


def _nanfmt(vals, fmt: str) -> str:
    v = np.asarray(vals, float)
    v = v[np.isfinite(v)]
    return format(float(np.median(v)), fmt) if len(v) else "-"


def main(argv: list[str] | None = None) -> int:
    """Console entry point: one-line errors, exit codes 0 / 1 / 2 (SPEC)."""
    args = sys.argv[1:] if argv is None else argv
    verbose = "-v" in args or "--verbose" in args
    try:
        command.main(args=args, prog_name="jfjoch_process", standalone_mode=False)
    except click.exceptions.Exit as e:
        return int(e.exit_code or 0)
    except click.exceptions.Abort:
        print("jfjoch_process: interrupted", file=sys.stderr)
        return 1
    except click.UsageError as e:
        print(f"jfjoch_process: error: {e.format_message()}", file=sys.stderr)
        return 2
    except JfjochError as e:
        if verbose:
            raise
        print(f"jfjoch_process: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("jfjoch_process: interrupted", file=sys.stderr)
        return 1
    except Exception as e:  # never a traceback unless -v
        if verbose:
            raise
        print(f"jfjoch_process: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())


def entry() -> None:
    """setuptools console-script wrapper: exit with main()'s code."""
    sys.exit(main())
