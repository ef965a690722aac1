"""The nb, sv and en catalogs hold the same messages, as short GSM-7 texts in the right words."""

import re
import string
from datetime import date
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

import locales
from locales import LANGUAGES, message_ids, render, segments
from locales.sms import is_gsm7

CATALOG_DIR = Path(locales.__file__).parent

# The contract with flows/: every id and the exact placeholders it takes.
PLACEHOLDERS: dict[str, set[str]] = {
    "join.confirm": {"club", "per_month", "privacy_url"},
    "join.confirm.again": {"club"},
    "join.declined": {"club"},
    "join.already": {"club"},
    "join.welcome": {"club"},
    "profile.ask.first_name": set(),
    "profile.thanks": {"first_name"},
    "profile.ask.birthday": set(),
    "profile.ask.choice": {"question", "options"},
    "profile.ask.multichoice": {"question", "options"},
    "profile.ask.text": {"question"},
    "profile.again.first_name": set(),
    "profile.again.birthday": set(),
    "profile.again.choice": {"count"},
    "profile.again.multichoice": {"count"},
    "profile.again.text": {"max_length"},
    "profile.too_young": {"min_age", "club"},
    "profile.done": {"club"},
    "profile.edit.now": {"answer"},
    "profile.edit.keep": set(),
    "profile.edit.done": {"club"},
    "profile.edit.none": {"club"},
    "profile.edit.guest": {"club"},
    "profile.edit.too_young": {"min_age"},
    "profile.birthday.locked": set(),
    "profile.new.thanks": set(),
    "profile.new.skipped": set(),
    "help.member": {"club", "contact"},
    "help.guest": {"club", "contact"},
    "stop.confirmed": {"club"},
    "start.confirmed": {"club", "per_month"},
    "consent.carrier_stop": set(),
    "lang.ask": set(),
    "lang.changed": set(),
    "lang.name": set(),
    "mydata.summary": {
        "phone",
        "first_name",
        "birthday",
        "language",
        "joined",
        "consent",
        "answers",
    },
    "mydata.answers": {"count"},
    "mydata.consent.yes": {"date"},
    "mydata.consent.no": set(),
    "mydata.none": set(),
    "mydata.guest": {"club"},
    "delete.ask": {"club"},
    "delete.done": {"club"},
    "delete.kept": set(),
    "menu.guest": {"club"},
    "unknown.member": {"club"},
    "unknown.guest": {"club"},
    "unknown.forwarded": {"club"},
    "error.try_again": set(),
    "enrol.confirmed": {"club", "per_month", "privacy_url"},
    "profile.done.coupon": {"code", "benefit", "date"},
    "points.balance": {"count"},
    "points.balance.tier": {"count", "tier"},
    "points.next_tier": {"count", "tier"},
    "points.expiry": {"count", "date"},
    "points.earn": set(),
    "points.punch": {"n", "count", "benefit"},
    "coupons.list": {"coupons"},
    "coupons.item": {"code", "benefit", "date"},
    "coupons.none": set(),
    "coupons.rewards": {"rewards"},
    "coupons.more": {"page"},
    "coupons.reward": {"n", "benefit", "count"},
    "claim.done": {"code", "benefit", "date", "count"},
    "claim.short": {"benefit", "cost", "balance"},
    "claim.unknown": {"n"},
    "claim.how": set(),
    "claim.none": {"club"},
    "invite.code": {"club", "code", "number"},
    "invite.reward.signup": set(),
    "invite.reward.purchase": set(),
    "campaign.stop_footer": set(),
    "journey.coupon": {"coupon_code"},
    "journey.welcome": {"club", "first_name"},
    "journey.birthday": {"club", "first_name"},
    "journey.expiring": {"club", "expiring_points", "expiry_date", "first_name"},
    "journey.balance": {"club", "first_name", "points"},
    "journey.after_purchase": {"club", "first_name", "points"},
    "journey.winback": {"club", "first_name"},
    "journey.near_tier": {"club", "first_name", "next_tier", "points_to_next"},
    "journey.tier_reached": {"club", "first_name", "tier"},
    "journey.coming_reward": {"club", "first_name", "points_to_reward", "reward"},
    "journey.milestone_points": {"club", "first_name", "milestone"},
    "journey.milestone_purchases": {"club", "first_name", "milestone"},
    "journey.milestone_months": {"club", "first_name", "milestone"},
    "journey.member_day": {"club", "first_name", "years"},
    "journey.gift_received": {"club", "first_name", "gift", "gift_code", "gift_until"},
    "journey.cross_sell": {"club", "first_name", "category"},
    "journey.cross_sell.sample": set(),
    "campaign.favourite.fallback": set(),
    "loyalty.members_only": {"club"},
    "page.link": {"club", "url"},
    "page.guest": {"club"},
    "receipt.earned": {"club", "count", "balance"},
    "receipt.thanks": {"club", "balance"},
    "receipt.coupon": {"code", "benefit", "date"},
    "receipt.cheque": {"points", "code", "benefit", "date"},
    "receipts.on": set(),
    "receipts.off": set(),
    "receipts.guest": {"club"},
    "profile.done.link": {"club", "url"},
    "profile.done.coupon.link": {"code", "benefit", "date", "url"},
    "claim.done.link": {"code", "benefit", "date", "count", "url"},
    "cheque.issued": {"club", "points", "benefit", "code", "date"},
}

