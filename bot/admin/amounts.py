"""Amounts of money as the admin's forms take them: typed in the currency, kept in minor units."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation


def parse_money(raw: str, precision: int) -> int | None:
    """An amount typed in the currency ("0,50", "0.5", "12") in minor units; None if it is not
    one (letters, a negative, more decimals than the currency has)."""
    text = raw.strip().replace(" ", "").replace("\u00a0", "").replace(",", ".")
    if not text or len(text) > 15 or text.count(".") > 1:
        return None
    if not text.replace(".", "").isdigit():
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return None
    minor = amount.scaleb(precision)
    if minor != minor.to_integral_value():
        return None
    return int(minor)


def money_text(minor: int, precision: int, language: str) -> str:
    """Minor units as typed back in a form: "0,50" in nb and sv, "0.50" in en."""
    text = f"{Decimal(minor).scaleb(-precision):.{precision}f}"
    return text.replace(".", ",") if language in ("nb", "sv") else text
