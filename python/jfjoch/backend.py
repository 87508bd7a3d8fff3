"""The one place that decides where a kernel runs (the Python side of csrc/core/backend.hpp).

``resolve_backend(requested, what)`` maps "auto" | "cpu" | "cuda" (and "gpu" as "cuda") to the backend
that will run: "cuda" without a usable device is a :class:`~jfjoch.errors.UsageError`; "auto" runs on the
GPU when this build has CUDA and a device is present, otherwise on the CPU. A GPU-capable build on a
machine without a device records the fallback once per process (one RuntimeWarning, which the CLI shows as
a note), instead of a check and a warning in every caller (pyFAI's ``Method.degraded()`` idea).
"""

from __future__ import annotations

import threading
import warnings

from . import _core
from .errors import UsageError

__all__ = ["BACKENDS", "gpu_available", "resolve_backend"]

BACKENDS = ("auto", "cpu", "cuda")
_warned: set[str] = set()
_lock = threading.Lock()


def gpu_available() -> bool:
    """True when the CUDA backend is compiled in and a device is present."""
    return bool(getattr(_core, "cuda_compiled", False)) and _core.cuda_device_count() > 0


def resolve_backend(requested: str, what: str, *, soft: bool = False) -> str:
    """The backend that runs kernel family ``what`` (e.g. "spot finder"): "cpu" or "cuda".

    requested: "auto", "cpu" or "cuda". soft: a "cuda" request without a device falls back to the CPU with
    one note instead of an error (a GPU algorithm asked for by name, such as ``-X fft``).
    """
    b = str(requested).lower()
    if b not in BACKENDS:
        raise UsageError(f"{what}: backend must be one of {', '.join(BACKENDS)}, not {requested!r}")
    if b == "cpu":
        return "cpu"
    if gpu_available():
        return "cuda"
    if b == "cuda" and not soft:
        compiled = bool(getattr(_core, "cuda_compiled", False))
        why = "no CUDA device is present" if compiled else "this build has no CUDA"
        raise UsageError(f"{what}: the CUDA backend was requested but {why}")
    compiled = bool(getattr(_core, "cuda_compiled", False))
    if compiled or soft:
        with _lock:
            first = what not in _warned
            _warned.add(what)
        if first:
            warnings.warn(f"no GPU available: the {what} runs on the CPU", RuntimeWarning, stacklevel=3)
    return "cpu"
