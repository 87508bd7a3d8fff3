"""`/entry/scaling` of `_process.h5` (SPEC; docs/formats.md): written by the pipeline after `-M`.

    from jfjoch.io.scaling_h5 import write_scaling_group
    with h5py.File(tmp, "a") as f:
        write_scaling_group(f["entry"].require_group("scaling"), result)
"""

from __future__ import annotations

import json

import h5py
import numpy as np

from ..scale.data import ScaleResult

__all__ = ["read_scaling_group", "write_scaling_group"]


def write_scaling_group(group: h5py.Group, result: ScaleResult) -> h5py.Group:
    """Per-image ``image``, ``scale`` (G), ``b_factor``, ``mosaicity``, ``cc``, ``accepted`` (SPEC), plus
    ``run``, ``batch``, ``n_obs``, ``wedge``; attributes: error model ``a``, ``b``, ``isa``, the space
    group, cell, resolution estimate, rejection counts and the merging statistics (JSON text)."""
    im = result.images
    group.attrs["NX_class"] = "NXcollection"

    def ds(name, data, units=None):
        if name in group:
            del group[name]
        d = group.create_dataset(name, data=data)
        if units:
            d.attrs["units"] = units
        return d

    ds("image", np.asarray(im.image, np.int64))
    ds("scale", np.asarray(im.scale, np.float32))
    ds("b_factor", np.asarray(im.b_factor, np.float32), "angstrom^2")
    ds("mosaicity", np.asarray(im.mosaicity, np.float32), "degree")
    ds("cc", np.asarray(im.cc, np.float32))
    ds("accepted", np.asarray(im.accepted, np.uint8))
    ds("run", np.asarray(im.run, np.int32))
    ds("batch", np.asarray(im.batch, np.int64))
    ds("n_obs", np.asarray(im.n_obs, np.int32))
    ds("wedge", np.asarray(im.wedge, np.float32), "degree")
    em = result.error_model
    group.attrs["a"] = float(em.a)
    group.attrs["b"] = float(em.b)
    group.attrs["isa"] = float(em.isa) if np.isfinite(em.isa) else np.nan
    group.attrs["space_group_number"] = int(result.space_group_number)
    group.attrs["unit_cell"] = np.asarray(result.cell, float)
    group.attrs["resolution_estimate"] = float(result.resolution_estimate) if result.resolution_estimate else np.nan
    group.attrs["partiality_model"] = str(getattr(result.options, "partiality", ""))
    group.attrs["rejections"] = json.dumps(result.rejections)
    group.attrs["merging_statistics"] = json.dumps(result.merging_stats_dict())
    return group


def read_scaling_group(group: h5py.Group) -> dict:
    out = {k: group[k][()] for k in group if isinstance(group[k], h5py.Dataset)}
    out.update({k: group.attrs[k] for k in group.attrs})
    return out
