"""`<prefix>_report.html`: one self-contained HTML file (inline SVG plots, inline CSS, no script, no
network) with the plots of SPEC (spots and indexing per image, CC1/2 and <I/σ> against resolution, scale
and B against image, Wilson plot) and the statistics table.

The plots are drawn by :func:`svg_plot`, a small line/scatter plotter written for this report.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .data import ScaleResult

__all__ = ["Series", "render_report", "svg_plot"]

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


@dataclass
class Series:
    x: Sequence[float]
    y: Sequence[float]
    label: str
    right: bool = False
    """Plot against the right-hand y axis."""
    style: str = "line"
    """'line', 'points' or 'both'."""


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    first = math.ceil(lo / step) * step
    out, v = [], first
    while v <= hi + 1e-9 * step:
        out.append(round(v, 12))
        v += step
    return out


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-3:
        return f"{v:.2g}"
    return f"{v:.4g}"


def _range(vals: np.ndarray) -> tuple[float, float]:
    v = vals[np.isfinite(vals)]
    if not len(v):
        return 0.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    if hi == lo:
        lo, hi = lo - (abs(lo) or 1) * 0.5, hi + (abs(hi) or 1) * 0.5
    pad = 0.05 * (hi - lo)
    return lo - pad, hi + pad


def svg_plot(series: Sequence[Series], *, title: str, xlabel: str, ylabel: str, y2label: str = "",
             width: int = 560, height: int = 300, xtick_format=None, plot_id: str = "") -> str:
    """An inline SVG line/scatter plot (optionally with a right-hand axis). NaN points are skipped."""
    ml, mr, mt, mb = 64, 64 if any(s.right for s in series) else 20, 30, 48
    pw, ph = width - ml - mr, height - mt - mb
    xs = np.concatenate([np.asarray(s.x, float) for s in series]) if series else np.zeros(0)
    xlo, xhi = _range(xs)
    left = [s for s in series if not s.right]
    right = [s for s in series if s.right]
    ylo, yhi = _range(np.concatenate([np.asarray(s.y, float) for s in left])) if left else (0.0, 1.0)
    y2lo, y2hi = _range(np.concatenate([np.asarray(s.y, float) for s in right])) if right else (0.0, 1.0)

    def X(v):
        return ml + (v - xlo) / (xhi - xlo) * pw

    def Y(v, r=False):
        lo, hi = (y2lo, y2hi) if r else (ylo, yhi)
        return mt + ph - (v - lo) / (hi - lo) * ph

    out = [f'<svg class="plot" id="{html.escape(plot_id)}" xmlns="http://www.w3.org/2000/svg" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}">',
           f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="#fff" stroke="#444"/>',
           f'<text x="{width / 2:.1f}" y="18" text-anchor="middle" class="title">{html.escape(title)}</text>']
    for t in _ticks(xlo, xhi):
        x = X(t)
        lab = xtick_format(t) if xtick_format else _fmt(t)
        out.append(f'<line x1="{x:.1f}" y1="{mt + ph}" x2="{x:.1f}" y2="{mt + ph + 4}" stroke="#444"/>'
                   f'<text x="{x:.1f}" y="{mt + ph + 16}" text-anchor="middle">{html.escape(lab)}</text>'
                   f'<line x1="{x:.1f}" y1="{mt}" x2="{x:.1f}" y2="{mt + ph}" stroke="#eee"/>')
    for t in _ticks(ylo, yhi):
        y = Y(t)
        out.append(f'<line x1="{ml - 4}" y1="{y:.1f}" x2="{ml}" y2="{y:.1f}" stroke="#444"/>'
                   f'<text x="{ml - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    if right:
        for t in _ticks(y2lo, y2hi):
            y = Y(t, True)
            out.append(f'<line x1="{ml + pw}" y1="{y:.1f}" x2="{ml + pw + 4}" y2="{y:.1f}" stroke="#444"/>'
                       f'<text x="{ml + pw + 6}" y="{y + 4:.1f}" text-anchor="start">{_fmt(t)}</text>')
        out.append(f'<text transform="translate({width - 12},{mt + ph / 2:.1f}) rotate(90)" text-anchor="middle">'
                   f'{html.escape(y2label)}</text>')
    out.append(f'<text x="{ml + pw / 2:.1f}" y="{height - 8}" text-anchor="middle">{html.escape(xlabel)}</text>')
    out.append(f'<text transform="translate(14,{mt + ph / 2:.1f}) rotate(-90)" text-anchor="middle">'
               f'{html.escape(ylabel)}</text>')
    for k, s in enumerate(series):
        col = _COLOURS[k % len(_COLOURS)]
        x = np.asarray(s.x, float)
        y = np.asarray(s.y, float)
        ok = np.isfinite(x) & np.isfinite(y)
        pts = [(X(a), Y(b, s.right)) for a, b in zip(x[ok], y[ok])]
        if s.style in ("line", "both") and len(pts) >= 2:
            p = " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)
            out.append(f'<polyline class="series" points="{p}" fill="none" stroke="{col}" stroke-width="1.6"/>')
        if s.style in ("points", "both") or len(pts) == 1:
            r = 2.2 if len(pts) < 2000 else 1.2
            out.append(f'<g class="series" fill="{col}">' + "".join(
                f'<circle cx="{a:.1f}" cy="{b:.1f}" r="{r}"/>' for a, b in pts) + "</g>")
        out.append(f'<rect x="{ml + 8}" y="{mt + 6 + 16 * k}" width="12" height="4" fill="{col}"/>'
                   f'<text x="{ml + 24}" y="{mt + 12 + 16 * k}">{html.escape(s.label)}</text>')
    out.append("</svg>")
    return "".join(out)


_CSS = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.4em; }
svg.plot text { font-size: 11px; font-family: sans-serif; }
svg.plot text.title { font-size: 13px; font-weight: bold; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
table { border-collapse: collapse; font-size: 0.9em; }
td, th { border: 1px solid #bbb; padding: 2px 7px; text-align: right; }
th { background: #eee; } tr.overall td { font-weight: bold; background: #f6f6f6; }
.kv td { text-align: left; }
"""


