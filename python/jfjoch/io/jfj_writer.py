"""Write simulated data in the Jungfraujoch file layout (as shared/data/hewl_rot1) plus truth files.

``<prefix>_master.h5``: NXmx metadata (/entry/instrument/..., detectorSpecific/pixel_mask, detector_module
vectors, sample/transformations/omega, sample/unit_cell, sample/space_group) and an external link
``/entry/data/data_000001`` to ``/entry/data/data`` of ``<prefix>_data_000001.h5`` (int32 frames, one chunk
per image, bitshuffle+LZ4). ``truth.json`` and ``truth_partials.npy`` go beside them.
Every file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import hdf5plugin
import numpy as np

if TYPE_CHECKING:
    from ..simulate import Frame, Simulator

__all__ = ["CONVENTIONS", "write_dataset"]

CONVENTIONS = {
    "lab_frame": "right-handed; X-ray beam along +z; +x along the detector fast axis (increasing column "
    "index), +y along the slow axis (increasing row index); the detector is perpendicular to the beam",
    "pixel_origin": "pixel (i, j) (column i, row j, 0-based) has its centre at (i, j); the beam hits the "
    "detector at beam_center_px",
    "pixel_to_lab_mm": "r(i, j) = ((i - bx) * pixel, (j - by) * pixel, distance)",
    "A_star": "3x3, rows = lab x, y, z; columns = a*, b*, c* in 1/angstrom (no 2 pi); "
    "s = A_star @ (h, k, l); |s| = 1/d",
    "rotation_axis": [1.0, 0.0, 0.0],
    "rotation": "right-handed about rotation_axis; at angle w the crystal's A_star is Rot(axis, w) @ "
    "A_star_at_omega0; A_star_mid is at the middle of the image's oscillation",
    "diffraction": "a reflection diffracts where |s + s0| = 1/lambda, s0 = (0, 0, 1/lambda); its spot is "
    "where the ray along s + s0 meets the detector",
}


def _str(g: h5py.Group, name: str, value: str) -> None:
    g.create_dataset(name, data=value, dtype=h5py.string_dtype())


def _num(g: h5py.Group, name: str, value, units: str | None = None, dtype=None) -> h5py.Dataset:
    ds = g.create_dataset(name, data=np.asarray(value, dtype=dtype))
    if units is not None:
        ds.attrs["units"] = units
    return ds


def _tmp(path: Path) -> Path:
    return path.with_name(path.name + f".tmp{os.getpid()}")


def _experiment(sim: Simulator):
    """The simulated dataset's geometry as an Experiment (for the shared NXmx geometry writer)."""
    from ..experiment import Beam, Detector, Experiment, Goniometer

    s = sim.s
    bx, by = sim.beam_center
    det = Detector(nx=sim.nx, ny=sim.ny, pixel_mm=s.pixel_mm, origin_mm=np.zeros(3), mask=sim.mask != 0,
                   saturation=s.saturation).with_beam(bx, by, s.distance_mm)  # fmt: skip
    gon = None
    if s.mode == "rotation":
        gon = Goniometer(axis=np.asarray(sim.axis, float), start_deg=s.omega_start_deg,
                         increment_deg=s.omega_width_deg)  # fmt: skip
    return Experiment(beam=Beam(s.wavelength_A, polarization_fraction=s.polarization_fraction), detector=det,
                      goniometer=gon, unit_cell=tuple(float(c) for c in s.cell),
                      space_group=int(sim.sg.number))  # fmt: skip


def _write_master(path: Path, data_name: str, sim: Simulator) -> None:
    from .nxmx_geometry import write_experiment

    s = sim.s
    with h5py.File(path, "w") as f:
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        _str(entry, "definition", "NXmx")
        _str(entry, "start_time", "2026-01-01T00:00:00Z")
        _str(entry, "end_time", "2026-01-01T00:00:01Z")
        data = entry.create_group("data")
        data.attrs["NX_class"] = "NXdata"
        data["data_000001"] = h5py.ExternalLink(data_name, "/entry/data/data")
        write_experiment(entry, _experiment(sim), n_angles=s.n_images, mask_in_detector_specific=True,
                         pixel_mask=sim.mask)  # fmt: skip
        inst = entry["instrument"]
        _str(inst, "name", f"simulated {sim.layout.name} (jfjoch.simulate)")
        det = inst["detector"]
        _num(det, "bit_depth_image", 32)
        _num(det, "count_time", 0.01, "s")
        _num(det, "frame_time", 0.01, "s")
        _str(det, "description", f"{sim.layout.name} simulated by jfjoch.simulate")
        _num(det, "distance", s.distance_mm / 1000.0, "m")
        spec = det["detectorSpecific"]
        _num(spec, "nimages", s.n_images)
        _num(spec, "ntrigger", 1)
        _num(spec, "x_pixels_in_detector", sim.nx)
        _num(spec, "y_pixels_in_detector", sim.ny)
        sample = entry["sample"]
        _str(sample, "name", "simulated crystal")
        if s.mode != "rotation":
            _str(sample, "depends_on", ".")


