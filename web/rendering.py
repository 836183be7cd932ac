"""Safe rendering of item Markdown and server-side SVG charts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from flask import Response, current_app
from markdown_it import MarkdownIt
from markupsafe import Markup, escape

# CommonMark with raw HTML disabled: item text can never inject markup or scripts. Links,
# autolinks and images are disabled too, so their Markdown shows as the literal text: an item
# cannot send a candidate (whose page URL carries a token) to another site, nor make the page
# fetch anything (markdown-it-py `MarkdownIt.disable`, rule names from its inline ruler).
_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
_md.disable(["link", "image", "autolink"])
_md.enable("table")  # GFM tables: QTI stems keep their tables (issue 22)


def markdown(text: str) -> Markup:
    """Block Markdown; code blocks and tables are keyboard-focusable (``tabindex="0"``) because
    they scroll sideways on narrow screens instead of widening the page (WCAG 1.4.10, 2.1.1)."""
    html = _md.render(text or "")  # html=False escapes raw HTML
    return Markup(html.replace("<pre>", '<pre tabindex="0">')
                  .replace("<table>", '<table class="md-table" tabindex="0">'))


def markdown_inline(text: str) -> Markup:
    return Markup(_md.renderInline(text or ""))  # html=False escapes raw HTML


@dataclass(frozen=True)
class IntervalRow:
    label: str
    estimate: float
    lower: float
    upper: float


def interval_chart(rows: Sequence[IntervalRow], lo: float, hi: float, *,
                   cut: float | None = None, title: str = "") -> Markup:
    """A horizontal dot-and-interval chart as inline SVG (no scripts, no inline CSS)."""
    width, left, right, row_h, top = 640, 190, 20, 34, 30
    height = top + row_h * len(rows) + 30
    span = hi - lo

    def x(v: float) -> float:
        return left + (min(max(v, lo), hi) - lo) / span * (width - left - right)

    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{escape(title)}</title>"]
    ticks = _ticks(lo, hi)
    for t in ticks:
        parts.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top - 8}" '
                     f'y2="{height - 24}" stroke="#ddd"/>')
        parts.append(f'<text x="{x(t):.1f}" y="{height - 8}" font-size="12" '
                     f'text-anchor="middle" fill="#444">{t:g}</text>')
    if cut is not None:
        parts.append(f'<line x1="{x(cut):.1f}" x2="{x(cut):.1f}" y1="{top - 14}" '
                     f'y2="{height - 24}" stroke="#a11d1d" stroke-dasharray="4 3"/>')
        parts.append(f'<text x="{x(cut):.1f}" y="{top - 16}" font-size="12" '
                     f'text-anchor="middle" fill="#a11d1d">cut {cut:g}</text>')
    for k, r in enumerate(rows):
        y = top + row_h * k + row_h / 2
        parts.append(f'<text x="{left - 10}" y="{y + 4:.1f}" font-size="14" text-anchor="end" '
                     f'fill="#1a1a1a">{escape(r.label)}</text>')
        parts.append(f'<line x1="{x(r.lower):.1f}" x2="{x(r.upper):.1f}" y1="{y:.1f}" '
                     f'y2="{y:.1f}" stroke="#0b5cad" stroke-width="4"/>')
        parts.append(f'<circle cx="{x(r.estimate):.1f}" cy="{y:.1f}" r="6" fill="#0b5cad">'
                     f"<title>{escape(r.label)}: {r.estimate:.0f} "
                     f"({r.lower:.0f}–{r.upper:.0f})</title></circle>")
    parts.append("</svg>")
    return Markup("".join(parts))  # every text node above is escaped


def _ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    start = math.ceil(lo / step) * step
    out = []
    v = start
    while v <= hi + 1e-9:
        out.append(round(v, 10))
        v += step
    return out


def icc_chart(theta: Sequence[float], p: Sequence[float], *, title: str = "") -> Markup:
    """The item characteristic curve P(θ) as an inline SVG polyline."""
    width, height, pad = 480, 260, 36
    lo, hi = theta[0], theta[-1]

    def x(t: float) -> float:
        return pad + (t - lo) / (hi - lo) * (width - 2 * pad)

    def y(v: float) -> float:
        return height - pad - v * (height - 2 * pad)

    points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in zip(theta, p, strict=True))
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{escape(title or 'Item characteristic curve')}</title>",
             f'<line x1="{pad}" y1="{y(0)}" x2="{width - pad}" y2="{y(0)}" stroke="#888"/>',
             f'<line x1="{pad}" y1="{y(0)}" x2="{pad}" y2="{y(1)}" stroke="#888"/>']
    for t in _ticks(lo, hi, 8):
        parts.append(f'<text x="{x(t):.1f}" y="{height - 12}" font-size="11" '
                     f'text-anchor="middle" fill="#444">{t:g}</text>')
    for v in (0.0, 0.5, 1.0):
        parts.append(f'<text x="{pad - 6}" y="{y(v) + 4:.1f}" font-size="11" text-anchor="end" '
                     f'fill="#444">{v:g}</text>')
    parts.append(f'<polyline points="{points}" fill="none" stroke="#0b5cad" '
                 f'stroke-width="2.5"/>')
    parts.append(f'<text x="{width / 2}" y="{height - 1}" font-size="11" text-anchor="middle" '
                 f'fill="#444">θ</text></svg>')
    return Markup("".join(parts))  # only numbers and escaped text


def image_response(content_type: str, data: bytes) -> Response:
    """An item's image as the app serves it (candidate page, API, staff page): its checked
    content type, never sniffed, cached privately for ten minutes."""
    response = current_app.response_class(data, mimetype=content_type)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, max-age=600"
    response.headers["Content-Disposition"] = "inline"
    return response
