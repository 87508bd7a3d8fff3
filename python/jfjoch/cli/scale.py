"""`jfjoch_scale`: option parsing and printing only; the work is done by :func:`jfjoch.scale.scale`.

:func:`print_scaling_summary` prints the statistics table, the error model, rejections and timing; the
`jfjoch_process -M` command calls it too, so both print the same.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import rich_click as click
from rich.console import Console
from rich.table import Table

from ..options import ScaleOptions
from .options import add_options, option_panels, options_from_click
from .runner import run_command

__all__ = ["command", "entry", "main", "print_scaling_summary", "print_statistics_table"]

click.rich_click.TEXT_MARKUP = None
click.rich_click.OPTION_GROUPS = {**getattr(click.rich_click, "OPTION_GROUPS", {}),
                                  **option_panels(ScaleOptions, "jfjoch_scale")}


def _version() -> str:
    from .. import __version__

    return __version__


@click.command(name="jfjoch_scale", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT [INPUT ...]")
@add_options(ScaleOptions)
@click.version_option(None, "--version", package_name="jfjoch", message="%(prog)s %(version)s")
def command(inputs: tuple[str, ...], **kw) -> None:
    """Scale and merge integrated reflections: `_process.h5` files (their /entry/reflections) and/or unmerged
    MTZ files written by other programs (H K L M/ISYM BATCH I SIGI; one run each).

    Writes <prefix>.mtz (or .cif / .hkl), <prefix>_unmerged.mtz, <prefix>_merging_stats.json,
    <prefix>_report.html and, without a reference, <prefix>_iter<N>_scale.dat. The inputs are only read.
    """
    opts = options_from_click(ScaleOptions, kw)
    run(list(inputs), opts)


def run(inputs: list[str], opts: ScaleOptions):
    from ..scale.api import load_inputs
    from ..scale.engine import scale_and_merge
    from ..scale.outputs import write_scale_outputs

    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = max(console.width, 120)
    import time

    t0 = time.perf_counter()
    runs, reference = load_inputs(inputs, opts)
    t_read = time.perf_counter() - t0
    console.print(f"[bold]jfjoch_scale[/bold] {_version()}")
    for r in runs:
        t = r.reflections
        kind = "rotation" if r.is_rotation else ("sweep (full observations)" if r.is_sweep else "stills")
        console.print(
            f"input {r.run_id}: {r.name}  {len(t)} observations on {len(np.unique(t.image))} images, {kind}, "
            f"cell {', '.join(f'{c:.2f}' for c in r.cell)}"
            + (f", space group {r.space_group}" if r.space_group else "")
        )
    if reference is not None:
        console.print(f"reference: {reference.path} ({len(reference.intensity)} intensities)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore" if not opts.verbose else "default")
        result = scale_and_merge(runs, opts, reference=reference)
    t1 = time.perf_counter()
    files = write_scale_outputs(result, opts.output_prefix, opts)
    timing = {k: v for k, v in result.timing.items() if k != "total"}
    result.timing = {"read": t_read, **timing, "write": time.perf_counter() - t1, "total": time.perf_counter() - t0}
    print_scaling_summary(console, result, verbose=opts.verbose)
    for f in files:
        console.print(f"wrote {f}")
    return result


def print_statistics_table(console: Console, result) -> None:
    """The merging statistics by resolution shell and overall (rich table)."""
    anom = result.anomalous
    ref = result.reference is not None
    table = Table(title=f"Merging statistics ({result.space_group_name}, {len(result.shells)} shells of equal "
                        "volume)", show_lines=False)
    cols = ["d range (Å)", "observations", "unique", "multiplicity", "completeness %", "<I/σ>", "CC1/2 %",
            "Rmeas", "Rpim"]
    if anom:
        cols.append("CCanom %")
    if ref:
        cols.append("CCref %")
    for c in cols:
        table.add_column(c, justify="right")

    def cells(s):
        row = [f"{s.d_max:.2f} - {s.d_min:.2f}", f"{s.n_obs}", f"{s.n_unique}", f"{s.multiplicity:.2f}",
               f"{s.completeness:.1f}", f"{s.i_over_sigma:.2f}", _pct(s.cc_half), _r(s.r_meas), _r(s.r_pim)]
        if anom:
            row.append(_pct(s.cc_anom))
        if ref:
            row.append(_pct(s.cc_ref))
        return row

    for s in result.shells:
        table.add_row(*cells(s))
    table.add_row(*cells(result.overall), style="bold", end_section=True)
    console.print(table)


def print_scaling_summary(console: Console, result, verbose: bool = False) -> None:
    """Notes, the statistics table, the error model, resolution estimate, rejections and timing."""
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    console.print(
        f"space group {result.space_group_name} ({result.space_group_number}), cell "
        + ", ".join(f"{c:.3f}" for c in result.cell)
    )
    print_statistics_table(console, result)
    em = result.error_model
    isa = f"{em.isa:.1f}" if np.isfinite(em.isa) else "inf"
    console.print(f"error model: a = {em.a:.3f}, b = {em.b:.4f}, ISa = {isa}")
    d = result.resolution_estimate
    console.print("resolution estimate (CC1/2 fit crosses 0.3): " + (f"{d:.2f} Å" if d else "-")
                  + (" (the data's limit)" if d and abs(d - result.overall.d_min) < 1e-3 else ""))
    im = result.images
    n_acc = int(np.count_nonzero(im.accepted))
    console.print(f"images: {n_acc}/{len(im)} accepted; observations: {len(result.observations)} merged from "
                  f"{result.n_input_observations} input rows ({100 * result.kept_fraction:.1f} % of the rows used)")
    if result.rejections:
        console.print("rejected observations (rows): " + ", ".join(f"{k} {v}" for k, v in result.rejections.items()))
    if result.image_rejections:
        console.print("rejected images: " + ", ".join(f"{k} {v}" for k, v in result.image_rejections.items()))
    if verbose:
        g = im.scale[im.accepted]
        if len(g):
            console.print(f"scale G: median {np.median(g):.4g}, range {g.min():.4g} - {g.max():.4g}")
    console.print("time: " + ", ".join(f"{k} {v:.2f} s" for k, v in result.timing.items()))


def _pct(v) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{100 * v:.1f}"


def _r(v) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{v:.3f}"


def main(argv: list[str] | None = None) -> int:
    """Console entry point: one-line errors, exit codes 0 / 1 / 2 (SPEC)."""
    return run_command(command, "jfjoch_scale", argv)


def entry() -> None:
    """Console-script wrapper: exit with main()'s code."""
    sys.exit(main())


if __name__ == "__main__":
    sys.exit(main())
