"""SMS text rules: the GSM 03.38 alphabet, typographic clean-up and segment counting."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "GSM7_BASIC",
    "GSM7_EXTENSION",
    "REPLACE_MANY",
    "REPLACE_ONE",
    "SmsSize",
    "fit_one",
    "is_gsm7",
    "over_one",
    "segments",
    "to_gsm7",
]

# GSM 03.38 default alphabet, in code-point order 0x00..0x7F. 0x1B (the escape to the extension
# table) is left out: it is never a character of the text itself.
GSM7_BASIC: frozenset[str] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: each is sent as ESC + a character, so it costs two septets.
GSM7_EXTENSION: frozenset[str] = frozenset("\f^{}\\[~]|€")

_GSM_SINGLE = 160
_GSM_PART = 153
_UCS2_SINGLE = 70
_UCS2_PART = 67

# One character for one character (or none): such a swap can never make a text cost more
# segments, because a UTF-16 unit becomes at most two septets and 2/153 < 1/67.
REPLACE_ONE: dict[int, str] = {
    **dict.fromkeys(map(ord, "«»“”„‟″〝〞＂"), '"'),
    **dict.fromkeys(map(ord, "‘’‚‛′‹›`´ʼ＇"), "'"),
    **dict.fromkeys(map(ord, "‐‑‒–—―−﹘﹣－"), "-"),
    **dict.fromkeys(map(ord, "•‣◦⁃∙"), "*"),
    # No-break and other fixed-width spaces (Babel's U+00A0 and U+202F among them), and tab,
    # which GSM-7 lacks.
    **dict.fromkeys([0x09, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000], " "),
    **dict.fromkeys([0x2028, 0x2029, 0x85], "\n"),
    ord("×"): "x",
    ord("⁄"): "/",
    # Invisible characters that only force UCS-2. ZWJ/ZWNJ stay: they hold emoji sequences and
    # some scripts together.
    **dict.fromkeys([0xAD, 0x200B, 0x2060, 0xFEFF], None),
}
# Replacements that lengthen the text; see to_gsm7 for when they are kept.
REPLACE_MANY: dict[int, str] = {ord("…"): "...", ord("‥"): ".."}


@dataclass(frozen=True, slots=True)
class SmsSize:
    """How a text travels as SMS: its encoding, its length in that encoding and its parts."""

    encoding: Literal["GSM-7", "UCS-2"]
    units: int
    segments: int


_GSM7_ALL = GSM7_BASIC | GSM7_EXTENSION


def to_gsm7(text: str) -> str:
    """Replace typographic characters that would force UCS-2 with their plain GSM-7 equivalents.

    Emoji and letters without a GSM-7 form are left alone: changing a member's name is worse
    than a UCS-2 message. The result never costs more segments than the input; a lengthening
    replacement such as "…" -> "..." is dropped in the rare text where it would.
    """
    if is_gsm7(text):
        return text  # the common case: nothing to replace
    composed = unicodedata.normalize("NFC", text)
    if segments(composed).segments > segments(text).segments:
        composed = text
    plain = composed.translate(REPLACE_ONE)
    expanded = plain.translate(REPLACE_MANY)
    if segments(expanded).segments <= segments(plain).segments:
        return expanded
    return plain


def fit_one(parts: Sequence[tuple[str, bool]]) -> str:
    """The parts of a reply joined by spaces, where each is (text, optional): the optional
    ones are left out, the last first, while the whole would take more than one segment."""
    kept = list(parts)
    # Most replies have nothing optional, and are not measured at all.
    optional = [i for i, (_, can_go) in enumerate(kept) if can_go]
    while optional and segments(" ".join(text for text, _ in kept)).segments > 1:
        del kept[optional.pop()]
    return " ".join(text for text, _ in kept)


def over_one(text: str) -> int:
    """By how many characters (septets or UTF-16 units) the text passes one segment: 0 when it
    fits."""
    size = segments(text)
    single = _GSM_SINGLE if size.encoding == "GSM-7" else _UCS2_SINGLE
    return max(0, size.units - single)


def is_gsm7(text: str) -> bool:
    """Whether every character of the text is in the GSM-7 basic set or its extension table."""
    return set(text) <= _GSM7_ALL


def segments(text: str) -> SmsSize:
    """Size the text as an SMS: GSM-7 septets or UTF-16 units, and the number of segments."""
    if is_gsm7(text):
        units = len(text) + sum(text.count(char) for char in GSM7_EXTENSION & set(text))
        return SmsSize("GSM-7", units, _count(units, _GSM_SINGLE, _GSM_PART))
    units = len(text.encode("utf-16-le", "surrogatepass")) // 2
    return SmsSize("UCS-2", units, _count(units, _UCS2_SINGLE, _UCS2_PART))


def _count(units: int, single: int, part: int) -> int:
    if units <= single:
        return 1
    return math.ceil(units / part)
