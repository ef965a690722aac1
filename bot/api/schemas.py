"""The API's JSON Schemas: what validates each request body and what the OpenAPI document shows.

One dict per schema, named as in the document's `components.schemas`; a `$ref` points there.
Bounds are those of the columns the values end in (a string longer than its column, or an
integer beyond it, is a 422 here rather than a database error later).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match

import locales
from store.clubs import apikeys
from store.loyalty import coupons, offers
from store.loyalty.ledger import MAX_ADJUSTMENT  # ledger points are a 32-bit INTEGER
from store.members import members
from store.states import CouponState

MAX_ID = 2**63 - 1  # BIGINT
MAX_QTY = 1_000_000
MAX_AMOUNT_MINOR = 10**10  # per line and per purchase: 100 million kroner in øre
MAX_LINES = 500
MAX_CODES = 20  # coupon codes in one basket
MAX_PHONE = 40  # as typed at a till: "+47 912 34 567", "0047 91 23 45 67"
OLDEST_MOMENT = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
CLOCK_SKEW = dt.timedelta(minutes=5)  # how far ahead a till's clock may run
PAST_MOMENT = "must be a time since 2000 and not in the future"

# No control characters (PostgreSQL refuses NUL in text; a till never means one). Python's `$`
# also matches before a final newline, so `control_character` checks again, exactly.
NO_CONTROL = "^[^\\u0000-\\u001f\\u007f]*$"
_CONTROL = re.compile("[\u0000-\u001f\u007f]")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def text(max_length: int, description: str, *, min_length: int = 1) -> dict[str, Any]:
    return {
        "type": "string",
        "minLength": min_length,
        "maxLength": max_length,
        "pattern": NO_CONTROL,
        "description": description,
    }


def integer(minimum: int, maximum: int, description: str) -> dict[str, Any]:
    return {"type": "integer", "minimum": minimum, "maximum": maximum, "description": description}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"oneOf": [schema, {"type": "null"}]}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


DATE_TIME = {"type": "string", "format": "date-time"}
MEMBER_ID = integer(1, MAX_ID, "the member's id")
PHONE = text(MAX_PHONE, "any common format; read in the club's country unless it has +/00")
TRANSACTION_ID = text(64, "the till's own id of the sale: a retry with it is recorded once")
COUPON_CODE = {
    "type": "string",
    "minLength": 1,
    "maxLength": 32,
    "pattern": "^[A-Za-z0-9 ._-]+$",
    "description": "as printed (ABCD-2345) or typed (abcd2345)",
}

COUPON_CODES = {
    "type": "array",
    "maxItems": MAX_CODES,
    "items": COUPON_CODE,
    "description": "the coupons the customer shows, in the order to apply them",
}

# --- Request bodies ---

ENROLMENT_IN: dict[str, Any] = {
    "type": "object",
    "description": "Enrol a customer at checkout, with the consent the till captured.",
    "required": ["phone", "consent"],
    "additionalProperties": False,
    "properties": {
        "phone": PHONE,
        "consent": {
            "type": "object",
            "required": ["evidence"],
            "additionalProperties": False,
            "properties": {
                "evidence": text(100, "what the till captured: receipt 1234, box ticked"),
                "given_at": {**DATE_TIME, "description": "when the customer agreed"},
            },
        },
        "language": {"enum": list(locales.LANGUAGES), "description": "else from the number"},
        "first_name": text(40, "the customer's first name"),
        "referral_code": text(12, "a friend's referral code"),
    },
}

PURCHASE_LINE_IN: dict[str, Any] = {
    "type": "object",
    "required": ["qty", "amount_minor"],
    "additionalProperties": False,
    "properties": {
        "sku": text(64, "the article number"),
        "category": text(60, "for bonus points and punch cards"),
        "brand": text(60, "for bonus points"),
        "qty": integer(1, MAX_QTY, "units sold"),
        "amount_minor": integer(0, MAX_AMOUNT_MINOR, "what the line cost, in minor units (øre)"),
        "discounted": {"type": "boolean", "default": False, "description": "earns no points"},
    },
}

PURCHASE_IN: dict[str, Any] = {
    "type": "object",
    "description": "A sale to a member, found by phone or id (one of them).",
    "required": ["transaction_id", "lines"],
    "additionalProperties": False,
    "properties": {
        "transaction_id": TRANSACTION_ID,
        "phone": PHONE,
        "member_id": MEMBER_ID,
        "occurred_at": {**DATE_TIME, "description": "when the sale was made; default now"},
        "store": text(apikeys.MAX_STORE, "default: the key's store"),
        "lines": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_LINES,
            "items": ref("PurchaseLineIn"),
        },
        "coupon_codes": {
            **COUPON_CODES,
            "description": "sent (even empty), Klubb prices the sale as /baskets/evaluate does: "
            "the lines are as rung up, the tier discount and the coupons that apply are taken "
            "off, the lines are recorded (and earn points) at what was paid, and those coupons "
            "are redeemed with the sale, once. Left out, the lines are what was paid.",
        },
    },
    "oneOf": [{"required": ["phone"]}, {"required": ["member_id"]}],
}

BASKET_IN: dict[str, Any] = {
    "type": "object",
    "description": "A basket to price: its lines as rung up, the buyer (phone or id, or neither "
    "for no tier discount) and the coupon codes shown. Nothing is recorded or redeemed.",
    "required": ["lines"],
    "additionalProperties": False,
    "properties": {
        "phone": PHONE,
        "member_id": MEMBER_ID,
        "lines": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_LINES,
            "items": ref("PurchaseLineIn"),
        },
        "coupon_codes": COUPON_CODES,
    },
    "not": {"required": ["phone", "member_id"]},
}

REFUND_LINE_IN: dict[str, Any] = {
    "type": "object",
    "description": "A line of the purchase, wholly (line only) or in part (qty or amount).",
    "required": ["line"],
    "additionalProperties": False,
    "properties": {
        "line": integer(1, MAX_LINES, "the line's number in the purchase, from 1"),
        "qty": integer(1, MAX_QTY, "units returned"),
        "amount_minor": integer(1, MAX_AMOUNT_MINOR, "amount returned, in minor units"),
    },
}

REFUND_IN: dict[str, Any] = {
    "type": "object",
    "description": "A refund of the whole purchase (no lines) or of some lines.",
    "required": ["refund_id"],
    "additionalProperties": False,
    "properties": {
        "refund_id": text(64, "the till's own id of the refund: a retry is recorded once"),
        "lines": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_LINES,
            "items": ref("RefundLineIn"),
        },
    },
}

REDEMPTION_IN: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"transaction_id": TRANSACTION_ID},
}

ADJUSTMENT_IN: dict[str, Any] = {
    "type": "object",
    "description": "Points added (positive) or taken (negative) by staff, with a reason.",
    "required": ["points", "reason"],
    "additionalProperties": False,
    "properties": {
        "points": {
            **integer(-MAX_ADJUSTMENT, MAX_ADJUSTMENT, "non-zero"),
            "not": {"const": 0},
        },
        "reason": text(200, "why: shown in the member's history"),
    },
}

# --- Responses ---

ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "what was wrong, for the developer"},
        "field": {"type": "string", "description": "the field at fault: lines[0].amount_minor"},
        "reason": {"type": "string", "description": "a conflict's code: coupon_redeemed"},
        "scope": {"type": "string", "description": "the scope the key lacks"},
        "balance": {"type": "integer", "description": "the member's points, when too few"},
    },
}

TIER: dict[str, Any] = {
    "type": "object",
    "required": ["name", "discount_percent", "next", "points_to_next"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "description": "in the member's language"},
        "discount_percent": {"type": "integer"},
        "next": nullable({"type": "string"}),
        "points_to_next": {"type": "integer", "minimum": 0},
    },
}

PUNCH_CARD: dict[str, Any] = {
    "type": "object",
    "description": "Every `every`th purchase with a line in `category` gives the coupon.",
    "required": ["id", "category", "every", "punches", "benefit"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "category": {"type": "string", "description": "as matched: in lower case"},
        "every": {"type": "integer", "minimum": 1},
        "punches": {
            "type": "integer",
            "minimum": 0,
            "description": "the member's purchases on the card now (0 again once it fills)",
        },
        "benefit": {"type": "string", "description": "its coupon, in the member's language"},
    },
}

MEMBER: dict[str, Any] = {
    "type": "object",
    "required": [
        "id",
        "phone",
        "status",
        "first_name",
        "language",
        "joined_at",
        "balance",
        "tier",
        "referral_code",
        "punch_cards",
    ],
    "additionalProperties": False,
    "properties": {
        "id": MEMBER_ID,
        "phone": {"type": "string", "description": "E.164"},
        "status": {"enum": sorted(str(s) for s in members.STATUSES - {members.ERASED})},
        "first_name": nullable({"type": "string"}),
        "language": {"enum": list(locales.LANGUAGES)},
        "joined_at": nullable(DATE_TIME),
        "balance": {"type": "integer", "description": "points that can be spent now"},
        "tier": nullable(ref("Tier")),
        "referral_code": nullable({"type": "string"}),
        "punch_cards": {
            "type": "array",
            "items": ref("PunchCard"),
            "description": "the club's active punch cards and the member's punches on each",
        },
    },
}

COUPON: dict[str, Any] = {
    "type": "object",
    "required": [
        "code",
        "state",
        "kind",
        "benefit",
        "discount_percent",
        "discount_minor",
        "member_id",
        "issued_at",
        "valid_from",
        "valid_until",
        "redeemed_at",
        "redeemed_by",
        "redeemed_ref",
    ],
    "additionalProperties": False,
    "properties": {
        "code": {"type": "string", "description": "as shown to the member: ABCD-2345"},
        "state": {"enum": [str(s) for s in CouponState]},
        "kind": {"enum": list(coupons.KINDS)},
        "benefit": {"type": "string", "description": "what it gives, in the member's language"},
        "discount_percent": nullable({"type": "integer"}),
        "discount_minor": nullable({"type": "integer"}),
        "member_id": MEMBER_ID,
        "issued_at": DATE_TIME,
        "valid_from": DATE_TIME,
        "valid_until": DATE_TIME,
        "redeemed_at": nullable(DATE_TIME),
        "redeemed_by": nullable({"type": "string", "description": "the API key's name"}),
        "redeemed_ref": nullable({"type": "string", "description": "the transaction"}),
    },
}

OFFER: dict[str, Any] = {
    "type": "object",
    "description": "What a coupon takes off, as the till computes it (store.loyalty.offers).",
    "required": ["type", "scope", "items", "min_basket_minor"],
    "additionalProperties": False,
    "properties": {
        "type": {"enum": list(offers.TYPES)},
        "value": {"type": "integer", "description": "percent, or amount in minor units"},
        "buy": {"type": "integer", "description": "buy_n_pay_m: units bought"},
        "pay": {"type": "integer", "description": "buy_n_pay_m: units paid for"},
        "scope": {"enum": list(offers.SCOPES)},
        "items": {
            "type": "array",
            "items": {"type": "string"},
            "description": "the categories, brands or SKUs (none for the basket)",
        },
        "min_basket_minor": {"type": "integer", "description": "the basket before discounts"},
    },
}

BASKET_LINE: dict[str, Any] = {
    "type": "object",
    "required": [
        "line",
        "amount_minor",
        "tier_minor",
        "coupon_minor",
        "discount_minor",
        "to_pay_minor",
        "codes",
    ],
    "additionalProperties": False,
    "properties": {
        "line": {"type": "integer", "minimum": 1, "description": "numbered from 1 as sent"},
        "amount_minor": {"type": "integer", "description": "as sent"},
        "tier_minor": {"type": "integer", "description": "the tier discount"},
        "coupon_minor": {"type": "integer", "description": "the coupons' discount"},
        "discount_minor": {"type": "integer", "description": "tier and coupons"},
        "to_pay_minor": {"type": "integer"},
        "codes": {
            "type": "array",
            "items": {"type": "string"},
            "description": "the coupons that took something off the line",
        },
    },
}

BASKET: dict[str, Any] = {
    "type": "object",
    "description": "A basket priced: the tier discount first (half up per line), then the "
    "coupons on categories, brands or SKUs in the order given (one per line), then at most one "
    "basket-wide coupon (the one giving most). Lines marked discounted get nothing.",
    "required": [
        "member_id",
        "currency",
        "tier",
        "total_minor",
        "discount_minor",
        "to_pay_minor",
        "lines",
        "applied",
        "refused",
    ],
    "additionalProperties": False,
    "properties": {
        "member_id": nullable(MEMBER_ID),
        "currency": {"type": "string", "description": "ISO 4217"},
        "tier": nullable(
            {
                "type": "object",
                "required": ["name", "discount_percent", "discount_minor"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "description": "in the member's language"},
                    "discount_percent": {"type": "integer"},
                    "discount_minor": {"type": "integer", "description": "on the whole basket"},
                },
            }
        ),
        "total_minor": {"type": "integer", "description": "the lines as sent"},
        "discount_minor": {"type": "integer"},
        "to_pay_minor": {"type": "integer"},
        "lines": {"type": "array", "items": ref("BasketLine")},
        "applied": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["code", "template", "benefit", "offer", "discount_minor", "lines"],
                "additionalProperties": False,
                "properties": {
                    "code": {"type": "string", "description": "as shown: ABCD-2345"},
                    "template": {"type": "string", "description": "the coupon's template key"},
                    "benefit": {"type": "string", "description": "in the member's language"},
                    "offer": ref("Offer"),
                    "discount_minor": {"type": "integer"},
                    "lines": {"type": "array", "items": {"type": "integer"}},
                },
            },
        },
        "refused": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["code", "reason", "error"],
                "additionalProperties": False,
                "properties": {
                    "code": {"type": "string", "description": "as sent"},
                    "reason": {"enum": list(offers.REASONS)},
                    "error": {"type": "string", "description": "the reason in words"},
                },
            },
        },
    },
}

GIFT_IN: dict[str, Any] = {
    "type": "object",
    "required": ["template"],
    "additionalProperties": False,
    "properties": {
        "template": {
            "type": "string",
            "minLength": 1,
            "maxLength": 40,
            "description": "the key of one of the club's coupon templates in use",
        },
    },
}

COUPON_LIST: dict[str, Any] = {
    "type": "object",
    "required": ["coupons"],
    "additionalProperties": False,
    "properties": {"coupons": {"type": "array", "items": ref("Coupon")}},
}

PURCHASE: dict[str, Any] = {
    "type": "object",
    "required": [
        "purchase_id",
        "transaction_id",
        "member_id",
        "store",
        "occurred_at",
        "currency",
        "total_minor",
        "points",
        "balance",
        "coupons",
    ],
    "additionalProperties": False,
    "properties": {
        "purchase_id": {"type": "integer"},
        "transaction_id": {"type": "string"},
        "member_id": MEMBER_ID,
        "store": nullable({"type": "string"}),
        "occurred_at": DATE_TIME,
        "currency": {"type": "string", "description": "ISO 4217"},
        "total_minor": {"type": "integer"},
        "points": {"type": "integer", "description": "earned by this purchase"},
        "balance": {"type": "integer", "description": "the member's points now"},
        "coupons": {
            "type": "array",
            "items": ref("Coupon"),
            "description": "issued by this purchase (a punch card's free item, a referral)",
        },
        "basket": {
            **ref("Basket"),
            "description": "with coupon_codes: the sale as Klubb priced it",
        },
    },
}

REFUND: dict[str, Any] = {
    "type": "object",
    "required": [
        "refund_id",
        "transaction_id",
        "amount_minor",
        "points",
        "points_taken",
        "balance",
    ],
    "additionalProperties": False,
    "properties": {
        "refund_id": {"type": "string"},
        "transaction_id": {"type": "string"},
        "amount_minor": {"type": "integer"},
        "points": {"type": "integer", "description": "what the refunded lines had earned"},
        "points_taken": {
            "type": "integer",
            "description": "less than points when the member had spent them",
        },
        "balance": {"type": "integer"},
    },
}

ADJUSTMENT: dict[str, Any] = {
    "type": "object",
    "required": ["member_id", "points", "balance"],
    "additionalProperties": False,
    "properties": {
        "member_id": MEMBER_ID,
        "points": {"type": "integer"},
        "balance": {"type": "integer"},
    },
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "EnrolmentIn": ENROLMENT_IN,
    "PurchaseIn": PURCHASE_IN,
    "PurchaseLineIn": PURCHASE_LINE_IN,
    "RefundIn": REFUND_IN,
    "RefundLineIn": REFUND_LINE_IN,
    "RedemptionIn": REDEMPTION_IN,
    "AdjustmentIn": ADJUSTMENT_IN,
    "GiftIn": GIFT_IN,
    "BasketIn": BASKET_IN,
    "Offer": OFFER,
    "BasketLine": BASKET_LINE,
    "Basket": BASKET,
    "Error": ERROR,
    "Tier": TIER,
    "PunchCard": PUNCH_CARD,
    "Member": MEMBER,
    "Coupon": COUPON,
    "CouponList": COUPON_LIST,
    "Purchase": PURCHASE,
    "Refund": REFUND,
    "Adjustment": ADJUSTMENT,
}


# --- Validation ---

FORMATS = FormatChecker()


@FORMATS.checks("date-time")
def is_date_time(value: object) -> bool:
    """RFC 3339, as OpenAPI means it (jsonschema checks it only with an extra package)."""
    if not isinstance(value, str):
        return True
    return parse_date_time(value) is not None


def parse_date_time(value: str) -> dt.datetime | None:
    if not _DATE_TIME.match(value):
        return None
    try:
        return dt.datetime.fromisoformat(value.upper().replace(" ", "T"))
    except ValueError:
        return None


def past_moment(value: str, now: dt.datetime) -> dt.datetime | None:
    """When a till says something happened (a sale, a customer's consent), in UTC; None unless
    it is a date-time since 2000 and not later than `now` by more than a till's clock may run
    fast. Older is a wrong clock, not a till catching up (and the tier and multiplier rules are
    not kept that far back); year 1 or 9999 would overflow in UTC (a 422 naming no field)."""
    when = parse_date_time(value)
    if when is None or not OLDEST_MOMENT <= when <= now + CLOCK_SKEW:
        return None
    return when.astimezone(dt.UTC)


@dataclass(frozen=True, slots=True)
class Validator:
    """One schema compiled twice. jsonschema-rs says whether a value is valid in about 2 µs,
    where jsonschema takes about 300 µs (the largest cost of a purchase on the event loop, see
    tests/bench/purchases.py); jsonschema then explains an invalid value: its errors name the
    field."""

    fast: Any
    slow: Draft202012Validator


def _compiled(schema: dict[str, Any]) -> Validator:
    return Validator(
        fast=jsonschema_rs.Draft202012Validator(
            schema, formats={"date-time": is_date_time}, validate_formats=True
        ),
        slow=Draft202012Validator(schema, format_checker=FORMATS),
    )


def validator(name: str) -> Validator:
    """A validator for one schema, its `$ref`s resolved within SCHEMAS (as in the document)."""
    return _compiled({"$ref": ref(name)["$ref"], "components": {"schemas": SCHEMAS}})


def validator_for(schema: dict[str, Any]) -> Validator:
    """A validator for a parameter's schema (which has no `$ref`s)."""
    return _compiled(schema)


class Invalid(ValueError):
    """A value that breaks its schema: `field` names where, `reason` says how."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


def check(validator: Validator, value: Any, name: str = "", raw: bytes | None = None) -> None:
    """Raise Invalid naming the field of the most relevant error, if there is one. `raw`: the
    JSON `value` was read from, when there is one."""
    # JSON refuses raw control characters in a string but DEL, and UTF-8 can't carry a lone
    # surrogate: without a backslash (an escape) or a DEL in the text, no string holds either.
    if raw is None or b"\\" in raw or b"\x7f" in raw:
        control = control_character(value)
        if control is not None:
            raise Invalid(path(name, control), "must not contain control characters")
    if validator.fast.is_valid(value):
        return
    errors = list(validator.slow.iter_errors(value))
    # Phone or member id is asked for last, and said plainly (best_match would descend into
    # oneOf's branches and say only "phone is required").
    either = [e for e in errors if e.validator_value == PURCHASE_IN["oneOf"]]
    others = [e for e in errors if e.validator_value != PURCHASE_IN["oneOf"]]
    if others:
        raise Invalid(*_explain(best_match(others), name))
    if either:
        both = isinstance(value, dict) and "phone" in value and "member_id" in value
        raise Invalid("member_id" if both else "phone", "give either phone or member_id")


def control_character(value: Any, at: tuple[str | int, ...] = ()) -> tuple[str | int, ...] | None:
    """Where a string holds a control character or a lone surrogate (which no database keeps)."""
    if isinstance(value, str):
        if _CONTROL.search(value) or not _encodable(value):
            return at
        return None
    items: Iterator[tuple[str | int, Any]]
    if isinstance(value, dict):
        items = iter(value.items())
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        if isinstance(key, str) and (_CONTROL.search(key) or not _encodable(key)):
            return at
        found = control_character(item, (*at, key))
        if found is not None:
            return found
    return None


def _encodable(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def path(name: str, at: tuple[str | int, ...] | Any) -> str:
    """("lines", 0, "amount_minor") as lines[0].amount_minor."""
    out = name
    for part in at:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _explain(error: ValidationError, name: str) -> tuple[str, str]:
    at = path(name, error.absolute_path)
    instance = error.instance
    if error.validator == "required" and isinstance(instance, dict):
        missing = next(k for k in error.validator_value if k not in instance)
        return path(at, [missing]), "is required"
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        known = error.schema.get("properties", {})
        extra = next((k for k in instance if k not in known), "")
        return path(at, [extra]), "is not a known field"
    if error.validator == "pattern" and error.validator_value == NO_CONTROL:
        return at, "must not contain control characters"
    if error.validator == "not" and error.validator_value == {"const": 0}:
        return at, "must not be 0"
    if error.validator == "not" and error.validator_value == BASKET_IN["not"]:
        return path(at, ["member_id"]), "give either phone or member_id, not both"
    return at, _short(error.message)


def _short(message: str, limit: int = 200) -> str:
    # A message quotes the value; a huge value must not make a huge answer.
    return message if len(message) <= limit else message[: limit - 3] + "..."
