"""render, the formatters and the language guess give each member their own locale."""

from datetime import UTC, date, datetime

import pytest

import locales
from locales import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    MissingMessageError,
    babel_locale,
    format_date,
    format_money,
    format_number,
    language_for_phone,
    message_ids,
    normalize_language,
    render,
)
from locales import _parse_catalog as parse_catalog  # the only way to load a broken catalog


def test_languages_and_default():
    assert LANGUAGES == ("nb", "sv", "en")
    assert DEFAULT_LANGUAGE == "en"


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("nb", "Svar med ett tall fra 1 til 1 250, eller HOPP OVER."),
        ("sv", "Svara med en siffra från 1 till 1 250, eller HOPPA ÖVER."),
        ("en", "Please reply with one number from 1 to 1,250, or SKIP."),
    ],
)
def test_render_groups_numbers_with_plain_spaces_in_nb_and_sv(language, expected):
    text = render("profile.again.choice", language, count=1250)
    assert text == expected
    assert "\u00a0" not in text
    assert "\u202f" not in text


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("nb", "ja fra 12.03.2027"),
        ("sv", "ja sedan 2027-03-12"),
        ("en", "yes since 12 Mar 2027"),
    ],
)
def test_render_formats_dates_for_the_language(language, expected):
    assert render("mydata.consent.yes", language, date=date(2027, 3, 12)) == expected


@pytest.mark.parametrize(
    ("language", "one", "two"),
    [
        ("nb", "1 profilsvar", "2 profilsvar"),
        ("sv", "1 profilsvar", "2 profilsvar"),
        ("en", "1 profile answer", "2 profile answers"),
    ],
)
def test_render_picks_the_plural_form_by_count(language, one, two):
    assert render("mydata.answers", language, count=1) == one
    assert render("mydata.answers", language, count=2) == two
    assert render("mydata.answers", language, count=0) == two.replace("2", "0", 1)


def test_plural_message_without_an_int_count_is_a_programming_error():
    with pytest.raises(TypeError):
        render("mydata.answers", "en")
    with pytest.raises(TypeError):
        render("mydata.answers", "en", count="2")


@pytest.mark.parametrize("language", LANGUAGES)
def test_unknown_message_id_raises_key_error(language):
    with pytest.raises(KeyError):
        render("points.balanse", language)
    with pytest.raises(MissingMessageError):
        render("mydata.answers.plural", language, count=2)


def test_missing_param_raises_key_error():
    with pytest.raises(KeyError, match="club"):
        render("join.welcome", "nb")


def test_extra_params_are_ignored():
    assert render("join.welcome", "en", club="Kafé Kari", count=3) == "Welcome to Kafé Kari!"


@pytest.mark.parametrize("language", ["de", "", "xx_YY", "EN"])
def test_unknown_language_falls_back_to_english(language):
    assert render("join.welcome", language, club="Kafé Kari") == "Welcome to Kafé Kari!"
    assert message_ids(language) == message_ids("en")


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("nb", "nb"),
        ("NB", "nb"),
        ("nb_NO", "nb"),
        ("nb-NO", "nb"),
        ("no", "nb"),
        ("nn", "nb"),
        ("sv_SE", "sv"),
        ("SV", "sv"),
        ("en_GB", "en"),
        ("da", "en"),
        ("", "en"),
    ],
)
def test_normalize_language(language, expected):
    assert normalize_language(language) == expected


def test_render_turns_typographic_params_into_gsm7():
    assert render("profile.thanks", "en", first_name="“Kari”") == 'Thanks "Kari"!'


def test_render_keeps_an_emoji_in_a_param():
    assert render("profile.thanks", "nb", first_name="Kari 😀") == "Takk, Kari 😀!"


def test_render_refuses_a_datetime_whose_local_date_only_the_caller_knows():
    with pytest.raises(TypeError):
        render("mydata.consent.yes", "nb", date=datetime(2027, 3, 12, 23, 30, tzinfo=UTC))


def test_render_shows_booleans_as_text_not_numbers():
    assert render("profile.thanks", "en", first_name=True) == "Thanks True!"


PO_WITH_GAPS = b"""\
msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\\n"
"Plural-Forms: nplurals=2; plural=(n != 1);\\n"

msgid "ok"
msgstr "Fine"

msgid "empty"
msgstr ""

#, fuzzy
msgid "fuzzy"
msgstr "Not checked yet"

msgid "plural.empty"
msgid_plural "plural.empty.plural"
msgstr[0] ""
msgstr[1] ""

msgid "plural.half"
msgid_plural "plural.half.plural"
msgstr[0] "{count} thing"
msgstr[1] ""
"""


