"""Small, dependency-free SVG line charts for the Prefect UI (embedded as data URIs)."""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 480, 220
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 56, 12, 26, 30
MAX_POINTS = 400


def downsample(
    xs: Sequence[float], ys: Sequence[float], limit: int = MAX_POINTS
) -> tuple[list[float], list[float]]:
    """Keep at most ``limit`` points, preserving each bucket's min and max so spikes survive."""
    n = len(xs)
    if n <= limit:
        return list(xs), list(ys)
    buckets = limit // 2
    out_x: list[float] = []
    out_y: list[float] = []
    for b in range(buckets):
        lo, hi = b * n // buckets, (b + 1) * n // buckets
        idx = range(lo, hi)
        i_min = min(idx, key=lambda i: ys[i])
        i_max = max(idx, key=lambda i: ys[i])
        for i in sorted({i_min, i_max}):
            out_x.append(xs[i])
            out_y.append(ys[i])
    return out_x, out_y


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:.2e}"
    return f"{value:.4g}"


COLORS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#db2777")


def line_chart_svg(title: str, steps: Sequence[float], values: Sequence[float]) -> str:
    """An SVG line chart of ``values`` against ``steps``; NaN and infinite points are skipped."""
    return multi_line_chart_svg(title, [("", steps, values)])


def multi_line_chart_svg(
    title: str, series: Sequence[tuple[str, Sequence[float], Sequence[float]]]
) -> str:
    """Several labelled lines on shared axes (e.g. one metric across compared runs)."""
    cleaned = []
    for label, steps, values in series:
        pairs = [(x, y) for x, y in zip(steps, values, strict=True) if math.isfinite(y)]
        xs, ys = downsample([p[0] for p in pairs], [p[1] for p in pairs])
        cleaned.append((label, xs, ys))
    all_x = [x for _, xs, _ in cleaned for x in xs]
    all_y = [y for _, _, ys in cleaned for y in ys]
    legend = [label for label, _, _ in cleaned if label]
    height = HEIGHT + 14 * len(legend)
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        f'<text x="{PAD_LEFT}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
        f'<rect x="{PAD_LEFT}" y="{PAD_TOP}" width="{plot_w}" height="{plot_h}" '
        'fill="none" stroke="#ccc"/>',
    ]
    if not all_x:
        parts.append(
            f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no finite values</text>'
        )
        parts.append("</svg>")
        return "".join(parts)
    x0, x1 = min(all_x), max(all_x)
    y0, y1 = min(all_y), max(all_y)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - 1, y1 + 1

    def sx(x: float) -> float:
        return PAD_LEFT + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        return PAD_TOP + plot_h - (y - y0) / (y1 - y0) * plot_h

    for n, (_, xs, ys) in enumerate(cleaned):
        color = COLORS[n % len(COLORS)]
        if len(xs) == 1:
            parts.append(
                f'<circle cx="{sx(xs[0]):.1f}" cy="{sy(ys[0]):.1f}" r="3" fill="{color}"/>'
            )
        elif xs:
            points = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys, strict=True))
            parts.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{points}"/>'
            )
    parts += [
        f'<text x="{PAD_LEFT - 4}" y="{PAD_TOP + 10}" text-anchor="end">{_fmt(y1)}</text>',
        f'<text x="{PAD_LEFT - 4}" y="{PAD_TOP + plot_h}" text-anchor="end">{_fmt(y0)}</text>',
        f'<text x="{PAD_LEFT}" y="{HEIGHT - 10}">{_fmt(x0)}</text>',
        f'<text x="{WIDTH - PAD_RIGHT}" y="{HEIGHT - 10}" text-anchor="end">{_fmt(x1)}</text>',
        f'<text x="{PAD_LEFT + plot_w / 2}" y="{HEIGHT - 10}" text-anchor="middle">step</text>',
    ]
    for n, label in enumerate(legend):
        y = HEIGHT + 14 * n + 4
        color = COLORS[n % len(COLORS)]
        parts.append(f'<rect x="{PAD_LEFT}" y="{y - 8}" width="10" height="3" fill="{color}"/>')
        parts.append(f'<text x="{PAD_LEFT + 14}" y="{y}">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
