"""Bar charts drawn on the server as inline SVG: no script, no library, nothing from elsewhere.

Each chart is an image to assistive technology (role="img", named by its <title> and described
by its <desc>), and each bar carries its own <title> (a tooltip on hover). The figures are
always on the page as a table too (the template's job), so nothing is only in a picture.
Colours come from classes styled in dashboard.css: the admin's CSP forbids style attributes;
SVG presentation attributes (x, y, width, height) are geometry, not style."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 640
HEIGHT = 240
_TOP = 24  # room for the highest value's label
_BOTTOM = 28  # room for the category labels
_LEFT = 8
_RIGHT = 8
_GAP = 0.25  # of a category's width, left empty between categories
_MAX_LABELS = 7  # more categories than this: label every nth (a half-width card)
_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Series:
    """One kind of bar: its name (in the legend) and a value per category, with the value as
    the page writes it (a number, money)."""

    name: str
    values: Sequence[int]
    shown: Sequence[str]


def bars(
    title: str,
    description: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    horizontal: bool = False,
) -> Markup:
    """Bars per category, one per series side by side; `horizontal` lays categories down the
    chart (long labels such as campaign names)."""
    if horizontal:
        return _horizontal(title, description, categories, series)
    number = next(_ids)
    highest = max((v for s in series for v in s.values), default=0) or 1
    plot_width = WIDTH - _LEFT - _RIGHT
    plot_height = HEIGHT - _TOP - _BOTTOM
    step = plot_width / max(len(categories), 1)
    bar_width = step * (1 - _GAP) / max(len(series), 1)
    every = -(-len(categories) // _MAX_LABELS)  # ceil: label at most _MAX_LABELS categories
    parts = [_open(number, title, description, WIDTH, HEIGHT)]
    baseline = _TOP + plot_height
    for i, category in enumerate(categories):
        left = _LEFT + i * step + step * _GAP / 2
        for j, one in enumerate(series):
            value = one.values[i]
            height = plot_height * value / highest
            parts.append(
                f'<rect class="bar s{j}" x="{left + j * bar_width:.1f}" '
                f'y="{baseline - height:.1f}" width="{max(bar_width - 1, 1):.1f}" '
                f'height="{height:.1f}"><title>{escape(category)}, {escape(one.name)}: '
                f"{escape(one.shown[i])}</title></rect>"
            )
        if i % every == 0:
            parts.append(
                f'<text class="axis" x="{_LEFT + (i + 0.5) * step:.1f}" y="{HEIGHT - 8}" '
                f'text-anchor="middle">{escape(category)}</text>'
            )
    parts.append(
        f'<line class="base" x1="{_LEFT}" y1="{baseline}" x2="{WIDTH - _RIGHT}" y2="{baseline}"/>'
    )
    # The highest value written once, top left: the scale without a cluttered axis.
    top_label = max(
        ((one.values[i], one.shown[i]) for one in series for i in range(len(categories))),
        default=(0, "0"),
    )[1]
    parts.append(f'<text class="axis" x="{_LEFT}" y="{_TOP - 8}">{escape(top_label)}</text>')
    parts.append(
        f'<line class="grid" x1="{_LEFT}" y1="{_TOP}" x2="{WIDTH - _RIGHT}" y2="{_TOP}"/></svg>'
    )
    return Markup("".join(parts))  # noqa: S704 - every text in it went through escape()


def _horizontal(
    title: str, description: str, categories: Sequence[str], series: Sequence[Series]
) -> Markup:
    number = next(_ids)
    row = 28 * max(len(series), 1) + 32  # a label line, then one bar per series
    height = max(row * len(categories), row) + 8
    value_room = 260
    plot_width = WIDTH - _LEFT - _RIGHT - value_room
    highest = max((v for s in series for v in s.values), default=0) or 1
    parts = [_open(number, title, description, WIDTH, height)]
    for i, category in enumerate(categories):
        top = 4 + i * row
        parts.append(
            f'<text class="label" x="{_LEFT}" y="{top + 20}">{escape(_cut(category))}</text>'
        )
        for j, one in enumerate(series):
            y = top + 28 + j * 28
            width = plot_width * max(one.values[i], 0) / highest
            parts.append(
                f'<rect class="bar s{j}" x="{_LEFT}" y="{y}" width="{max(width, 1):.1f}" '
                f'height="22"><title>{escape(category)}, {escape(one.name)}: '
                f"{escape(one.shown[i])}</title></rect>"
                f'<text class="value" x="{_LEFT + width + 6:.1f}" y="{y + 17}">'
                f"{escape(one.name)}: {escape(one.shown[i])}</text>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text in it went through escape()


def _open(number: int, title: str, description: str, width: int, height: int) -> str:
    return (
        f'<svg class="chart-svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="chart{number}-title chart{number}-desc" '
        f'xmlns="http://www.w3.org/2000/svg">'
        f'<title id="chart{number}-title">{escape(title)}</title>'
        f'<desc id="chart{number}-desc">{escape(description)}</desc>'
    )


def _cut(text: str, most: int = 60) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"
