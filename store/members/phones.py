"""Phone numbers: anything a member, a till or a gateway writes, to E.164 (or a short code)."""

from __future__ import annotations

import re

import phonenumbers

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_SHORT_CODE = re.compile(r"^\d{3,6}$")


def to_e164(raw: str, default_region: str | None = None) -> str | None:
    """The E.164 form of a phone number, or None if `raw` is not one.

    Gateways send E.164 already (the fast path); a till may send "912 34 567" with the club's
    country as `default_region`, or "0047 912 34 567".
    """
    text = raw.strip()
    if _E164.match(text):
        return text
    compact = re.sub(r"[\s\-().]", "", text)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if _E164.match(compact):
        return compact
    if not compact or len(compact) > 20:
        return None
    try:
        parsed = phonenumbers.parse(compact, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


# What a member's number must be to join: a number texts reach (FIXED_LINE_OR_MOBILE where a
# country's plan does not tell the two apart, as the US's does not).
_TEXTABLE = frozenset(
    {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}
)
# Why a number can't join: not a number of its country at all, or not a mobile one.
NOT_A_NUMBER, NOT_MOBILE = "phone", "not_mobile"


def mobile_number(
    raw: str, default_region: str | None = None
) -> tuple[str, None] | tuple[None, str]:
    """(E.164, None) for a valid mobile number of its country, else (None, NOT_A_NUMBER or
    NOT_MOBILE): "12345" is a possible Norwegian number but no one's, a landline gets no SMS.
    The rule for joining without an SMS (an import, a till's enrolment); parsed once, since
    parsing is most of an import's checking (tests/bench/import.py)."""
    compact = re.sub(r"[\s\-().]", "", raw.strip())
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if not compact or len(compact) > 20:
        return None, NOT_A_NUMBER
    try:
        parsed = phonenumbers.parse(compact, default_region)
    except phonenumbers.NumberParseException:
        return None, NOT_A_NUMBER
    # number_type is UNKNOWN for a number that is not valid: one look at the metadata for both.
    kind = phonenumbers.number_type(parsed)
    if kind == phonenumbers.PhoneNumberType.UNKNOWN:
        return None, NOT_A_NUMBER
    if kind not in _TEXTABLE:
        return None, NOT_MOBILE
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), None


def club_number(raw: str, default_region: str | None = None) -> str | None:
    """A number members text: a short code ("2020") or a long number in E.164, written in any
    common format: "+47 55 00 00 00", "0047…", "4755000000" (a country code without its "+"),
    or national ("55 00 00 00") when `default_region` names the country."""
    text = re.sub(r"[\s\-().]", "", raw.strip())
    if _SHORT_CODE.match(text):
        return text
    found = to_e164(text, default_region)
    if found is None and text.isdigit():
        found = to_e164("+" + text)
    return found