@pytest.mark.parametrize("message_id", ["empty", "fuzzy", "plural.empty", "plural.half"])
def test_an_untranslated_or_fuzzy_entry_is_missing_never_empty(message_id):
    catalog = parse_catalog([PO_WITH_GAPS], "en")
    assert catalog.ids == {"ok"}
    assert catalog.template("ok", None) == "Fine"
    with pytest.raises(MissingMessageError):
        catalog.template(message_id, 2)


@pytest.mark.parametrize(
    ("n", "language", "expected"),
    [
        (1250, "nb", "1 250"),
        (1250, "sv", "1 250"),
        (1250, "en", "1,250"),
        (1_000_000, "nb", "1 000 000"),
        (-300, "nb", "-300"),
        (0, "sv", "0"),
        (999, "en", "999"),
    ],
)
def test_format_number(n, language, expected):
    assert format_number(n, language) == expected


@pytest.mark.parametrize(
    ("language", "expected"),
    [("nb", "12.03.2027"), ("sv", "2027-03-12"), ("en", "12 Mar 2027"), ("de", "12 Mar 2027")],
)
def test_format_date(language, expected):
    assert format_date(date(2027, 3, 12), language) == expected


@pytest.mark.parametrize(
    ("minor_units", "currency", "language", "expected"),
    [
        (10000, "NOK", "nb", "100,00 kr"),
        (10000, "SEK", "sv", "100,00 kr"),
        (10000, "NOK", "en", "NOK 100.00"),
        (123456, "NOK", "nb", "1 234,56 kr"),
        (123456, "SEK", "en", "SEK 1,234.56"),
        (-5050, "NOK", "nb", "-50,50 kr"),
        (500, "EUR", "sv", "5,00 €"),
        (500, "JPY", "en", "JP¥500"),
    ],
)
def test_format_money_from_minor_units(minor_units, currency, language, expected):
    assert format_money(minor_units, currency, language) == expected


@pytest.mark.parametrize(
    ("language", "expected"),
    [("nb", "nb_NO"), ("sv", "sv_SE"), ("en", "en_GB"), ("fi", "en_GB")],
)
def test_babel_locale(language, expected):
    assert babel_locale(language) == expected


@pytest.mark.parametrize(
    ("phone", "expected"),
    [
        ("+4791234567", "nb"),
        ("+47 912 34 567", "nb"),
        ("+4779012345", "nb"),
        ("+46701234567", "sv"),
        ("+46 8 123 456 78", "sv"),
        ("+4520123456", "en"),
        ("+358401234567", "en"),
        ("+447700900123", "en"),
        ("+15005550006", "en"),
        ("91234567", "en"),
        ("", "en"),
        ("+", "en"),
        ("garbage", "en"),
        ("+999123", "en"),
    ],
)
def test_language_for_phone(phone, expected):
    assert language_for_phone(phone) == expected


@pytest.mark.parametrize(
    ("language", "expected"),
    [("nb", "100 kr rabatt"), ("sv", "100 NOK rabatt"), ("en", "NOK 100 rabatt")],
)
def test_a_benefit_s_amount_is_money_in_the_language(language, expected):
    """A Swede reads a Norwegian club's kroner as "100 NOK", not CLDR's "100,00 Nkr"."""
    assert locales.benefit("{amount} rabatt", language, amount_minor=10000, currency="NOK") == (
        expected
    )


def test_a_benefit_without_an_amount_is_left_as_written():
    assert locales.benefit("10% off", "en", amount_minor=None, currency="NOK") == "10% off"
    assert locales.benefit("a cake", "en", amount_minor=500, currency="NOK") == "a cake"


@pytest.mark.parametrize(
    ("minor_units", "currency", "language", "expected"),
    [
        (10000, "NOK", "nb", "100 kr"),
        (10000, "SEK", "sv", "100 kr"),
        (10000, "NOK", "sv", "100 NOK"),
        (10000, "SEK", "nb", "100 SEK"),
        (10000, "NOK", "en", "NOK 100"),
        (9950, "NOK", "nb", "99,50 kr"),
        (9950, "SEK", "en", "SEK 99.50"),
        (123450, "NOK", "nb", "1 234,50 kr"),
        (123400, "NOK", "sv", "1 234 NOK"),
        (123400, "NOK", "en", "NOK 1,234"),
        (500, "EUR", "sv", "5 EUR"),
        (500, "JPY", "nb", "500 JPY"),
    ],
)
def test_money_in_an_sms_is_written_as_members_write_it(minor_units, currency, language, expected):
    """Whole amounts without decimals, "kr" for the language's own kroner, any other currency
    by its code; plain GSM-7 spaces."""
    assert locales.sms_money(minor_units, currency, language) == expected
