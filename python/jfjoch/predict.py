"""Prediction of Bragg reflections on stills and rotation images (C++: csrc/integrate/predict.hpp).

Stills: reflections within the image's profile radius R_eff of the Ewald sphere,
R_eff² = R0² + (b λ)² / (2 d⁴) (``--bandwidth`` b); R0 is refined from the image's indexed spots as
``profile_cutoff`` times the RMS Ewald offset of those spots; partiality exp(−ε²/(2ρ²)), ρ = R_eff/profile_cutoff.
Rotation: each reflection's diffraction angle (closed form), every image its rocking curve
(Gaussian, sigma = mosaicity × Lorentz factor) touches with a recorded fraction ≥ ``min_fraction``;
that fraction is the partiality. lp = Lorentz × polarisation (Lorentz 1 for stills).
Units: Å, 1/Å, degrees at the interface; pixel centres at integers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _core
from .experiment import Experiment

__all__ = ["Predicted", "PredictionSettings", "RotationPredictor", "corner_resolution", "predict_still",
           "profile_radius_from_spots"]  # fmt: skip


@dataclass(frozen=True)
class PredictionSettings:
    """Settings of the prediction (plain, picklable)."""

    d_min: float | None = None
    """High-resolution limit (Å); None = the detector corner."""
    d_max: float = 1.0e4
    """Low-resolution limit (Å)."""
    bandwidth: float = 0.0
    """Relative bandwidth FWHM (stills)."""
    profile_cutoff: float = 5.0
    """Stills: R0 = this × the RMS Ewald offset of the indexed spots. nanoBragg stills (hewl_stills1): the
    250 strongest spots have an RMS offset of 6.5e-4 1/Å, while reflections with >= 100 photons reach
    2.4e-3 (95th percentile) and 4e-3 (99th): 5 × RMS covers about 97 % of them."""
    min_profile_rms: float = 2.0e-4
    """Floor of the RMS Ewald offset (1/Å) when an image has few indexed spots."""
    min_fraction: float = 0.001
    """Rotation: smallest fraction of a reflection predicted on an image."""
    ewald_cutoff: float = 2.0e-3
    """Rotation: also predict a reflection on an image where its reciprocal point comes within this distance
    (1/Å) of the Ewald sphere: points near the spindle stay close to it for many degrees (their Lorentz
    factor is large) and keep diffracting beyond a Gaussian rocking curve. On hewl_rot1 with the true
    crystal, 0 / 1e-3 / 2e-3 / 3e-3 give a recall of 0.950 / 0.970 / 0.988 / 0.994 of the visible truth
    partials >= 100 photons for 1277 / 1283 / 1288 / 1409 predictions per image."""
    max_rocking_sigma_deg: float = 5.0
    """Rotation: cap of the rocking sigma near the spindle (degrees)."""
    edge_margin_px: float = 0.0


@dataclass(frozen=True)
class Predicted:
    """Predicted observations of one image (equal-length columns)."""

    hkl: np.ndarray
    """(n, 3) int32."""
    x: np.ndarray
    y: np.ndarray
    d: np.ndarray
    eps: np.ndarray
    """Stills: Ewald offset (1/Å)."""
    phi: np.ndarray
    """Rotation: diffraction angle (degrees); NaN for stills."""
    partiality: np.ndarray
    lp: np.ndarray
    zeta: np.ndarray
    event: np.ndarray
    """Rotation: index of the sweep event (hkl, angle) of each prediction; -1 for stills."""

    def __len__(self) -> int:
        return len(self.x)

    @classmethod
    def from_core(cls, r: dict) -> Predicted:
        phi = np.asarray(r["phi"], float)
        return cls(hkl=np.asarray(r["hkl"], np.int32).reshape(-1, 3), x=np.asarray(r["x"]), y=np.asarray(r["y"]),
                   d=np.asarray(r["d"]), eps=np.asarray(r["eps"]), phi=np.degrees(phi),
                   partiality=np.asarray(r["partiality"]), lp=np.asarray(r["lp"]),
                   zeta=np.asarray(r["zeta"]), event=np.asarray(r["event"], np.int64))  # fmt: skip

    def select(self, m) -> Predicted:
        return Predicted(**{k: getattr(self, k)[m] for k in self.__dataclass_fields__})


def corner_resolution(experiment: Experiment) -> float:
    """Resolution (Å) at the detector corner farthest from the beam: the highest on the detector."""
    q = float(_core.azint_corner_q(experiment.core))
    return 2 * math.pi / q


def _d_min(experiment: Experiment, settings: PredictionSettings) -> float:
    return float(settings.d_min) if settings.d_min is not None else corner_resolution(experiment)


def profile_radius_from_spots(experiment: Experiment, A: np.ndarray, hkl: np.ndarray,
                              settings: PredictionSettings | None = None) -> tuple[float, float]:  # fmt: skip
    """(rms, R0): the RMS Ewald offset (1/Å) of the indexed reflections ``hkl`` with crystal A, and the
    prediction cutoff R0 = profile_cutoff × rms (floored)."""
    st = settings or PredictionSettings()
    hkl = np.asarray(hkl, float).reshape(-1, 3)
    if len(hkl) == 0:
        rms = st.min_profile_rms
    else:
        s = hkl @ np.asarray(A, float).T
        k = s + np.array([0.0, 0.0, 1.0 / experiment.beam.wavelength_A])
        eps = np.linalg.norm(k, axis=1) - 1.0 / experiment.beam.wavelength_A
        rms = max(float(np.sqrt(np.mean(eps * eps))), st.min_profile_rms)
    return rms, st.profile_cutoff * rms


def predict_still(experiment: Experiment, A: np.ndarray, profile_radius: float,
                  settings: PredictionSettings | None = None, backend: str = "cpu") -> Predicted:  # fmt: skip
    """Reflections of one still with crystal A (columns a*, b*, c*, 1/Å) within ``profile_radius`` (R0,
    1/Å) of the Ewald sphere (widened by the bandwidth), on the detector."""
    st = settings or PredictionSettings()
    ps = _core.StillPredictionSettings()
    ps.d_min_A = _d_min(experiment, st)
    ps.d_max_A = float(st.d_max)
    ps.profile_radius = float(profile_radius)
    ps.bandwidth = float(st.bandwidth)
    ps.cutoff_sigmas = float(st.profile_cutoff)
    ps.edge_margin_px = float(st.edge_margin_px)
    return Predicted.from_core(_core.predict_still(experiment.core, np.asarray(A, float), ps, backend))


class RotationPredictor:
    """Predictions of a rotation sweep: the sweep's events (hkl, angle) are computed once; each image then
    gets the events whose rocking curves reach it, re-predicted with its own crystal orientation.

    Thread-safe (read-only after construction) and picklable.
    """

    def __init__(self, experiment: Experiment, A0: np.ndarray, mosaicity_deg: float, first_image: int,
                 last_image: int, settings: PredictionSettings | None = None) -> None:  # fmt: skip
        gon = experiment.goniometer
        if gon is None:
            raise ValueError("rotation prediction needs a goniometer")
        self.experiment = experiment
        self.A0 = np.asarray(A0, float)
        self.mosaicity_deg = float(mosaicity_deg)
        self.settings = settings or PredictionSettings()
        self.first_image, self.last_image = int(first_image), int(last_image)
        lo = gon.start_deg + self.first_image * gon.increment_deg
        hi = gon.start_deg + (self.last_image + 1) * gon.increment_deg
        lo, hi = min(lo, hi), max(lo, hi)
        margin = 45.0
        self._core_settings = self._make_core_settings(np.radians(lo - margin), np.radians(hi + margin))
        ev = _core.rotation_events(experiment.core, self.A0, self._core_settings)
        self.hkl = np.ascontiguousarray(ev["hkl"], np.int32)
        self.phi = np.ascontiguousarray(ev["phi"], float)
        self.sigma = np.ascontiguousarray(ev["sigma"], float)
        # events sorted by the start of their window; the widest window bounds the search
        reach = np.asarray(ev["reach"], float) + np.radians(abs(gon.increment_deg))
        self._start = self.phi - reach
        self._order = np.argsort(self._start, kind="stable")
        self._start_sorted = self._start[self._order]
        self._max_reach = float(reach.max()) if len(reach) else 0.0

    def _make_core_settings(self, phi_min: float, phi_max: float) -> _core.RotationPredictionSettings:
        st = self.settings
        s = _core.RotationPredictionSettings()
        s.d_min_A = _d_min(self.experiment, st)
        s.d_max_A = float(st.d_max)
        s.mosaicity_rad = math.radians(self.mosaicity_deg)
        s.max_sigma_rad = math.radians(st.max_rocking_sigma_deg)
        s.phi_min = float(phi_min)
        s.phi_max = float(phi_max)
        s.min_fraction = float(st.min_fraction)
        s.ewald_cutoff = float(st.ewald_cutoff)
        s.edge_margin_px = float(st.edge_margin_px)
        return s

    def __reduce__(self):
        return (RotationPredictor, (self.experiment, self.A0, self.mosaicity_deg, self.first_image,
                                    self.last_image, self.settings))  # fmt: skip

    def image_range_rad(self, image: int) -> tuple[float, float]:
        gon = self.experiment.goniometer
        a = math.radians(gon.start_deg + image * gon.increment_deg)
        b = math.radians(gon.start_deg + (image + 1) * gon.increment_deg)
        return min(a, b), max(a, b)

    def events_near(self, image: int) -> np.ndarray:
        """Indices of the events whose rocking window can reach image ``image`` (sorted)."""
        lo, hi = self.image_range_rad(image)
        n = int(np.searchsorted(self._start_sorted, hi, side="right"))
        cand = self._order[:n]
        end = 2 * self.phi[cand] - self._start[cand]  # symmetric window
        return np.sort(cand[end >= lo]).astype(np.int32)

    def predict(self, image: int, A0_image: np.ndarray | None = None) -> Predicted:
        """Observations on ``image`` predicted with the crystal A0_image (at ω = 0; default the sweep's)."""
        lo, hi = self.image_range_rad(image)
        idx = self.events_near(image)
        A = self.A0 if A0_image is None else np.asarray(A0_image, float)
        r = _core.predict_rotation_image(self.experiment.core, A, self.hkl, self.phi, self.sigma, idx, lo, hi,
                                         self._core_settings)  # fmt: skip
        return Predicted.from_core(r)