def _frames_ahead(sim: Simulator, depth: int = 2) -> Iterator[Frame]:
    """Frames in order, rendered up to ``depth`` ahead in worker threads (the kernel releases the GIL),
    so rendering overlaps compression and writing. The bytes do not depend on it."""
    n = sim.s.n_images
    with ThreadPoolExecutor(max_workers=depth) as ex:
        pending = deque(ex.submit(sim.frame, i) for i in range(min(depth, n)))
        nxt = len(pending)
        while pending:
            fr = pending.popleft().result()
            if nxt < n:
                pending.append(ex.submit(sim.frame, nxt))
                nxt += 1
            yield fr


def write_dataset(prefix: Path, sim: Simulator) -> tuple[Path, Path, Path, Path]:
    """Render every frame of ``sim`` and write master, data, truth.json and truth_partials.npy."""
    s = sim.s
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    master = prefix.with_name(prefix.name + "_master.h5")
    data = prefix.with_name(prefix.name + "_data_000001.h5")
    truth = prefix.parent / "truth.json"
    partials = prefix.parent / "truth_partials.npy"
    tmp = {p: _tmp(p) for p in (master, data, truth, partials)}
    images, rows = [], []
    try:
        with h5py.File(tmp[data], "w") as f:
            g = f.create_group("entry").create_group("data")
            f["entry"].attrs["NX_class"] = "NXentry"
            g.attrs["NX_class"] = "NXdata"
            ds = g.create_dataset(
                "data",
                shape=(s.n_images, sim.ny, sim.nx),
                dtype=np.int32,
                chunks=(1, sim.ny, sim.nx),
                **hdf5plugin.Bitshuffle(cname="lz4"),
            )
            ds.attrs["image_nr_low"] = np.int64(1)
            ds.attrs["image_nr_high"] = np.int64(s.n_images)
            for fr in _frames_ahead(sim):
                ds[fr.index] = fr.image
                im = {"image": fr.index, "A_star_mid": fr.A_star.tolist()}
                if s.mode == "rotation":
                    im["A_star_at_omega0"] = sim.A0[0].tolist()
                    im["omega_start_deg"] = s.omega_start_deg + fr.index * s.omega_width_deg
                    im["omega_width_deg"] = s.omega_width_deg
                images.append(im)
                r = np.empty((len(fr.photons), 5), np.float32)
                r[:, 0] = fr.index
                r[:, 1:4] = fr.hkl
                r[:, 4] = fr.photons
                rows.append(r)
        _write_master(tmp[master], data.name, sim)
        conv = dict(CONVENTIONS)
        conv["rotation_axis"] = [float(v) for v in sim.axis]
        doc = {
            "generator": "jfjoch.simulate (in-house; see docs/simulate.md)",
            "mode": s.mode,
            "unit_cell": [float(v) for v in s.cell],
            "space_group": sim.sg.hm,
            "space_group_number": sim.sg.number,
            "wavelength_A": s.wavelength_A,
            "distance_mm": s.distance_mm,
            "pixel_size_mm": s.pixel_mm,
            "image_size_px": [sim.nx, sim.ny],
            "beam_center_px": [sim.beam_center[0], sim.beam_center[1]],
            "conventions": conv,
            "images": images,
        }
        with open(tmp[truth], "w") as fh:
            json.dump(doc, fh, indent=1)
        with open(tmp[partials], "wb") as fh:
            np.save(fh, np.concatenate(rows) if rows else np.zeros((0, 5), np.float32))
        for p in (data, partials, truth, master):  # master last: its presence means complete
            os.replace(tmp[p], p)
    finally:
        for t in tmp.values():
            if t.exists():
                t.unlink()
    return master, data, truth, partials
