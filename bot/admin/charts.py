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

# No viewBox: the chart is as wide as its card and a fixed height in CSS pixels, x positions
# and widths are percentages of that width, heights are pixels. Text is never scaled down with
# the picture, so a label is the size dashboard.css gives it at every width (a viewBox of 640
# shrank 15px labels to 7px on a phone).
HEIGHT = 220
_TOP = 26  # room for the highest value's label
_BOTTOM = 26  # room for the category labels
_SIDE = 1.0  # percent of the width left at each side
_GAP = 0.25  # of a category's width, left empty between categories
_MAX_LABELS = 6  # more categories than this: label every nth (a phone's card is 320px)
_LABEL_ROW = 24  # a horizontal chart: the category's line
_VALUE_ROW = 20  # and each series' value, above its bar
_BAR = 14
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
    plot_height = HEIGHT - _TOP - _BOTTOM
    step = (100 - 2 * _SIDE) / max(len(categories), 1)  # percent of the width
    bar_width = step * (1 - _GAP) / max(len(series), 1)
    every = -(-len(categories) // _MAX_LABELS)  # ceil: label at most _MAX_LABELS categories
    parts = [_open(number, title, description, HEIGHT)]
    baseline = _TOP + plot_height
    for i, category in enumerate(categories):
        left = _SIDE + i * step + step * _GAP / 2
        for j, one in enumerate(series):
            value = one.values[i]
            height = plot_height * value / highest
            parts.append(
                f'<rect class="bar s{j}" x="{left + j * bar_width:.2f}%" '
                f'y="{baseline - height:.1f}" width="{max(bar_width * 0.96, 0.2):.2f}%" '
                f'height="{height:.1f}"><title>{escape(category)}, {escape(one.name)}: '
                f"{escape(one.shown[i])}</title></rect>"
            )
        if i % every == 0:
            parts.append(
                f'<text class="axis" x="{_SIDE + (i + 0.5) * step:.2f}%" y="{HEIGHT - 7}" '
                f'text-anchor="middle">{escape(category)}</text>'
            )
    parts.append(
        f'<line class="base" x1="{_SIDE}%" y1="{baseline}" x2="{100 - _SIDE}%" y2="{baseline}"/>'
    )
    # The highest value written once, top left: the scale without a cluttered axis.
    top_label = max(
        ((one.values[i], one.shown[i]) for one in series for i in range(len(categories))),
        default=(0, "0"),
    )[1]
    parts.append(f'<text class="axis" x="{_SIDE}%" y="{_TOP - 9}">{escape(top_label)}</text>')
    parts.append(
        f'<line class="grid" x1="{_SIDE}%" y1="{_TOP}" x2="{100 - _SIDE}%" y2="{_TOP}"/></svg>'
    )
    return Markup("".join(parts))  # noqa: S704 - every text in it went through escape()


def _horizontal(
    title: str, description: str, categories: Sequence[str], series: Sequence[Series]
) -> Markup:
    """Each category: its name on a line, then per series its value written above its bar
    (written above, not beside: a phone's card has no room beside a long bar)."""
    number = next(_ids)
    row = _LABEL_ROW + (_VALUE_ROW + _BAR + 6) * max(len(series), 1) + 8
    height = max(row * len(categories), row)
    highest = max((v for s in series for v in s.values), default=0) or 1
    parts = [_open(number, title, description, height)]
    for i, category in enumerate(categories):
        top = i * row
        parts.append(f'<text class="label" x="0" y="{top + 17}">{escape(_cut(category))}</text>')
        for j, one in enumerate(series):
            y = top + _LABEL_ROW + j * (_VALUE_ROW + _BAR + 6)
            width = 100 * max(one.values[i], 0) / highest
            parts.append(
                f'<text class="value" x="0" y="{y + 15}">'
                f"{escape(one.name)}: {escape(one.shown[i])}</text>"
                f'<rect class="bar s{j}" x="0" y="{y + _VALUE_ROW}" width="{max(width, 0.3):.2f}%" '
                f'height="{_BAR}"><title>{escape(category)}, {escape(one.name)}: '
                f"{escape(one.shown[i])}</title></rect>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text in it went through escape()


def _open(number: int, title: str, description: str, height: int) -> str:
    return (
        f'<svg class="chart-svg" width="100%" height="{height}" role="img" '
        f'aria-labelledby="chart{number}-title chart{number}-desc" '
        f'xmlns="http://www.w3.org/2000/svg">'
        f'<title id="chart{number}-title">{escape(title)}</title>'
        f'<desc id="chart{number}-desc">{escape(description)}</desc>'
    )


def _cut(text: str, most: int = 40) -> str:
    # 40 characters of a 14px label fit a phone's card; the bar's tooltip and the table below
    # the chart have the whole name.
    return text if len(text) <= most else text[: most - 1] + "…"
