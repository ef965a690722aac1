"""SMS sizing follows GSM 03.38, and typographic clean-up never makes a text cost more."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from locales.sms import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    SmsSize,
    fit_one,
    is_gsm7,
    segments,
    to_gsm7,
)

TYPOGRAPHIC = "«»“”„‘’‚–—…\u00a0\u202f\u2009•´`\u200b\u00ad\t\u2028"
GSM_SAMPLE = "aZ09 .,!?æøåÆØÅäöÄÖéÉüÜ@£$\n€[]{}~^\\|"
OTHER = "çëłð😀👍🏽中\u0301"


def test_gsm7_tables_are_the_full_03_38_alphabet():
    assert len(GSM7_BASIC) == 127  # 128 code points less the escape
    assert len(GSM7_EXTENSION) == 10
    assert not GSM7_BASIC & GSM7_EXTENSION


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("«Hei»", '"Hei"'),
        ("“Kari” „Ola“", '"Kari" "Ola"'),
        ("it’s ‘ok’ ‚ja‘", "it's 'ok' 'ja'"),
        ("10–12 — nå", "10-12 - nå"),
        ("Vent…", "Vent..."),
        ("1\u00a0250 poeng", "1 250 poeng"),
        ("100,00\u00a0kr", "100,00 kr"),
        ("1\u202f250", "1 250"),
        ("1\u2009250", "1 250"),
        ("• kaffe\n• bolle", "* kaffe\n* bolle"),
        ("tab\there", "tab here"),
        ("café´s", "café's"),
        ("zero\u200bwidth", "zerowidth"),
        ("a\u0301\u030a", "á\u030a"),  # NFC composes what it can; the rest is left alone
        ("a\u030a", "å"),
        ("Hei 😀 “Kari”", 'Hei 😀 "Kari"'),
        ("Zoë", "Zoë"),
        ("Torshov: 10% off {x} [y] €5 ~^|\\", "Torshov: 10% off {x} [y] €5 ~^|\\"),
        ("æøå ÆØÅ äö ÄÖ é", "æøå ÆØÅ äö ÄÖ é"),
        ("", ""),
        # "..." would cost two GSM segments where "…"*70 costs one UCS-2 segment.
        ("…" * 70, "…" * 70),
    ],
)
def test_to_gsm7(text, expected):
    assert to_gsm7(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", SmsSize("GSM-7", 0, 1)),
        ("a", SmsSize("GSM-7", 1, 1)),
        ("a" * 160, SmsSize("GSM-7", 160, 1)),
        ("a" * 161, SmsSize("GSM-7", 161, 2)),
        ("a" * 153 * 2, SmsSize("GSM-7", 306, 2)),
        ("a" * 307, SmsSize("GSM-7", 307, 3)),
        ("a" * 153 * 3, SmsSize("GSM-7", 459, 3)),
        ("€", SmsSize("GSM-7", 2, 1)),
        ("[]{}~^\\|\f", SmsSize("GSM-7", 18, 1)),
        ("€" * 80, SmsSize("GSM-7", 160, 1)),
        ("€" * 80 + "a", SmsSize("GSM-7", 161, 2)),
        ("æøåÆØÅäöÄÖé", SmsSize("GSM-7", 11, 1)),
        ("line\r\nbreak", SmsSize("GSM-7", 11, 1)),
        ("ç" * 70, SmsSize("UCS-2", 70, 1)),
        ("ç" * 71, SmsSize("UCS-2", 71, 2)),
        ("ç" * 67 * 2, SmsSize("UCS-2", 134, 2)),
        ("ç" * 135, SmsSize("UCS-2", 135, 3)),
        ("“a”", SmsSize("UCS-2", 3, 1)),
        ("1\u00a0250", SmsSize("UCS-2", 5, 1)),
        ("😀", SmsSize("UCS-2", 2, 1)),
        ("😀" * 35, SmsSize("UCS-2", 70, 1)),
        ("😀" * 35 + "a", SmsSize("UCS-2", 71, 2)),
        ("a" * 159 + "😀", SmsSize("UCS-2", 161, 3)),
    ],
)
def test_segments(text, expected):
    assert segments(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hei Kari, æøå!", True),
        ("€[]{}", True),
        ("Ç", True),
        ("ç", False),
        ("“", False),
        ("\u00a0", False),
        ("\t", False),
        ("😀", False),
        ("", True),
    ],
)
def test_is_gsm7(text, expected):
    assert is_gsm7(text) is expected


mixed_text = st.text(alphabet=st.sampled_from(TYPOGRAPHIC + GSM_SAMPLE + OTHER), max_size=400)
# Mostly ellipses: the one replacement that lengthens a text.
ellipses = st.text(alphabet=st.sampled_from("……………a😀"), min_size=40, max_size=300)


@given(st.one_of(st.text(max_size=400), mixed_text, ellipses))
def test_to_gsm7_never_costs_more_segments(text):
    assert segments(to_gsm7(text)).segments <= segments(text).segments


@given(st.text(alphabet=st.sampled_from(sorted(GSM7_BASIC | GSM7_EXTENSION)), max_size=400))
def test_to_gsm7_leaves_gsm7_text_alone(text):
    assert to_gsm7(text) == text


@given(st.text(alphabet=st.sampled_from(TYPOGRAPHIC + GSM_SAMPLE), max_size=400))
def test_typographic_text_becomes_gsm7(text):
    cleaned = to_gsm7(text)
    assert is_gsm7(cleaned) or "…" in cleaned or "‥" in cleaned


PARTS = st.lists(
    st.tuples(st.text(alphabet="abc æø€", min_size=1, max_size=90), st.booleans()), max_size=5
)


@given(PARTS)
def test_fit_one_leaves_out_only_optional_parts_and_only_while_too_long(parts):
    """Every part that must be said is kept, in order; an optional part is left out only
    while the whole takes more than one segment, the last one first."""
    text = fit_one(parts)
    whole = " ".join(part for part, _ in parts)
    if segments(whole).segments == 1:
        assert text == whole
        return
    kept = [part for part, _ in parts]
    while segments(" ".join(kept)).segments > 1 and any(optional for _, optional in parts):
        last = max(i for i, (_, optional) in enumerate(parts) if optional)
        parts = parts[:last] + parts[last + 1 :]
        kept = [part for part, _ in parts]
    assert text == " ".join(kept)
    required = [part for part, optional in parts if not optional]
    assert " ".join(required) in text or not required


def test_fit_one_drops_a_question_asked_again_that_would_overflow():
    help_text, question = "h" * 120, "Hva er fornavnet ditt? (eller HOPP OVER)"
    assert fit_one([(help_text, False), (question, True)]) == help_text
    assert fit_one([("h" * 100, False), (question, True)]) == "h" * 100 + " " + question
    assert fit_one([("h" * 200, False)]) == "h" * 200  # what must be said is never cut
