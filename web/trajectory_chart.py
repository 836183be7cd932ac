"""The θ̂ trajectory of a session as inline SVG (no scripts, no inline CSS), drawn like the
charts of `web.rendering`: per skill, θ̂ after each of its answers (dots joined by a line) with
a ±1 SE band, against the position in the test."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape

from web.rendering import _ticks

#: Colour-blind-safe series colours (Okabe & Ito 2008).
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
           "#F0E442")


def trajectory_chart(series: Mapping[str, Sequence[tuple[int, float, float]]], n_positions: int,
                     *, title: str = "") -> Markup:
    """``series``: skill → (position, θ̂, SE) after each of its scored answers."""
    width, left, right, top = 640, 44, 16, 16
    # legend rows below the axis: as many skills per row as fit
    widths = [20 + 7 * len(s) for s in series]
    rows, used = 1, 0
    for w in widths:
        if used and used + w > width - left - right:
            rows, used = rows + 1, 0
        used += w
    bottom = 44 + 16 * rows
    height = 236 + bottom
    lo, hi = -3.5, 3.5
    for pts in series.values():
        for _, t, se in pts:
            lo, hi = min(lo, t - se), max(hi, t + se)
    lo, hi = max(lo, -6.0), min(hi, 6.0)
    n = max(n_positions, 1)

    def x(p: float) -> float:
        return left + (p - 0.5) / n * (width - left - right)

    def y(v: float) -> float:
        v = min(max(v, lo), hi)
        return top + (hi - v) / (hi - lo) * (height - top - bottom)

    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{escape(title or 'Estimated ability after each answer')}</title>"]
    for t in _ticks(lo, hi, 7):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
                     f'stroke="#ddd"/><text x="{left - 6}" y="{y(t) + 4:.1f}" font-size="11" '
                     f'text-anchor="end" fill="#444">{t:g}</text>')
    step = max(1, n // 10)
    for p in range(1, n + 1, step):
        parts.append(f'<text x="{x(p):.1f}" y="{height - bottom + 16}" font-size="11" '
                     f'text-anchor="middle" fill="#444">{p}</text>')
    parts.append(f'<text x="{(left + width - right) / 2:.1f}" y="{height - bottom + 32}" '
                 f'font-size="11" text-anchor="middle" fill="#444">position in the test</text>')
    legend_x, legend_y = left, height - bottom + 44
    for k, (skill, pts) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        if pts:
            upper = " ".join(f"{x(p):.1f},{y(t + se):.1f}" for p, t, se in pts)
            lower = " ".join(f"{x(p):.1f},{y(t - se):.1f}" for p, t, se in reversed(pts))
            parts.append(f'<polygon points="{upper} {lower}" fill="{colour}" '
                         f'fill-opacity="0.12" stroke="none"/>')
            line = " ".join(f"{x(p):.1f},{y(t):.1f}" for p, t, _ in pts)
            parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}" '
                         f'stroke-width="2"/>')
            for p, t, se in pts:
                parts.append(f'<circle cx="{x(p):.1f}" cy="{y(t):.1f}" r="3.5" fill="{colour}">'
                             f"<title>{escape(skill)} after position {p}: θ {t:.3f}, SE "
                             f"{se:.3f}</title></circle>")
        if legend_x > left and legend_x + widths[k] > width - right:
            legend_x, legend_y = left, legend_y + 16
        parts.append(f'<rect x="{legend_x}" y="{legend_y}" width="10" height="10" '
                     f'fill="{colour}"/><text x="{legend_x + 14}" y="{legend_y + 9}" '
                     f'font-size="11" fill="#1a1a1a">{escape(skill)}</text>')
        legend_x += widths[k]
    parts.append("</svg>")
    return Markup("".join(parts))  # numbers and escaped text only