def _image_plot(result: ScaleResult) -> str:
    im = result.images
    stats = [s for s in result.image_stats if s is not None]
    if stats:
        series = []
        offs = {r.run_id: r.batch_offset for r in result.runs}
        xs, spots, idx = [], [], []
        for run, st in zip(result.runs, result.image_stats):
            if st is None:
                continue
            xs.append(st.image + offs.get(run.run_id, 0))
            spots.append(st.n_spots)
            idx.append(st.indexed.astype(float))
        x = np.concatenate(xs)
        o = np.argsort(x)
        sp = np.concatenate(spots)[o].astype(float)
        ind = np.concatenate(idx)[o]
        x = x[o]
        w = max(1, len(x) // 100)  # indexed fraction in windows of images
        frac = np.convolve(ind, np.ones(w) / w, mode="same")
        series = [Series(x, sp, "spots", style="line" if len(x) > 1 else "points"),
                  Series(x, frac, f"indexed fraction ({w}-image mean)", right=True)]
        return svg_plot(series, title="Spots and indexing per image", xlabel="image", ylabel="spots",
                        y2label="indexed fraction", plot_id="plot-images")
    x = im.batch - 1
    return svg_plot([Series(x, im.n_obs, "observations merged", style="points" if len(x) > 500 else "both")],
                    title="Observations per image (spots and indexing not in the input)", xlabel="batch - 1",
                    ylabel="observations", plot_id="plot-images")


def render_report(result: ScaleResult, title: str = "jfjoch scaling and merging") -> str:
    """The report as one HTML string."""
    sh = result.shells
    s2 = np.array([0.5 * ((1 / s.d_max**2 if np.isfinite(s.d_max) else 0.0) + 1 / s.d_min**2) for s in sh])

    def dfmt(t):
        return f"{1 / math.sqrt(t):.2f}" if t > 0 else "∞"

    plots = [_image_plot(result)]
    plots.append(svg_plot(
        [Series(s2, [s.cc_half for s in sh], "CC1/2", style="both"),
         Series(s2, [s.i_over_sigma for s in sh], "<I/σ>", right=True, style="both")],
        title="CC1/2 and <I/σ> against resolution", xlabel="resolution (Å)", ylabel="CC1/2", y2label="<I/σ>",
        xtick_format=dfmt, plot_id="plot-resolution"))
    im = result.images
    acc = im.accepted
    x = im.batch.astype(float)
    style = "points" if len(x) > 400 else "both"
    series = [Series(x[acc], im.scale[acc], "scale G", style=style)]
    if np.any(im.b_factor[acc] != 0):
        series.append(Series(x[acc], im.b_factor[acc], "B (Å²)", right=True, style=style))
    plots.append(svg_plot(series, title="Scale and B against image", xlabel="batch (image + 1 + run offset)",
                          ylabel="G", y2label="B (Å²)" if len(series) > 1 else "", plot_id="plot-scales"))
    w = result.wilson
    if w.get("s2"):
        ws = [Series(w["s2"], w["ln_i"], "ln <I>", style="both")]
        if "fit" in w:
            sx = np.array([min(w["s2"]), max(w["s2"])])
            ws.append(Series(sx, w["fit"][0] * sx + w["fit"][1], f"fit, B = {w['b_wilson']:.1f} Å²"))
        plots.append(svg_plot(ws, title="Wilson plot", xlabel="s² = 1/(4d²) (1/Å²)", ylabel="ln <I>",
                              plot_id="plot-wilson"))
    cols = ["d max", "d min", "obs", "unique", "mult.", "compl. %", "<I/σ>", "CC1/2 %", "Rmeas", "Rpim"]
    anom = result.anomalous
    ref = result.reference is not None
    if anom:
        cols.append("CCanom %")
    if ref:
        cols.append("CCref %")

    def row(s, cls=""):
        cells = [f"{s.d_max:.2f}", f"{s.d_min:.2f}", f"{s.n_obs}", f"{s.n_unique}", f"{s.multiplicity:.2f}",
                 f"{s.completeness:.1f}", f"{s.i_over_sigma:.2f}", _pct(s.cc_half), _r(s.r_meas), _r(s.r_pim)]
        if anom:
            cells.append(_pct(s.cc_anom))
        if ref:
            cells.append(_pct(s.cc_ref))
        return f'<tr class="{cls}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"

    table = ("<table id=\"stats\"><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>"
             + "".join(row(s) for s in sh) + row(result.overall, "overall") + "</table>")
    em = result.error_model
    kv = [
        ("space group", f"{result.space_group_name} ({result.space_group_number})"),
        ("unit cell", ", ".join(f"{c:.3f}" for c in result.cell)),
        ("inputs", "<br>".join(html.escape(r.name or f"run {r.run_id}") for r in result.runs)),
        ("images accepted", f"{int(np.count_nonzero(im.accepted))} / {len(im)}"),
        ("observations", f"{len(result.observations)} merged of {result.n_input_observations} input rows "
                         f"({100 * result.kept_fraction:.1f} % of the rows used)"),
        ("error model", f"a = {em.a:.3f}, b = {em.b:.4f}, ISa = {em.isa:.1f}"),
        ("resolution estimate (CC1/2 fit = 0.3)", f"{result.resolution_estimate:.2f} Å"
         if result.resolution_estimate else "-"),
        ("rejected observations", ", ".join(f"{k}: {v}" for k, v in result.rejections.items()) or "none"),
        ("rejected images", ", ".join(f"{k}: {v}" for k, v in result.image_rejections.items()) or "none"),
        ("partiality model", html.escape(str(getattr(result.options, "partiality", "")))),
        ("time", ", ".join(f"{k} {v:.2f} s" for k, v in result.timing.items())),
    ]
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.notes)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><table class=\"kv\">"
        + "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in kv)
        + "</table>" + (f"<ul>{notes}</ul>" if notes else "")
        + "<h2>Plots</h2><div class=\"plots\">" + "".join(plots) + "</div>"
        + "<h2>Merging statistics</h2>" + table + "</body></html>\n"
    )


def _pct(v) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{100 * v:.1f}"


def _r(v) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{v:.3f}"
