"""Member-facing texts in nb, sv and en, and numbers, dates and money in the member's locale."""

from __future__ import annotations

import functools
import gettext
import io
import re
import string
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from importlib import resources

from babel.dates import format_date as babel_format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal, get_currency_precision

from locales.sms import SmsSize, is_gsm7, segments, to_gsm7

__all__ = [
    "DEFAULT_LANGUAGE",
    "DOMAIN",
    "LANGUAGES",
    "PREFIX_LANGUAGES",
    "MissingMessageError",
    "SmsSize",
    "babel_locale",
    "benefit",
    "format_date",
    "format_money",
    "format_number",
    "is_gsm7",
    "language_for_phone",
    "message_ids",
    "normalize_language",
    "render",
    "segments",
    "sms_money",
    "sms_url",
    "text",
    "to_gsm7",
]

LANGUAGES: tuple[str, ...] = ("nb", "sv", "en")
DEFAULT_LANGUAGE = "en"
DOMAIN = "klubb"

_BABEL_LOCALES = {"nb": "nb_NO", "sv": "sv_SE", "en": "en_GB"}
# Fixed patterns rather than CLDR's "short"/"medium", so a Babel upgrade can't change what
# members see (or push a message over 160 characters).
_DATE_PATTERNS = {"nb": "dd.MM.yyyy", "sv": "yyyy-MM-dd", "en": "d MMM yyyy"}
_ALIASES = {"no": "nb", "nn": "nb"}
# The currency a language's "kr" means.
_LOCAL_CURRENCY = {"nb": "NOK", "sv": "SEK"}
# The language a number starts in, by its country code (SQL reads it too: store.outreach.campaigns).
PREFIX_LANGUAGES = (("+47", "nb"), ("+46", "sv"))
# Babel writes an ISO code glued to the amount in en ("NOK100.00"); a space reads better.
_CODE_BEFORE_DIGIT = re.compile(r"(?<![A-Za-z])([A-Z]{3})(?=\d)")


class MissingMessageError(KeyError):
    """The catalog has no usable text for this message id."""


def normalize_language(language: str) -> str:
    """The supported language for a code such as "nb", "NB", "nb_NO", "no" or "sv-SE"; else en."""
    code = language.strip().lower().replace("-", "_").split("_", 1)[0]
    code = _ALIASES.get(code, code)
    return code if code in LANGUAGES else DEFAULT_LANGUAGE


def babel_locale(language: str) -> str:
    """The Babel locale used to format numbers, dates and money for the language."""
    return _BABEL_LOCALES[normalize_language(language)]


def render(message_id: str, language: str, /, **params: object) -> str:
    """The message in the language, with params formatted for its locale, as GSM-7 where possible.

    A plural entry picks its form by the `count` param. Raises MissingMessageError (a KeyError) for
    an id the catalog lacks or leaves empty, and KeyError for a placeholder without a param.
    """
    language = normalize_language(language)
    template = _catalog(language).template(message_id, params.get("count"))
    # Only the placeholders this text uses are formatted (Babel is the slow part of a reply).
    values = {
        name: _format_value(params[name], language)
        for name in _placeholders(template)
        if name in params
    }
    return to_gsm7(template.format_map(values))


def text(message_id: str, language: str, /, **params: object) -> str:
    """The message as a web page shows it: like `render`, but typography is left alone (no
    GSM-7 replacements), since no SMS carries it. Numbers keep the locale's own spaces."""
    language = normalize_language(language)
    template = _catalog(language).template(message_id, params.get("count"))
    values = {
        name: _web_value(params[name], language)
        for name in _placeholders(template)
        if name in params
    }
    return template.format_map(values)


