"""Bragg integration stage (public API: :func:`integrate`): summation and 2-D profile fitting of predicted
reflections on one image, by the C++ kernel (csrc/integrate/integrate*.{hpp,cpp,cu}, docs/integration.md).

Input: the image (int32 counts, INT32_MIN = invalid), the experiment (mask, saturation), and the predicted
observations (:class:`~jfjoch.predict.Predicted`). Output: a :class:`~jfjoch.tables.ReflectionTable` with
one row per observation that was integrated (summation succeeded), the chosen intensity in ``I``/``sigma``
(``method`` profile: the profile-fitted value where the fit succeeded, else the summation value with the
PROFILE_FAILED flag), and :class:`~jfjoch.results.IntegrationCounts` saying what was dropped and why.
Profiles are learned per image, per detector region (``regions`` x ``regions`` blocks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .experiment import Experiment
from .predict import Predicted
from .results import IntegrationCounts
from .tables import ReflectionFlag, ReflectionTable

__all__ = ["IntegrationSettings", "integrate"]

DEFAULT_RADII = (5.5, 7.5, 9.5)
"""Default signal disc r1 and background annulus r2..r3 (px), when --integration-radius is not given; the
evidence for the choice is in jfjoch.integration_kernel.DEFAULT_RADII and docs/integration_kernel.md."""


MIN_ZETA = 0.05
"""Rotation: observations with zeta = 1/L below this are flagged NEAR_SPINDLE (DIALS uses the same bound). On
hewl_rot1 they are 5 % of the rows, and the few strong ones among them (e.g. (4,4,0), L = 50, in diffraction
on all 40 images) merged 3 to 9 times too strong, pulling the merged CC to the truth from 0.992 to 0.944."""


@dataclass(frozen=True)
class IntegrationSettings:
    """Settings of the integration stage (plain, picklable)."""

    method: str = "sum"
    """sum | profile | none (the pipeline resolves --integration auto before it gets here)."""
    radii: tuple[float, float, float] = DEFAULT_RADII
    """Signal disc radius r1 and background annulus r2 < r <= r3 (px)."""
    profile_multiplier: float = 6.0
    """Profile-fitting aperture: radius min(r1, profile_multiplier * profile width / 2)."""
    regions: int = 3
    """Profiles are learned per block of a regions x regions grid over the detector."""
    backend: str = "auto"

    def kernel(self):
        """The kernel's settings (jfjoch.integration_kernel.IntegrationKernelSettings)."""
        from .integration_kernel import IntegrationKernelSettings

        r1, r2, r3 = (float(v) for v in self.radii)
        return IntegrationKernelSettings(r1=r1, r2=r2, r3=r3, profile_multiplier=float(self.profile_multiplier))


def _groups(experiment: Experiment, x: np.ndarray, y: np.ndarray, regions: int) -> tuple[np.ndarray, int]:
    d = experiment.detector
    n = max(int(regions), 1)
    gx = np.clip((np.asarray(x) / d.nx * n).astype(np.int64), 0, n - 1)
    gy = np.clip((np.asarray(y) / d.ny * n).astype(np.int64), 0, n - 1)
    return (gy * n + gx).astype(np.int32), n * n


