"""`<prefix>_report.html` in a real headless browser (playwright driving Debian's chromium): the plots render.

Skipped only when playwright or a chromium cannot be found (`apt-get install chromium`,
`pip install playwright`; playwright's own browser download is not needed: ``executable_path``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from jfjoch.scale import scale_and_merge
from jfjoch.scale.data import ImageStats, ScaleInput
from jfjoch.scale.report import render_report

from .scale_data import synthetic_stills


def _chromium() -> str | None:
    for c in (os.environ.get("JFJOCH_CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser"),
              "/usr/bin/chromium"):
        if c and Path(c).exists():
            return c
    return None


def test_report_is_self_contained():
    syn = synthetic_stills(50, 200, seed=1)
    html = render_report(scale_and_merge(syn.inputs, partiality="fixed"))
    assert html.startswith("<!DOCTYPE html>") and html.count("<svg") == 4
    body = html.replace("http://www.w3.org/2000/svg", "")
    assert "http" not in body and "<script" not in body and "src=" not in body


@pytest.fixture(scope="module")
def report_file(tmp_path_factory):
    syn = synthetic_stills(120, 250, seed=4, B=np.linspace(-5, 5, 120))
    inp = syn.inputs[0]
    rng = np.random.default_rng(0)
    stats = ImageStats(image=np.arange(130), n_spots=rng.integers(50, 300, 130), indexed=np.arange(130) < 120)
    inp = ScaleInput(reflections=inp.reflections, cell=inp.cell, space_group=96, wavelength=1.0, image_stats=stats)
    r = scale_and_merge([inp], partiality="fixed", refine_bfactor=True, anomalous=True)
    path = tmp_path_factory.mktemp("report") / "x_report.html"
    path.write_text(render_report(r))
    return path, r


def test_report_renders_in_browser(report_file):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    exe = _chromium()
    if exe is None:
        pytest.skip("no chromium found (apt-get install chromium)")
    path, result = report_file
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: errors.append(f"network request {r.url}") if not r.url.startswith(
                "file:") else None)
            page.goto(path.as_uri())
            plots = page.query_selector_all("svg.plot")
            ids = [s.get_attribute("id") for s in plots]
            assert ids == ["plot-images", "plot-resolution", "plot-scales", "plot-wilson"]
            for s in plots:
                box = s.bounding_box()
                assert box and box["width"] > 300 and box["height"] > 200, (s.get_attribute("id"), box)
                marks = s.query_selector_all("polyline.series, g.series circle")
                assert marks, s.get_attribute("id")
                mbox = marks[0].bounding_box()
                assert mbox and (mbox["width"] > 0 or mbox["height"] > 0)
            # spots per image: one point per image of ImageStats (130), the indexed fraction too
            pts = page.query_selector("#plot-images polyline.series").get_attribute("points").split()
            assert len(pts) == 130
            rows = page.query_selector_all("#stats tr")
            assert len(rows) == 1 + len(result.shells) + 1
            assert "CCanom %" in page.inner_text("#stats")
        finally:
            browser.close()
    assert not errors, errors
