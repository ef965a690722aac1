"""The join poster as a printable PDF page, A4 or A6 (store.clubs.poster says what it reads)."""

from __future__ import annotations

import functools
import io
import re
import unicodedata

import pymupdf_fonts
import segno
from reportlab.lib.pagesizes import A4, A6
from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from store.clubs.poster import Poster

SIZES: dict[str, tuple[float, float]] = {"a4": A4, "a6": A6}
# The layout is drawn for A4 in points and scaled for A6, with a floor under the small print so
# an A6 table card stays readable.
_A4_WIDTH = A4[0]
_MIN_SMALL = 7.0
# Noto Sans, embedded (subset) in the PDF: reportlab's standard fonts (Helvetica) reach only
# WinAnsi, so "Łódź", "Ženklas", Greek or Cyrillic names came out wrong. Noto Sans covers Latin
# (every European language, Vietnamese), Greek and Cyrillic; the file comes from pymupdf-fonts
# (a pip package, so a fresh machine has it; README says why this one).
_BOLD, _REGULAR = "KlubbNotoSans-Bold", "KlubbNotoSans"
_FONT_FILES = {_BOLD: "notosbo", _REGULAR: "notos"}
# A character neither font has (an emoji, a script Noto Sans lacks) would print as an empty box:
# symbols and marks (emoji, their joiners and variation selectors) are left out, and anything
# else, a letter of another script, shows as this, so the owner sees the name isn't all there.
_MISSING = "?"
_VARIATION = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")


def poster_pdf(poster: Poster, size: str) -> bytes:
    """One page of the size ("a4" or "a6"): the club's name, how to join, the QR code, how
    consent is given and the privacy notice's address."""
    width, height = SIZES[size]
    scale = width / _A4_WIDTH
    covered = _fonts()
    out = io.BytesIO()
    # invariant: no creation time or random id in the file, so the same poster is the same bytes.
    # The initial font is ours, so the page names no font it doesn't embed.
    canvas = Canvas(
        out,
        pagesize=(width, height),
        invariant=True,
        pageCompression=1,
        initialFontName=_REGULAR,
    )
    canvas.setTitle(poster.title)
    canvas.setAuthor(poster.club)
    canvas.setSubject(poster.join)
    canvas.setCreator("Klubb")
    margin = 40 * scale
    room = width - 2 * margin
    club = printable(poster.club, covered)
    name_size = _fitting(club, _BOLD, 34 * scale, room)
    top = _centred(canvas, [club], _BOLD, name_size, width, height - 70 * scale)
    # How to join, on one line while it stays large; a long club number wraps instead.
    joining = printable(poster.join, covered)
    join_size = _fitting(joining, _BOLD, 40 * scale, room)
    if join_size >= 24 * scale:
        join = [joining]
    else:
        join_size = 30 * scale
        join = simpleSplit(joining, _BOLD, join_size, room)
    top = _centred(canvas, join, _BOLD, join_size, width, top - 20 * scale)
    side = 340 * scale
    _qr(canvas, poster.payload, (width - side) / 2, top - 30 * scale - side, side)
    small = max(_MIN_SMALL, 16 * scale)
    scan = simpleSplit(printable(poster.scan, covered), _REGULAR, small, room)
    _centred(canvas, scan, _REGULAR, small, width, top - 60 * scale - side)
    # The small print sits at the foot of the page.
    fine = max(_MIN_SMALL, 12 * scale)
    foot = [
        *simpleSplit(printable(poster.consent, covered), _REGULAR, fine, room),
        *simpleSplit(printable(poster.privacy, covered), _REGULAR, fine, room),
    ]
    _centred(canvas, foot, _REGULAR, fine, width, margin + len(foot) * fine * 1.3)
    canvas.showPage()
    canvas.save()
    return out.getvalue()


def printable(text: str, covered: frozenset[int]) -> str:
    """The text as the poster can print it with fonts that have the `covered` characters:
    composed (NFC, so "é" typed as e + accent is the font's one "é"), invisible format
    characters left out (an emoji's joiners and variation selectors: reportlab draws no ligature
    of them), uncovered symbols and marks left out, other uncovered characters as `_MISSING`."""
    kept = []
    for char in unicodedata.normalize("NFC", text):
        kind = unicodedata.category(char)
        if kind == "Cf" or _VARIATION.match(char):
            continue
        if ord(char) in covered:
            kept.append(char)
        elif char.isspace():
            kept.append(" ")
        elif kind[0] not in "SMC":  # an emoji is So, a skin tone Sk
            kept.append(_MISSING)
    # "Kafé ☕ Oslo" is "Kafé Oslo", not two spaces where the emoji was.
    return re.sub(" {2,}", " ", "".join(kept)).strip()


@functools.cache
def _fonts() -> frozenset[int]:
    """Registers the poster's fonts with reportlab once a process (a registration is global to
    reportlab); returns the characters both have."""
    fonts = [
        TTFont(name, io.BytesIO(pymupdf_fonts.myfont(file))) for name, file in _FONT_FILES.items()
    ]
    for font in fonts:
        pdfmetrics.registerFont(font)
    return frozenset.intersection(*(frozenset(font.face.charToGlyph) for font in fonts))


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