def _web_value(value: object, language: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return format_decimal(value, locale=babel_locale(language))
    if isinstance(value, date) and not isinstance(value, datetime):
        return babel_format_date(value, _DATE_PATTERNS[language], locale=_BABEL_LOCALES[language])
    return str(value)


@functools.lru_cache(maxsize=1024)
def _placeholders(template: str) -> frozenset[str]:
    return frozenset(
        field.split(".")[0].split("[")[0]
        for _, field, _, _ in string.Formatter().parse(template)
        if field
    )


def message_ids(language: str) -> frozenset[str]:
    """The message ids that have a text in the language's catalog."""
    return _catalog(normalize_language(language)).ids


@functools.lru_cache(maxsize=4096)
def format_number(n: int, language: str) -> str:
    """An integer with the locale's grouping: nb/sv "1 250", en "1,250"."""
    return to_gsm7(format_decimal(n, locale=babel_locale(language)))


def format_date(d: date, language: str) -> str:
    """A calendar date: nb "12.03.2027", sv "2027-03-12", en "12 Mar 2027"."""
    if isinstance(d, datetime):
        # A datetime is shown as a date only after conversion to the member's zone, which
        # only the caller knows.
        msg = "format_date takes a date; convert the datetime to the member's local date first"
        raise TypeError(msg)
    language = normalize_language(language)
    text = babel_format_date(d, _DATE_PATTERNS[language], locale=_BABEL_LOCALES[language])
    return to_gsm7(text)


def format_money(minor_units: int, currency: str, language: str) -> str:
    """An amount given in minor units (øre, cents): nb/sv "100,00 kr", en "NOK 100.00"."""
    amount = Decimal(minor_units).scaleb(-get_currency_precision(currency))
    text = format_currency(amount, currency, locale=babel_locale(language))
    return to_gsm7(_CODE_BEFORE_DIGIT.sub(r"\1 ", text))


def sms_money(minor_units: int, currency: str, language: str) -> str:
    """An amount as a member reads it in an SMS: "100 kr" in nb for NOK and in sv for SEK; any
    other currency by its code, "100 NOK" in sv (CLDR's "100,00 Nkr" reads as no Swede writes
    it) and "NOK 100" in en; øre, öre and cents only when there are any ("99,50 kr")."""
    language = normalize_language(language)
    places = get_currency_precision(currency)
    amount = Decimal(minor_units).scaleb(-places)
    pattern = "#,##0" if minor_units % 10**places == 0 else "#,##0." + "0" * places
    number = format_decimal(amount, pattern, locale=babel_locale(language))
    if language == "en":
        text = f"{currency} {number}"
    elif _LOCAL_CURRENCY[language] == currency:
        text = f"{number} kr"
    else:
        text = f"{number} {currency}"
    return to_gsm7(text)


def benefit(text: str, language: str, *, amount_minor: int | None, currency: str) -> str:
    """A coupon's benefit as the club wrote it, its {amount} written as money in the language
    (sms_money): "{amount} rabatt" with 10000 NOK reads "100 kr rabatt" in nb, "100 NOK rabatt"
    in sv and "NOK 100 rabatt" in en."""
    if amount_minor is None or "{amount}" not in text:
        return text
    return text.replace("{amount}", sms_money(amount_minor, currency, language))


def sms_url(url: str) -> str:
    """A web address as an SMS shows it: without "https://", which phones link without and
    which costs eight of the 160 characters."""
    return url.removeprefix("https://")


def language_for_phone(e164: str) -> str:
    """The language to start with for a phone number: +47 nb, +46 sv, anything else en."""
    # Country calling codes are prefix-free: +47 is only ever Norway (with Svalbard), +46 only
    # Sweden, so the prefix decides without parsing the number (this runs on every text).
    for prefix, language in PREFIX_LANGUAGES:
        if e164.startswith(prefix):
            return language
    return DEFAULT_LANGUAGE


@dataclass(frozen=True, slots=True)
class _Catalog:
    translations: gettext.GNUTranslations
    ids: frozenset[str]
    plurals: dict[str, str]

    def template(self, message_id: str, count: object) -> str:
        if message_id not in self.ids:
            raise MissingMessageError(message_id)
        plural_id = self.plurals.get(message_id)
        if plural_id is None:
            text = self.translations.gettext(message_id)
        elif isinstance(count, int) and not isinstance(count, bool):
            text = self.translations.ngettext(message_id, plural_id, count)
        else:
            msg = f"{message_id} is a plural message and needs an int count, got {count!r}"
            raise TypeError(msg)
        # gettext falls back to the id itself for anything it lacks.
        if not text or text in (message_id, plural_id):
            raise MissingMessageError(message_id)
        return text


def _parse_catalog(sources: list[bytes], language: str) -> _Catalog:
    """One catalog from the language's .po files (the SMS texts in klubb.po, the web admin's
    words in admin*.po); an id in two files is an error, not a silent override."""
    catalog = read_po(io.BytesIO(sources[0]), locale=_BABEL_LOCALES[language], abort_invalid=True)
    for po in sources[1:]:
        for message in list(read_po(io.BytesIO(po), abort_invalid=True))[1:]:
            if message.id in catalog:
                msg = f"{_message_id(message.id)} is in two of the {language} catalog files"
                raise ValueError(msg)
            catalog[message.id] = message
    usable = [
        message
        for message in list(catalog)[1:]
        if not message.fuzzy
        and (all(message.string) if message.pluralizable else bool(message.string))
    ]
    # write_mo keeps a plural entry whose forms are empty, so the usable set is decided here.
    mo = io.BytesIO()
    write_mo(mo, catalog)
    mo.seek(0)
    return _Catalog(
        translations=gettext.GNUTranslations(mo),
        ids=frozenset(_message_id(message.id) for message in usable),
        plurals={m.id[0]: m.id[1] for m in usable if m.pluralizable},
    )


def _message_id(message_id: str | tuple[str, ...]) -> str:
    return message_id if isinstance(message_id, str) else message_id[0]


@functools.cache
def _catalog(language: str) -> _Catalog:
    folder = resources.files(__name__) / language / "LC_MESSAGES"
    others = sorted(
        entry.name
        for entry in folder.iterdir()
        if entry.name.endswith(".po") and entry.name != f"{DOMAIN}.po"
    )
    names = [f"{DOMAIN}.po", *others]
    return _parse_catalog([(folder / name).read_bytes() for name in names], language)


def _format_value(value: object, language: str) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return format_number(value, language)
    if isinstance(value, date):
        return format_date(value, language)
    return str(value)
