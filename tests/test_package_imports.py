"""The package's lazy exports (PEP 562): every public name resolves, functions stay functions, and
`jfjoch_scale` does not load the image pipeline or scipy.optimize (its start-up is part of its time)."""

from __future__ import annotations

import subprocess
import sys

from .conftest import shared


def _run(code: str) -> str:
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip().splitlines()[-1]


def test_every_public_name_resolves_and_the_functions_stay_functions():
    # importing the same-named submodules first must not turn jfjoch.integrate / jfjoch.refine into modules
    out = _run(
        "import jfjoch.integrate, jfjoch.refine, jfjoch.pipeline, jfjoch.scale.stats\n"
        "import jfjoch, types\n"
        "missing = [n for n in jfjoch.__all__ if not hasattr(jfjoch, n)]\n"
        "assert not missing, missing\n"
        "assert all(callable(getattr(jfjoch, n)) for n in ('integrate', 'refine', 'process', 'scale', 'find_spots'))\n"
        "assert isinstance(jfjoch.integrate, types.FunctionType) and isinstance(jfjoch.refine, types.FunctionType)\n"
        "assert isinstance(jfjoch.pipeline, types.ModuleType) and set(jfjoch.__all__) <= set(dir(jfjoch))\n"
        "for bad in ('no_such_name', 'io.nxmx', 'no.such'):\n"
        "    try:\n        getattr(jfjoch, bad)\n        raise SystemExit(f'{bad} resolved')\n"
        "    except AttributeError:\n        pass\n"
        "print('ok')"
    )
    assert out == "ok"


def test_jfjoch_scale_loads_neither_the_image_pipeline_nor_scipy_optimize(tmp_path):
    mtz = shared("hewl_model", "HEWL_unmerged_subset_2020.mtz")
    out = _run(
        "import runpy, sys\n"
        f"sys.argv = ['jfjoch_scale', {str(mtz)!r}, '-S', '96', '-P', 'unity', '-o', {str(tmp_path / 'h')!r}]\n"
        "try:\n    runpy.run_module('jfjoch.cli.scale', run_name='__main__')\nexcept SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print(sorted(m for m in ('jfjoch.pipeline', 'jfjoch.worker', 'jfjoch.frame_pass', 'hdf5plugin',\n"
        "                         'scipy.optimize') if m in sys.modules))"
    )
    assert out == "[]"
    assert (tmp_path / "h.mtz").exists()
