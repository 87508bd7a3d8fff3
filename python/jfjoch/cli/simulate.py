"""jfjoch_simulate: write a simulated JUNGFRAU dataset (rotation or stills) in the Jungfraujoch layout.

Option parsing and printing only; the work is jfjoch.simulate.simulate_dataset.
"""

from __future__ import annotations

import sys

import numpy as np
import rich_click as click

from ..errors import JfjochError, UsageError

__all__ = ["main"]


def _parse_detector(value: str) -> str | tuple[int, int]:
    v = value.strip().upper()
    if v in ("1M", "4M"):
        return v
    parts = v.replace("X", " ").replace(",", " ").split()
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return int(parts[0]), int(parts[1])
    raise UsageError(f"--detector must be 1M, 4M or NXxNY (e.g. 512x512), got {value!r}")


def _floats(value: str | None, n: int, name: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        vals = tuple(float(v) for v in value.replace(",", " ").split())
    except ValueError:
        raise UsageError(f"{name} needs {n} numbers, got {value!r}") from None
    if len(vals) != n:
        raise UsageError(f"{name} needs {n} numbers, got {value!r}")
    return vals


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("prefix")
@click.option("--detector", "-d", default="1M", show_default=True, help="1M, 4M or NXxNY (plain detector).")
@click.option("--mode", type=click.Choice(["rotation", "stills"]), default="rotation", show_default=True)
@click.option("--images", "-n", "n_images", type=int, default=10, show_default=True, help="Number of images.")
@click.option(
    "--cell",
    default="79.344 79.344 37.81 90 90 90",
    show_default=True,
    help="a b c alpha beta gamma (Å, deg).",
)
@click.option("--space-group", "-s", default="P 43 21 2", show_default=True, help="Symbol or number.")
@click.option("--wavelength", "wavelength_A", type=float, default=1.0, show_default=True, help="Å.")
@click.option("--distance", "distance_mm", type=float, default=80.0, show_default=True, help="mm.")
@click.option("--beam-center", default=None, help="x y in pixels (default: frame centre).")
@click.option("--omega-start", type=float, default=0.0, show_default=True, help="deg.")
@click.option("--omega-width", type=float, default=0.5, show_default=True, help="deg per image.")
@click.option("--mosaicity", type=float, default=0.05, show_default=True, help="deg (sigma).")
@click.option("--spot-width", type=float, default=2.0e-4, show_default=True, help="1/Å (sigma).")
@click.option("--partiality", type=click.Choice(["gaussian", "lorentzian"]), default="gaussian")
@click.option("--psf", type=float, default=0.6, show_default=True, help="PSF sigma, px.")
@click.option("--d-min", type=float, default=None, help="Å (default: detector corner, >= 1.2).")
@click.option("--wilson-b", type=float, default=15.0, show_default=True, help="Å².")
@click.option("--photons", type=float, default=600.0, show_default=True, help="Photons per unit |F|².")
@click.option("--model", default=None, help="PDB/mmCIF or MTZ for |F|² (default: random Wilson set).")
@click.option("--background", type=float, default=1.0, show_default=True, help="Photons/pixel.")
@click.option("--water-ring", type=float, default=2.0, show_default=True, help="Peak photons/pixel.")
@click.option("--no-noise", is_flag=True, help="Write rint(expected photons), no Poisson noise.")
@click.option("--no-crystal", is_flag=True, help="No crystal: blank frames (background, water ring, noise).")
@click.option("--orientation", default=None, help="U as 9 numbers (row-major); default random.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", "-N", type=int, default=1, show_default=True, help="CPU threads (0 = all).")
@click.option("--backend", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu", show_default=True)
@click.option("-v", "--verbose", is_flag=True, help="Tracebacks on errors.")
def main(prefix: str, **o) -> None:
    """Simulate PREFIX_master.h5 + PREFIX_data_000001.h5 (+ truth.json, truth_partials.npy)."""
    from ..simulate import simulate_dataset

    verbose = o.pop("verbose")
    try:
        cell = _floats(o["cell"], 6, "--cell")
        bc = _floats(o["beam_center"], 2, "--beam-center")
        U = _floats(o["orientation"], 9, "--orientation")
        kwargs = {
            "beam_center_px": bc,
            "U": None if U is None else np.array(U).reshape(3, 3),
            "omega_start_deg": o["omega_start"],
            "omega_width_deg": o["omega_width"],
            "mosaicity_deg": o["mosaicity"],
            "spot_width_recip": o["spot_width"],
            "partiality": o["partiality"],
            "psf_sigma_px": o["psf"],
            "d_min_A": o["d_min"],
            "wilson_B": o["wilson_b"],
            "photons_per_intensity": o["photons"],
            "model": o["model"],
            "background": o["background"],
            "water_ring": o["water_ring"],
            "noise": not o["no_noise"],
            "crystal": not o["no_crystal"],
            "threads": o["threads"],
            "backend": o["backend"],
        }
        paths = simulate_dataset(
            prefix,
            detector=_parse_detector(o["detector"]),
            mode=o["mode"],
            n_images=o["n_images"],
            cell=cell,
            space_group=o["space_group"],
            wavelength_A=o["wavelength_A"],
            distance_mm=o["distance_mm"],
            seed=o["seed"],
            **kwargs,
        )
    except JfjochError as e:
        if verbose:
            raise
        click.echo(f"jfjoch_simulate: error: {e}", err=True)
        sys.exit(e.exit_code)
    click.echo(f"wrote {paths.master}, {paths.data}, {paths.truth}, {paths.partials}")


if __name__ == "__main__":
    main()