# The rules of an SMS (GSM-7, segment budgets, local keywords) bind the texts members get;
# the admin's labels, which a browser shows, are in admin*.po (test_admin_catalogs.py).
SMS_IDS = set(PLACEHOLDERS)

# Every text fits one segment (tests/locales/test_one_segment.py tries the worst cases).
TWO_SEGMENTS: set[str] = set()

OPT_OUT = {
    "nb": "Svar STOPP for å melde deg av",
    "sv": "Svara STOPP för att avsluta",
    "en": "Reply STOP to opt out",
}
# The opt-in texts say it short, to fit one SMS with the privacy address.
SHORT_OPT_OUT = {"nb": "Avmelding: STOPP", "sv": "Avsluta: STOPP", "en": "Opt out: STOP"}
RATES = {
    "nb": "vanlig SMS-pris",
    "sv": "normal sms-taxa",
    "en": "msg&data rates may apply",
}
ENGLISH_KEYWORDS = re.compile(r"\b(YES|NO|STOP|HELP|JOIN|SKIP|LANG|MYDATA|DELETE)\b")
LOCAL_KEYWORDS = {
    "nb": {"JA", "NEI", "STOPP", "START", "HJELP", "SPRÅK", "MINE DATA", "SLETT", "HOPP OVER"},
    "sv": {"JA", "NEJ", "STOPP", "START", "HJÄLP", "SPRÅK", "MINA DATA", "RADERA", "HOPPA ÖVER"},
}

CLUB = "Torshov Sport & Fritid AS"
QUESTIONS = {
    "nb": ("Hvilke aktiviteter er du interessert i?", "1 Løping 2 Sykling 3 Ski 4 Svømming"),
    "sv": ("Vilka aktiviteter är du intresserad av?", "1 Löpning 2 Cykling 3 Skidor 4 Simning"),
    "en": ("Which activities are you interested in?", "1 Running 2 Cycling 3 Skiing 4 Swimming"),
}


BENEFITS = {"nb": "100 kr rabatt", "sv": "100 kr rabatt", "en": "100 kr off"}
TIERS = {"nb": "Bronse", "sv": "Brons", "en": "Bronze"}