def integrate(
    image: np.ndarray,
    experiment: Experiment,
    predicted: Predicted,
    settings: IntegrationSettings | None = None,
    *,
    image_number: int = 0,
    indexed_hkl: np.ndarray | None = None,
    pixelrefine=None,
) -> tuple[ReflectionTable, IntegrationCounts, float]:
    """Integrate the predicted reflections of one image.

    image: (ny, nx) int32 counts; experiment: mask and saturation; predicted: positions, hkl, partiality, lp;
    image_number: written to the table; indexed_hkl: (m, 3) hkl of the spots indexed on this image (flagged
    INDEXED_SPOT); pixelrefine: :class:`jfjoch.pixelrefine.PixelRefineSettings` for ``-r pixelrefine`` (the
    intensities and partialities then come from the reference-driven pixel model; its per-image parameters are
    the returned counts' ``pixelrefine``). Returns (reflections, counts, profile width in px or NaN).
    """
    st = settings or IntegrationSettings()
    counts = IntegrationCounts(predicted=len(predicted))
    if st.method == "none" or len(predicted) == 0:
        return ReflectionTable.empty(), counts, float("nan")
    from .integration_kernel import Flag as KernelFlag
    from .integration_kernel import integrate_image

    det = experiment.detector
    mask = det.mask  # bool, read in place by the kernel (no per-image copy)
    sat = int(det.saturation) if det.saturation is not None else np.iinfo(np.int32).max
    group, n_groups = _groups(experiment, predicted.x, predicted.y, st.regions)
    profile = st.method == "profile"  # ("auto" on one image: summation, as for stills)
    out = integrate_image(np.ascontiguousarray(image, np.int32), mask, sat, predicted.x, predicted.y, st.kernel(),
                          group=group, n_groups=n_groups, profile=profile, backend=st.backend)  # fmt: skip
    kflags = np.asarray(out.flags, np.uint32)
    summed = (kflags & KernelFlag.SUMMED) != 0
    counts.dropped_masked = int(np.count_nonzero(kflags & KernelFlag.MASKED))
    counts.dropped_background = int(np.count_nonzero(kflags & KernelFlag.FEW_BACKGROUND))
    counts.dropped_edge = int(np.count_nonzero(kflags & KernelFlag.EDGE))
    counts.overlapped = int(np.count_nonzero(summed & ((kflags & KernelFlag.OVERLAP) != 0)))
    counts.saturated = int(np.count_nonzero(summed & ((kflags & KernelFlag.SATURATED) != 0)))
    I = np.asarray(out.I_sum, float).copy()
    sig = np.asarray(out.sigma_sum, float).copy()
    flags = kflags.astype(np.uint32)
    if profile:
        fitted = summed & ((kflags & KernelFlag.PROFILE_FITTED) != 0) & np.isfinite(out.I_prf)
        fitted &= np.isfinite(out.sigma_prf) & (np.asarray(out.sigma_prf) > 0)
        I[fitted] = np.asarray(out.I_prf)[fitted]
        sig[fitted] = np.asarray(out.sigma_prf)[fitted]
        flags[summed & ~fitted] |= np.uint32(ReflectionFlag.PROFILE_FAILED)
        counts.profile_fitted = int(np.count_nonzero(fitted))
    partiality = np.asarray(predicted.partiality, float)
    if pixelrefine is not None:
        from .pixelrefine import pixelrefine_image

        pr = pixelrefine_image(image, experiment, predicted, np.asarray(out.background), np.asarray(out.n_background),
                               summed, float(st.kernel().r1), pixelrefine)  # fmt: skip
        counts.pixelrefine = pr
        if pr.ok:
            I = np.where(pr.fitted, pr.I, I)
            sig = np.where(pr.fitted, pr.sigma, sig)
            partiality = pr.partiality
            flags[pr.fitted] |= np.uint32(ReflectionFlag.PROFILE_FITTED)
            counts.profile_fitted = int(np.count_nonzero(pr.fitted & summed))
    keep = summed & np.isfinite(I) & np.isfinite(sig) & (sig > 0)
    counts.integrated = int(np.count_nonzero(keep))
    rotation = np.isfinite(predicted.phi)
    partial = np.asarray(predicted.partiality) < 0.99
    flags[partial & rotation] |= np.uint32(ReflectionFlag.PARTIAL)
    flags[rotation & (np.asarray(predicted.zeta) < MIN_ZETA)] |= np.uint32(ReflectionFlag.NEAR_SPINDLE)
    if indexed_hkl is not None and len(indexed_hkl):
        key = _hkl_key(predicted.hkl)
        hit = np.isin(key, _hkl_key(np.asarray(indexed_hkl)))
        flags[hit] |= np.uint32(ReflectionFlag.INDEXED_SPOT)
    n = int(np.count_nonzero(keep))
    table = ReflectionTable(
        image=np.full(n, int(image_number), np.int64),
        h=predicted.hkl[keep, 0],
        k=predicted.hkl[keep, 1],
        l=predicted.hkl[keep, 2],
        I=I[keep],
        sigma=sig[keep],
        x=predicted.x[keep],
        y=predicted.y[keep],
        d=predicted.d[keep],
        phi=predicted.phi[keep],
        partiality=partiality[keep],
        lp=predicted.lp[keep],
        background=np.asarray(out.background)[keep],
        flags=flags[keep],
    ).sorted()
    widths = np.asarray(out.profile_width, float)
    width = float(np.nanmedian(widths)) if widths.size and np.isfinite(widths).any() else float("nan")
    return table, counts, width


def _hkl_key(hkl: np.ndarray) -> np.ndarray:
    h = np.asarray(hkl, np.int64).reshape(-1, 3) + 1024
    return (h[:, 0] << 22) | (h[:, 1] << 11) | h[:, 2]
