"""Profile answers: birthdays, first names and choices as members type them in nb, sv and en."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from flows.profile import MAX_NAME, clean_name, parse_birthday, parse_choices
from flows.turn import Question
from locales.sms import is_gsm7

TODAY = dt.date(2026, 5, 14)
BORN = dt.date(1990, 3, 12)

ACTIVITIES = Question(
    id=3,
    key="activities",
    kind="multichoice",
    prompt={"nb": "Hvilke aktiviteter liker du?", "en": "Which activities interest you?"},
    choices=(
        {"key": "running", "label": {"nb": "Løping", "sv": "Löpning", "en": "Running"}},
        {"key": "cycling", "label": {"nb": "Sykling", "sv": "Cykling", "en": "Cycling"}},
        {"key": "skiing", "label": {"nb": "Ski", "sv": "Skidor", "en": "Skiing"}},
    ),
)


class TestParseBirthday:
    """A birthday in any common Nordic or English form is read; anything else is None."""

    @pytest.mark.parametrize(
        "text",
        [
            "12.03.1990",
            " 12.03.1990 ",
            "12.3.1990",
            "12/3/1990",
            "12/03/1990",
            "12-03-1990",
            "12 03 1990",
            "12. 03. 1990",
            "1990-03-12",
            "1990/03/12",
            "1990.3.12",
            "12031990",
            "19900312",
            "120390",
            "900312",  # Swedish YYMMDD: 90 can't be a day
            "12.03.90",
            "12.3.90",
            "12 mars 1990",
            "12. mars 1990",
            "12 MARS 1990",
            "12 mar 1990",
            "12 march 1990",
            "12th March 1990",
            "12th of march 1990",
            "March 12, 1990",
            "march 12 1990",
            "Mar 12th, 1990",
        ],
    )
    def test_forms_of_the_same_date(self, text: str) -> None:
        """Dotted, slashed, ISO, digits only and with month names in nb, sv and en."""
        assert parse_birthday(text, TODAY) == BORN

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("12. mai 1990", dt.date(1990, 5, 12)),
            ("12 maj 1990", dt.date(1990, 5, 12)),
            ("12 may 1990", dt.date(1990, 5, 12)),
            ("1 juni 1990", dt.date(1990, 6, 1)),
            ("1 juli 1990", dt.date(1990, 7, 1)),
            ("12 okt. 1990", dt.date(1990, 10, 12)),
            ("12 oktober 1990", dt.date(1990, 10, 12)),
            ("24. desember 1990", dt.date(1990, 12, 24)),
            ("24 december 1990", dt.date(1990, 12, 24)),
            ("24 des 1990", dt.date(1990, 12, 24)),
            ("29.02.2000", dt.date(2000, 2, 29)),
        ],
    )
    def test_month_names_in_every_language(self, text: str, expected: dt.date) -> None:
        """Month names and abbreviations in nb, sv and en name the same month."""
        assert parse_birthday(text, TODAY) == expected

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("19031990", dt.date(1990, 3, 19)),
            ("20121990", dt.date(1990, 12, 20)),
            ("19901203", dt.date(1990, 12, 3)),
            ("20000312", dt.date(2000, 3, 12)),
        ],
    )
    def test_eight_digits_day_first_or_year_first(self, text: str, expected: dt.date) -> None:
        """DDMMYYYY on the 19th or 20th is not mistaken for a year 19xx or 20xx."""
        assert parse_birthday(text, TODAY) == expected

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("12.03.26", dt.date(2026, 3, 12)),
            ("14.05.26", dt.date(2026, 5, 14)),
            ("15.05.26", dt.date(1926, 5, 15)),
            ("150526", dt.date(1926, 5, 15)),
            ("12.03.27", dt.date(1927, 3, 12)),
            ("120327", dt.date(1927, 3, 12)),
            ("01.01.00", dt.date(2000, 1, 1)),
            ("31.12.99", dt.date(1999, 12, 31)),
            ("12.03.10", dt.date(2010, 3, 12)),
        ],
    )
    def test_two_digit_years_are_the_last_hundred_years(self, text: str, expected: dt.date) -> None:
        """A two-digit year is the latest date that is not in the future (pivot on today)."""
        assert parse_birthday(text, TODAY) == expected

    @pytest.mark.parametrize(
        "text",
        [
            "",
            "   ",
            "i mai",
            "12 mars",
            "12.03",
            "31.02.1990",
            "29.02.1900",
            "32.01.1990",
            "12.13.1990",
            "00.00.0000",
            "15.05.2026",
            "01.01.2030",
            "01.01.1890",
            "14.05.1905",
            "12 Brumaire 1990",
            "1990",
            "tomorrow",
            "12.03.1990.12",
            "1234567",
            "😀",
        ],
    )
    def test_not_a_birthday(self, text: str) -> None:
        """Impossible, future, over 120 years ago, no year, or no date at all: None."""
        assert parse_birthday(text, TODAY) is None

    def test_today_and_oldest_are_the_bounds(self) -> None:
        """Born today is a date; a member of 120 is the oldest, a day older is not."""
        assert parse_birthday("14.05.2026", TODAY) == TODAY
        assert parse_birthday("15.05.1905", TODAY) == dt.date(1905, 5, 15)
        assert parse_birthday("14.05.1905", TODAY) is None


class TestCleanName:
    """A first name is taken from what a member writes, tidied, or None if it is no name."""

    @pytest.mark.parametrize(
        ("text", "name"),
        [
            ("kari", "Kari"),
            ("KARI", "Kari"),
            ("Kari", "Kari"),
            ("  kari  ", "Kari"),
            ("Kari!", "Kari"),
            ("Kari.", "Kari"),
            ("ANNE-MARIE", "Anne-Marie"),
            ("anne-marie", "Anne-Marie"),
            ("anne marie", "Anne Marie"),
            ("jean-luc picard", "Jean-Luc Picard"),
            ("Åse", "Åse"),
            ("åse", "Åse"),
            ("ÅSE", "Åse"),
            ("ØRJAN", "Ørjan"),
            ("Ærlig", "Ærlig"),
            ("björn", "Björn"),
            ("O'Neil", "O'Neil"),
            ("McKenzie", "McKenzie"),
            ("Jo", "Jo"),
        ],
    )
    def test_names_are_tidied(self, text: str, name: str) -> None:
        """Case is fixed only when all lower or all upper; every part of a name is capitalised."""
        assert clean_name(text) == name

    @pytest.mark.parametrize(
        "text",
        [
            "Jeg heter Ola",
            "jeg heter ola",
            "Eg heiter Ola",
            "Navnet mitt er Ola",
            "my name is Ola",
            "My name's Ola",
            "I am Ola",
            "I'm Ola",
            "it's Ola",
            "name: Ola",
            "Jag heter Ola",
            "Mitt namn är Ola",
            "Heter Ola",
        ],
    )
    def test_introductions_are_left_out(self, text: str) -> None:
        """ "Jeg heter Ola", "my name is Ola" and "I'm Ola" all give Ola."""
        assert clean_name(text) == "Ola"

    @pytest.mark.parametrize(
        "text",
        [
            "",
            "   ",
            "😀",
            "Kari 😀",
            "1234",
            "Kari2",
            "a" * (MAX_NAME + 1),
            "one two three four",
            "-",
            "...",
            "jeg heter",
            "my name is",
            "kari@example.com",
            "https://example.com",
        ],
    )
    def test_no_name(self, text: str) -> None:
        """Emoji, digits, over 40 characters, more than three words or a bare intro: None."""
        assert clean_name(text) is None

    def test_forty_characters_is_still_a_name(self) -> None:
        """The limit is 40 characters, inclusive."""
        assert clean_name("a" * MAX_NAME) == "A" + "a" * (MAX_NAME - 1)

    @given(st.text(alphabet=st.sampled_from("aeikoSèéùìòÇØøÅåÆæßÉÄÖÑÜäöñüàçğÈÙÿ -"), max_size=12))
    def test_a_kept_name_adds_no_letter_outside_gsm7(self, text: str) -> None:
        """A name is capitalised only into GSM-7 letters: every letter of the kept name is
        GSM-7 or one the member typed ("è" is not made "È")."""
        name = clean_name(text)
        assume(name is not None)
        assert all(is_gsm7(c) or c in text for c in name), name


class TestParseChoices:
    """Choices are picked by number or by label in any language, in the order given."""

    @pytest.mark.parametrize(
        ("text", "picked"),
        [
            ("1", ("running",)),
            ("3", ("skiing",)),
            ("1 3", ("running", "skiing")),
            ("1,3", ("running", "skiing")),
            ("1, 3.", ("running", "skiing")),
            ("1 og 3", ("running", "skiing")),
            ("1 och 3", ("running", "skiing")),
            ("1 and 3", ("running", "skiing")),
            ("3 1", ("skiing", "running")),
            ("1 2 3", ("running", "cycling", "skiing")),
        ],
    )
    def test_by_number(self, text: str, picked: tuple[str, ...]) -> None:
        """Numbers 1..n, separated by spaces, commas or og/och/and."""
        assert parse_choices(text, ACTIVITIES, "nb") == picked

    @pytest.mark.parametrize(
        ("text", "language", "picked"),
        [
            ("Løping", "nb", ("running",)),
            ("løping", "en", ("running",)),
            ("LOPING", "nb", ("running",)),
            ("Löpning", "nb", ("running",)),
            ("running", "sv", ("running",)),
            ("Sykling og ski", "nb", ("cycling", "skiing")),
            ("cykling och skidor", "sv", ("cycling", "skiing")),
            ("Running, Cycling", "en", ("running", "cycling")),
            ("ski", "nb", ("skiing",)),
            ("skiing", "nb", ("skiing",)),
            ("1 ski", "nb", ("running", "skiing")),
        ],
    )
    def test_by_label_in_any_language(
        self, text: str, language: str, picked: tuple[str, ...]
    ) -> None:
        """A label in nb, sv or en picks its choice whatever the member's language."""
        assert parse_choices(text, ACTIVITIES, language) == picked

    @pytest.mark.parametrize(
        ("text", "picked"),
        [("1 1", ("running",)), ("1 3 1 3", ("running", "skiing")), ("ski 3", ("skiing",))],
    )
    def test_duplicates_collapse(self, text: str, picked: tuple[str, ...]) -> None:
        """A choice named twice is picked once."""
        assert parse_choices(text, ACTIVITIES, "nb") == picked

    @pytest.mark.parametrize(
        "text", ["", "  ", "0", "4", "1 4", "13", "og", "yes", "alle", "1 swimming", "😀"]
    )
    def test_nothing_or_out_of_range(self, text: str) -> None:
        """Out of range, unknown words or no choice at all: None, never a partial pick."""
        assert parse_choices(text, ACTIVITIES, "nb") is None

    def test_label_of_several_words(self) -> None:
        """A label with a space in it is picked by the whole label."""
        question = Question(
            4,
            "sport",
            "choice",
            {"en": "Favourite?"},
            (
                {"key": "xc", "label": {"nb": "Langrenn", "en": "Cross country"}},
                {"key": "alpine", "label": {"nb": "Alpint", "en": "Alpine"}},
            ),
        )
        assert parse_choices("cross country", question, "en") == ("xc",)
        assert parse_choices("Cross-country", question, "nb") == ("xc",)
        assert parse_choices("langrenn", question, "en") == ("xc",)


@pytest.mark.parametrize(
    ("text", "born"),
    [
        ("050612", dt.date(2012, 6, 5)),  # a valid DDMMYY is read day first
        ("900312", dt.date(1990, 3, 12)),  # YYMMDD when the first pair can't be a day
        ("000101", dt.date(2000, 1, 1)),
        ("991231", dt.date(1999, 12, 31)),
    ],
)
def test_six_digits_read_day_first_then_year_first(text: str, born: dt.date) -> None:
    """Six digits are DDMMYY (Norway) unless that can't be a date, then YYMMDD (Sweden)."""
    assert parse_birthday(text, dt.date(2026, 11, 23)) == born
