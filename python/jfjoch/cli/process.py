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
from ..options import ProcessOptions
from ..results import ProcessResult
from .options import add_options, option_panels, options_from_click
from .runner import run_command

click.rich_click.TEXT_MARKUP = None
click.rich_click.OPTION_GROUPS.update(option_panels(ProcessOptions, "jfjoch_process"))


@click.command(name="jfjoch_process", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT_MASTER.h5 | IMAGE.cbf... | TEMPLATE_####.cbf")
@add_options(ProcessOptions)
@click.version_option(__version__, "--version")
def command(inputs: tuple[str, ...], **kw) -> None:
    """Process a Jungfraujoch (NXmx) dataset or a miniCBF series: spot finding, indexing, geometry
    refinement, prediction, Bragg integration and azimuthal integration.

    The input is one NXmx master file, several miniCBF files (.cbf, .cbf.bz2, .cbf.gz; one image each, in
    the given order) or one template whose run of # is the zero-padded image number (th_####.cbf.bz2).
    Writes <prefix>_process.h5 and prints a summary.
    """
    opts = options_from_click(ProcessOptions, kw)
    run(inputs[0] if len(inputs) == 1 else list(inputs), opts)


def _input_label(inputs: str | list[str]) -> str:
    if isinstance(inputs, str):
        return inputs
    return f"{inputs[0]} ... {inputs[-1]} ({len(inputs)} files)"


def run(input_master: str | list[str], opts: ProcessOptions) -> ProcessResult:
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
                console.print(f"[bold]jfjoch_process[/bold] {__version__}  input: {_input_label(input_master)}")
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        with warnings.catch_warnings():
            # library warnings (e.g. a GPU indexer running on the CPU) reach the user as the run's notes
            warnings.simplefilter("ignore" if not opts.verbose else "default")
            result = process(input_master, opts, progress=progress)
    print_summary(console, result, opts)
    if result.scaling is not None:
        from .scale import print_scaling_summary

        print_scaling_summary(console, result.scaling, verbose=opts.verbose)
        for path in result.scaled_paths:
            console.print(f"wrote {path}")
    return result


def _geometry_line(e, label: str) -> str:
    d = e.detector
    bx, by, dist = e.core.beam()
    gon = e.goniometer
    return (f"{label}: detector {d.nx} x {d.ny} px of {d.pixel_mm * 1000:.0f} µm, distance {dist:.3f} mm, "
            f"beam centre ({bx:.2f}, {by:.2f}) px, wavelength {e.beam.wavelength_A:.5f} Å"
            + (f", rotation {gon.increment_deg:g}°/image about {np.round(gon.axis, 3).tolist()}" if gon
               else ", stills"))  # fmt: skip


def print_summary(console: Console, r: ProcessResult, opts: ProcessOptions) -> None:
    e_in = r.input_experiment or r.experiment
    console.print(_geometry_line(e_in, "input"))
    if r.indexing.refinement:
        ref = r.indexing.refinement
        rms = f"rms {ref.get('rms_px', np.nan):.3f} px, {ref.get('rms_angle_frames', np.nan):.3f} frames"
        console.print(_geometry_line(r.experiment, "refined (sweep)") + f"; {rms}, {ref.get('n_used', 0)} spots")
    for note in r.indexing.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    table = Table(title="Per-image results", show_lines=False)
    for col in ("images", "spots (mean)", "ice-ring spots", "indexed", "indexed spots (mean)", "predicted (mean)",
                "integrated (mean)", "resolution est. (Å)", "background (ph/px)", "failed"):  # fmt: skip
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
            f"{sum(im.n_ice for im in ok)}",
            f"{sum(im.indexed for im in ok)}/{len(ok)}",
            f"{np.mean([im.n_indexed for im in ok]):.1f}" if ok else "-",
            f"{np.mean([im.counts.predicted for im in ok]):.1f}" if ok else "-",
            f"{np.mean([im.counts.integrated for im in ok]):.1f}" if ok else "-",
            _nanfmt(res, ".2f"),
            _nanfmt(bkg, ".3f"),
            str(len(sel) - len(ok)),
        )
    console.print(table)
    n_ok = sum(im.ok for im in ims)
    failed = [im for im in ims if not im.ok]
    if failed:
        console.print(f"[red]{len(failed)} image(s) could not be read[/red]: "
                      + ", ".join(str(im.number) for im in failed)[:200])  # fmt: skip
        if opts.verbose:
            for im in failed:
                console.print(f"  image {im.number}: {im.error}")
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
                "refined cell  a {:.3f}({:.3f}) b {:.3f}({:.3f}) c {:.3f}({:.3f}) Å  "
                "α {:.2f}({:.2f}) β {:.2f}({:.2f}) γ {:.2f}({:.2f})°".format(*np.ravel(np.stack([m, s], 1)))
            )
        beams = np.array([im.refined_beam for im in ims if getattr(im, "refined_beam", None) is not None], float)
        if len(beams):
            mb, sb = beams.mean(0), beams.std(0)
            console.print(f"refined beam centre per still: ({mb[0]:.2f} ± {sb[0]:.2f}, {mb[1]:.2f} ± {sb[1]:.2f}) px")
        if r.indexing.mosaicity_deg is not None:
            console.print(f"mosaicity (sweep, Gaussian sigma): {r.indexing.mosaicity_deg:.4f}°")
        radii = [im.profile_radius for im in ims if np.isfinite(getattr(im, "profile_radius", np.nan))]
        if radii:
            console.print(f"profile radius R0 (stills, median): {np.median(radii):.2e} 1/Å")
        tot = r.integration_totals()
        if tot.predicted:
            console.print(
                f"integration ({r.indexing.integration}): {tot.predicted} predicted, {tot.integrated} integrated"
                + (f" ({tot.profile_fitted} profile-fitted)" if r.indexing.integration == "profile" else "")
                + f"; dropped: {tot.dropped_masked} masked pixel, {tot.dropped_background} too little background, "
                f"{tot.dropped_edge} at the edge; flagged: {tot.overlapped} overlapping, {tot.saturated} saturated"
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
    return run_command(command, "jfjoch_process", argv)


def entry() -> None:
    """setuptools console-script wrapper: exit with main()'s code."""
    sys.exit(main())


if __name__ == "__main__":
    sys.exit(main())
