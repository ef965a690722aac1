"""CSV exports of a club's data for a data warehouse: members, purchases, ledger and messages,
read a page at a time by id (keyset pagination), so any size streams in little memory.

Erased members stay erased: their member rows and their messages are left out, and their
purchases and ledger entries go out as anonymous figures (without the member's id), as erasure
promises (store.members.members.erase)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, case, literal, null, or_, select
from sqlalchemy.orm import Session

from store.members import members
from store.models import InboundMessage, LedgerEntry, Member, OutboxMessage, Purchase

PAGE = 5_000
# Semicolons: Nordic Excel (nb, sv) takes the comma as the decimal separator and splits a
# file on ';', so the merchant opens it in columns with a double click; warehouses read either.
DELIMITER = ";"
BOM = "\ufeff"  # Excel reads the file as UTF-8 only with it (æøå otherwise break)
KINDS = ("members", "purchases", "ledger", "messages")

_MEMBERS = Member.__table__
_PURCHASES = Purchase.__table__
_LEDGER = LedgerEntry.__table__
_INBOUND = InboundMessage.__table__
_OUTBOX = OutboxMessage.__table__
# A text cell that a spreadsheet would run as a formula; a phone number in E.164 is not one.
_FORMULA = re.compile(r"^[=+\-@\t\r]")
_E164 = re.compile(r"^\+\d{6,15}$")


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[list[Any]]
    cursor: tuple[int, int] | None  # where the next page starts; None: that was the last


def header(kind: str) -> list[str]:
    return list(_HEADERS[kind])


def page(session: Session, program_id: int, kind: str, cursor: tuple[int, int]) -> Page:
    """The rows after `cursor` ((0, 0) for the first page) in id order, at most PAGE of them.

    The cursor is (part, last id): messages are two tables, texts in then texts out."""
    part, after = cursor
    queries = _QUERIES[kind]
    rows = session.execute(queries[part](program_id, after).limit(PAGE)).all()
    if len(rows) == PAGE:
        return Page([list(r) for r in rows], (part, rows[-1][_ID_AT[kind]]))
    following = (part + 1, 0) if part + 1 < len(queries) else None
    return Page([list(r) for r in rows], following)


def encode(rows: Sequence[Sequence[Any]]) -> bytes:
    """Rows as CSV text in UTF-8: instants in UTC ISO 8601, empty for none, formulas defused."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=DELIMITER, lineterminator="\r\n")
    writer.writerows([[cell(value) for value in row] for row in rows])
    return out.getvalue().encode()


def cell(value: Any) -> Any:
    """One value as the file writes it."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:  # SQLite through Core gives naive UTC
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, str) and _FORMULA.match(value) and not _E164.match(value):
        return "'" + value
    return value


def _members(program_id: int, after: int) -> Select[Any]:
    m = _MEMBERS.c
    return (
        select(
            m.id,
            m.phone,
            m.first_name,
            m.language,
            m.birthday,
            m.status,
            m.joined_at,
            m.created_at,
            m.store,
            m.tier_id,
            m.referral_code,
            m.referred_by_id,
        )
        .where(m.program_id == program_id, m.status != members.ERASED, m.id > after)
        .order_by(m.id)
    )


def _anonymous(member_id: Any) -> Any:
    """The member's id, or NULL when the member was erased."""
    return case((_MEMBERS.c.status == members.ERASED, None), else_=member_id)


def _purchases(program_id: int, after: int) -> Select[Any]:
    p = _PURCHASES.c
    return (
        select(
            p.id,
            _anonymous(p.member_id),
            p.transaction_id,
            p.store,
            p.currency,
            p.total_minor,
            p.points,
            p.occurred_at,
            p.created_at,
        )
        .join(_MEMBERS, _MEMBERS.c.id == p.member_id)
        .where(p.program_id == program_id, p.id > after)
        .order_by(p.id)
    )


def _ledger(program_id: int, after: int) -> Select[Any]:
    e = _LEDGER.c
    return (
        select(
            e.id,
            _anonymous(e.member_id),
            e.kind,
            e.points,
            e.purchase_id,
            e.refund_id,
            e.coupon_id,
            e.reason,
            e.actor,
            e.expires_at,
            e.created_at,
        )
        .join(_MEMBERS, _MEMBERS.c.id == e.member_id)
        .where(e.program_id == program_id, e.id > after)
        .order_by(e.id)
    )


def _not_erased(member_id: Any) -> Any:
    return or_(
        member_id.is_(None), _MEMBERS.c.status.is_(None), _MEMBERS.c.status != members.ERASED
    )


def _inbound(program_id: int, after: int) -> Select[Any]:
    i = _INBOUND.c
    return (
        select(
            i.id,
            literal("in"),
            i.member_id,
            i.from_number,
            i.to_number,
            i.body,
            i.intent,
            null(),
            null(),
            i.received_at,
            null(),
            null(),
            null(),
        )
        .outerjoin(_MEMBERS, _MEMBERS.c.id == i.member_id)
        .where(and_(i.program_id == program_id, i.id > after, _not_erased(i.member_id)))
        .order_by(i.id)
    )


def _outbound(program_id: int, after: int) -> Select[Any]:
    o = _OUTBOX.c
    return (
        select(
            o.id,
            literal("out"),
            o.member_id,
            o.to_number,
            o.from_number,
            o.body,
            o.kind,
            o.status,
            o.campaign_id,
            o.created_at,
            o.sent_at,
            o.delivery,
            o.delivery_error,
        )
        .outerjoin(_MEMBERS, _MEMBERS.c.id == o.member_id)
        .where(and_(o.program_id == program_id, o.id > after, _not_erased(o.member_id)))
        .order_by(o.id)
    )


_QUERIES: dict[str, tuple[Callable[[int, int], Select[Any]], ...]] = {
    "members": (_members,),
    "purchases": (_purchases,),
    "ledger": (_ledger,),
    "messages": (_inbound, _outbound),
}
_ID_AT = dict.fromkeys(KINDS, 0)
_HEADERS: dict[str, tuple[str, ...]] = {
    "members": (
        "member_id", "phone", "first_name", "language", "birthday", "status", "joined_at",
        "created_at", "store", "tier_id", "referral_code", "referred_by_id",
    ),
    "purchases": (
        "purchase_id", "member_id", "transaction_id", "store", "currency", "total_minor",
        "points", "occurred_at", "created_at",
    ),
    "ledger": (
        "entry_id", "member_id", "kind", "points", "purchase_id", "refund_id", "coupon_id",
        "reason", "actor", "expires_at", "created_at",
    ),
    "messages": (
        "message_id", "direction", "member_id", "member_number", "club_number", "body",
        "kind", "status", "campaign_id", "at", "sent_at", "delivery", "delivery_error",
    ),
}  # fmt: skip
