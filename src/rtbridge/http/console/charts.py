"""Charts as server-rendered SVG: the console runs no script (its Content-Security-Policy
forbids any), so a chart is markup the page carries, drawn with presentation attributes
(``fill``), not inline styles, which the policy forbids too."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT, AXIS = 1000, 170, 18
# (figure, colour, legend), drawn in this order, each bar over the one before
SERIES = (("pings", "#c9d3df", "pings"), ("calls", "#5b8bd6", "calls"),
          ("converted", "#2f9e5b", "converted"))  # fmt: skip


def bars(labels: Sequence[str], rows: Sequence[dict[str, int]], *, title: str) -> Markup:
    """One group of bars per label (an hour or a day), the series of :data:`SERIES` drawn
    over one another; a label every few bars; a ``<title>`` per bar for its figures."""
    top = max((row.get("pings", 0) for row in rows), default=0) or 1
    step = WIDTH / max(len(labels), 1)
    out = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT + AXIS}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    every = max(1, round(len(labels) / 12))
    for i, (label, row) in enumerate(zip(labels, rows, strict=True)):
        x = i * step
        for name, colour, _ in SERIES:
            height = HEIGHT * row.get(name, 0) / top
            out.append(
                f'<rect x="{x + step * 0.1:.1f}" y="{HEIGHT - height:.1f}" width="{step * 0.8:.1f}" '
                f'height="{height:.1f}" fill="{colour}"><title>{escape(label)}: '
                f"{row.get('pings', 0)} pings, {row.get('calls', 0)} calls, "
                f"{row.get('converted', 0)} converted</title></rect>"
            )
        if i % every == 0:
            out.append(
                f'<text x="{x + step / 2:.1f}" y="{HEIGHT + AXIS - 4}" font-size="11" '
                f'text-anchor="middle" fill="#555">{escape(label)}</text>'
            )
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 (every text in it went through escape())
