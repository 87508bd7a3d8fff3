"""Shared test helpers: where the shared data live, and skip markers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("JFJOCH_SHARED_DATA", ROOT.parent / "shared" / "data"))
SHARED_CHECKS = SHARED_DATA.parent / "checks"


def shared(*parts: str) -> Path:
    """Path into ../shared/data; skips the test when the shared data are not beside the checkout."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not found: {p}")
    return p


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip("shared data not found")
    return SHARED_DATA


def truth_module():
    """shared/checks/truth.py (prediction and misorientation helpers, independent of the project)."""
    import importlib.util

    if not (SHARED_CHECKS / "truth.py").exists():
        pytest.skip("shared/checks/truth.py not found")
    spec = importlib.util.spec_from_file_location("truth", SHARED_CHECKS / "truth.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
