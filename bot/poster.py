"""The join poster as a printable PDF page, A4 or A6 (store.clubs.poster says what it reads)."""

from __future__ import annotations

import io

import segno
from reportlab.lib.pagesizes import A4, A6
from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

from store.clubs.poster import Poster

SIZES: dict[str, tuple[float, float]] = {"a4": A4, "a6": A6}
# The layout is drawn for A4 in points and scaled for A6, with a floor under the small print so
# an A6 table card stays readable.
_A4_WIDTH = A4[0]
_MIN_SMALL = 7.0
_BOLD, _REGULAR = "Helvetica-Bold", "Helvetica"


def poster_pdf(poster: Poster, size: str) -> bytes:
    """One page of the size ("a4" or "a6"): the club's name, how to join, the QR code, how
    consent is given and the privacy notice's address."""
    width, height = SIZES[size]
    scale = width / _A4_WIDTH
    out = io.BytesIO()
    # invariant: no creation time or random id in the file, so the same poster is the same bytes.
    canvas = Canvas(out, pagesize=(width, height), invariant=True, pageCompression=1)
    canvas.setTitle(poster.title)
    canvas.setAuthor(poster.club)
    canvas.setSubject(poster.join)
    canvas.setCreator("Klubb")
    margin = 40 * scale
    room = width - 2 * margin
    name_size = _fitting(poster.club, _BOLD, 34 * scale, room)
    top = _centred(canvas, [poster.club], _BOLD, name_size, width, height - 70 * scale)
    # How to join, on one line while it stays large; a long club number wraps instead.
    join_size = _fitting(poster.join, _BOLD, 40 * scale, room)
    if join_size >= 24 * scale:
        join = [poster.join]
    else:
        join_size = 30 * scale
        join = simpleSplit(poster.join, _BOLD, join_size, room)
    top = _centred(canvas, join, _BOLD, join_size, width, top - 20 * scale)
    side = 340 * scale
    _qr(canvas, poster.payload, (width - side) / 2, top - 30 * scale - side, side)
    small = max(_MIN_SMALL, 16 * scale)
    scan = simpleSplit(poster.scan, _REGULAR, small, room)
    _centred(canvas, scan, _REGULAR, small, width, top - 60 * scale - side)
    # The small print sits at the foot of the page.
    fine = max(_MIN_SMALL, 12 * scale)
    foot = [
        *simpleSplit(poster.consent, _REGULAR, fine, room),
        *simpleSplit(poster.privacy, _REGULAR, fine, room),
    ]
    _centred(canvas, foot, _REGULAR, fine, width, margin + len(foot) * fine * 1.3)
    canvas.showPage()
    canvas.save()
    return out.getvalue()


def _fitting(text: str, font: str, size: float, room: float) -> float:
    """The font size, at most `size`, at which the text fits the width on one line."""
    wide = stringWidth(text, font, size)
    return size if wide <= room else size * room / wide


def _centred(
    canvas: Canvas, lines: list[str], font: str, size: float, width: float, top: float
) -> float:
    """The lines centred below `top`; returns the baseline under the last one."""
    canvas.setFont(font, size)
    y = top
    for line in lines:
        y -= size
        canvas.drawCentredString(width / 2, y, line)
        y -= size * 0.3
    return y


def _qr(canvas: Canvas, payload: str, x: float, y: float, side: float) -> None:
    """The QR code as filled squares (vector: sharp at any print size), with its quiet zone of
    four modules inside `side`; error correction M, so a scratched card still scans."""
    code = segno.make_qr(payload, error="m", boost_error=False)
    rows = [list(row) for row in code.matrix_iter(scale=1, border=4)]
    module = side / len(rows)
    canvas.setFillColorRGB(0, 0, 0)
    for r, row in enumerate(rows):
        top = y + side - (r + 1) * module
        start = None
        # Runs of dark modules as one rectangle each: a smaller file than one per module.
        for c, dark in enumerate([*row, 0]):
            if dark and start is None:
                start = c
            elif not dark and start is not None:
                canvas.rect(x + start * module, top, (c - start) * module, module, stroke=0, fill=1)
                start = None