def realistic_params(language: str) -> dict[str, object]:
    """Parameters as long as a real club and member would give them."""
    question, options = QUESTIONS[language]
    return {
        "club": CLUB,
        "per_month": 3,
        "privacy_url": locales.sms_url("https://torshovsport.no/personvern"),
        "contact": "post@torshovsport.no",
        "first_name": "Marie-Louise",
        "question": question,
        "options": options,
        "answer": "Løping, Ski",
        "count": 12,
        "max_length": 160,
        "min_age": 15,
        "phone": "+4791234567",
        "birthday": date(1990, 3, 12),
        "language": render("lang.name", language),
        "joined": date(2027, 3, 12),
        "consent": render("mydata.consent.yes", language, date=date(2027, 3, 12)),
        "answers": render("mydata.answers", language, count=5),
        "date": date(2027, 3, 12),
        "code": "WXYZ-7KQ2",
        "benefit": BENEFITS[language],
        "tier": TIERS[language],
        "n": 3,
        "cost": 10000,
        "balance": 9999,
        "points": 12345,
        "coupon_code": "WXYZ-7KQ2",
        "expiring_points": 1250,
        "expiry_date": date(2027, 3, 31),
        "points_to_next": 350,
        "next_tier": TIERS[language],
        "reward": BENEFITS[language],
        "points_to_reward": 100,
        "milestone": 10000,
        "years": 3,
        "gift": BENEFITS[language],
        "gift_code": "WXYZ-7KQ2",
        "gift_until": date(2027, 3, 31),
        "category": "Sykkelutstyr",
        "number": "+4791234567",
        "minutes": 15,
        "page": 2,
        # A member's page on a club's own long address (store.members.links.page_url).
        "url": locales.sms_url("https://medlem.torshovsport.no/m/" + "x" * 22),
        "coupons": "; ".join(
            [
                render(
                    "coupons.item",
                    language,
                    code="WXYZ-7KQ2",
                    benefit="10%",
                    date=date(2027, 3, 12),
                )
            ]
        ),
        "rewards": render("coupons.reward", language, n=1, benefit=BENEFITS[language], count=10000),
    }


def read_catalog(language: str):
    with (CATALOG_DIR / language / "LC_MESSAGES" / "klubb.po").open("rb") as po:
        return read_po(po, abort_invalid=True)


def entries(language: str) -> list[tuple[str, list[str]]]:
    """(id, msgstr forms) for every message in the .po file, header left out."""
    result = []
    for message in list(read_catalog(language))[1:]:
        if isinstance(message.id, tuple):
            result.append((message.id[0], list(message.string)))
        else:
            result.append((message.id, [message.string]))
    return result


def flags(language: str) -> dict[str, set[str]]:
    """The #, flags of each msgid, read from the file: Babel drops python-brace-format when the
    msgid itself (a symbolic id) has no braces."""
    result: dict[str, set[str]] = {}
    pending: set[str] = set()
    for line in (CATALOG_DIR / language / "LC_MESSAGES" / "klubb.po").read_text().splitlines():
        if line.startswith("#,"):
            pending = {flag.strip() for flag in line[2:].split(",")}
        elif line.startswith("msgid "):
            result[line.removeprefix("msgid ").strip('"')] = pending
            pending = set()
    return result


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_the_realistic_club_name_is_the_longest_allowed():
    assert len(CLUB) == 25


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalog_header_declares_utf8_and_two_plural_forms(language):
    catalog = read_catalog(language)
    headers = dict(catalog.mime_headers)
    assert headers["Content-Type"].lower() == "text/plain; charset=utf-8"
    assert headers["Language"] == language
    assert catalog.plural_forms == "nplurals=2; plural=(n != 1);"


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_contract_id_is_in_the_catalog_and_nothing_else(language):
    # The admin's words (admin*.po) and the member page's (web.po) are for a browser.
    sms = {
        message_id
        for message_id in message_ids(language)
        if not message_id.startswith(("admin.", "web."))
    }
    assert sms == set(PLACEHOLDERS)
    assert sorted(message_id for message_id, _ in entries(language)) == sorted(PLACEHOLDERS)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_text_takes_exactly_the_contract_placeholders(language):
    message_flags = flags(language)
    for message_id, forms in entries(language):
        for form in forms:
            assert fields(form) == PLACEHOLDERS[message_id], (language, message_id, form)
        if PLACEHOLDERS[message_id]:
            assert "python-brace-format" in message_flags[message_id], (language, message_id)


