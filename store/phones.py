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
