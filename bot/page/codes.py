"""A coupon code as the till scans it: a Code 128 barcode and a QR code, both inline SVG.

python-barcode encodes Code 128 (it picks the code sets and the check digit); the bars are
drawn here as one path with presentation attributes only, because the page's Content Security
Policy allows no inline style (python-barcode's own SVG writer styles every bar). segno draws
the QR code the same way."""

from __future__ import annotations

import functools
from html import escape

import barcode
import segno

# Module width and bar height in SVG user units; the SVG scales to the width it is given.
_MODULE = 2
_HEIGHT = 60
_QUIET = 10  # modules of white either side: Code 128 needs at least 10


def code128_modules(code: str) -> str:
    """The code's bars and spaces as a string of 1s (bar) and 0s (space), start and stop
    codes and check digit included."""
    return _Code128(code).build()[0]


class _Code128(barcode.get_barcode_class("code128")):  # type: ignore[misc]
    """python-barcode's Code 128, without its one wrong shortcut: it drops a leading "99".

    A code that starts with two digits starts in code set C, where "99" is the value 99, the
    same as CODE C, a switch; its `_try_to_optimize` folds a switch right after the start code
    into the start code, and so took the coupon 99YPHJ79 for YPHJ79 (python-barcode 0.16: 1 code
    in 1,000 of our alphabet). A code opening with two digits has data there, never a switch."""

    def _try_to_optimize(self, encoded: list[int]) -> list[int]:
        if self.code[:2].isdigit():
            return encoded
        return super()._try_to_optimize(encoded)  # type: ignore[no-any-return]


def code128_svg(code: str, label: str) -> str:
    """The code as a Code 128 barcode: an SVG that fills its box's width, `label` as its
    accessible name."""
    modules = code128_modules(code)
    width = (len(modules) + 2 * _QUIET) * _MODULE
    runs = []
    x = _QUIET
    i = 0
    while i < len(modules):
        j = i
        while j < len(modules) and modules[j] == modules[i]:
            j += 1
        if modules[i] == "1":
            runs.append(f"M{x * _MODULE} 0h{(j - i) * _MODULE}v{_HEIGHT}h-{(j - i) * _MODULE}z")
        x += j - i
        i = j
    return (
        f'<svg class="bar" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {_HEIGHT}" '
        f'preserveAspectRatio="none" role="img" aria-label="{escape(label)}">'
        f'<rect width="{width}" height="{_HEIGHT}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(runs)}"/></svg>'
    )


# segno takes about 3 ms a code (the page's slowest part): a member opening their page again
# at the till gets the codes drawn before. A few thousand codes are a few MB.
@functools.lru_cache(maxsize=4096)
def qr_svg(code: str, label: str) -> str:
    """The code as a QR code (error correction M, never a micro QR that few phones read)."""
    qr = segno.make(code, micro=False, error="m")
    svg = qr.svg_inline(scale=5, border=4, dark="#000", light="#fff", svgclass="qr")
    return svg.replace("<svg ", f'<svg role="img" aria-label="{escape(label)}" ', 1)