@pytest.mark.parametrize("language", LANGUAGES)
def test_placeholders_are_plain_names_without_conversion_or_format_spec(language):
    for message_id, forms in entries(language):
        for form in forms:
            for _, name, spec, conversion in string.Formatter().parse(form):
                if name is not None:
                    assert name.isidentifier(), (language, message_id, name)
                    assert not spec, (language, message_id)
                    assert conversion is None, (language, message_id)


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalog_texts_are_gsm7_without_typographic_characters(language):
    for message_id, forms in entries(language):
        if message_id not in SMS_IDS:
            continue
        for form in forms:
            assert form, (language, message_id)
            assert is_gsm7(form), (language, message_id, form)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("message_id", sorted(SMS_IDS))
def test_rendered_message_fits_its_segment_budget(language, message_id):
    text = render(message_id, language, **realistic_params(language))
    size = segments(text)
    assert size.encoding == "GSM-7", text
    budget = 2 if message_id in TWO_SEGMENTS else 1
    assert size.segments <= budget, (size, text)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("message_id", sorted(PLACEHOLDERS))
def test_rendered_message_fills_every_placeholder(language, message_id):
    text = render(message_id, language, **realistic_params(language))
    assert text
    assert text != message_id
    assert "{" not in text
    assert "}" not in text


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("message_id", ["start.confirmed", "help.member"])
def test_consent_and_help_texts_say_how_to_opt_out(language, message_id):
    text = render(message_id, language, **realistic_params(language))
    assert OPT_OUT[language] in text
    assert CLUB in text


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("message_id", ["join.confirm", "enrol.confirmed"])
def test_opt_in_texts_say_how_to_opt_out_in_short(language, message_id):
    text = render(message_id, language, **realistic_params(language))
    assert SHORT_OPT_OUT[language] in text
    assert CLUB in text


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("message_id", ["join.confirm", "start.confirmed", "enrol.confirmed"])
def test_opt_in_texts_name_frequency_rates_and_help(language, message_id):
    text = render(message_id, language, **realistic_params(language))
    assert RATES[language] in text
    assert "3/m" in text
    assert ("HJELP", "HJÄLP", "HELP")[LANGUAGES.index(language)] in text


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("message_id", ["join.confirm", "enrol.confirmed"])
def test_opt_in_texts_link_the_privacy_notice(language, message_id):
    """The address as phones link it, without the https:// that costs eight characters."""
    text = render(message_id, language, **realistic_params(language))
    assert " torshovsport.no/personvern " in text
    assert "https://" not in text


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("message_id", ["help.member", "help.guest"])
def test_help_names_the_club_the_contact_and_stop(language, message_id):
    text = render(message_id, language, **realistic_params(language))
    assert CLUB in text
    assert "post@torshovsport.no" in text
    assert "STOP" in text


@pytest.mark.parametrize("language", ["nb", "sv"])
def test_nordic_texts_use_local_keywords_not_english_ones(language):
    for message_id in sorted(SMS_IDS):
        text = render(message_id, language, **realistic_params(language))
        assert not ENGLISH_KEYWORDS.findall(text), (message_id, text)
    everything = " ".join(
        render(message_id, language, **realistic_params(language)) for message_id in PLACEHOLDERS
    )
    for keyword in LOCAL_KEYWORDS[language]:
        assert keyword in everything, keyword


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("nb", "DD.MM.ÅÅÅÅ"),
        ("sv", "ÅÅÅÅ-MM-DD"),
        ("en", "DD.MM.YYYY"),
    ],
)
def test_birthday_question_shows_the_local_date_format(language, expected):
    assert expected in render("profile.ask.birthday", language)


@pytest.mark.parametrize(
    ("language", "name"),
    [("nb", "norsk"), ("sv", "svenska"), ("en", "English")],
)
def test_language_names_itself_and_confirms_a_change_in_itself(language, name):
    assert render("lang.name", language) == name
    assert render("lang.changed", language).endswith(f"{name}.")
