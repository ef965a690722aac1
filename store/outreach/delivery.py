"""Delivery receipts: what the carrier said of a sent SMS, applied to its outbox row and member.

A receipt is kept once per (provider id, status), so a callback posted twice takes effect once.
It is applied to the outbox row holding that provider id; a receipt that arrives before the
sender has written the id on its row waits in the log, and `apply_waiting` applies it when the
sender does.

What a receipt does:
- queued, accepted, sending, sent (and any other status): recorded only; they confirm the send.
- delivered: the row is delivered and the member's failures in a row go back to 0. It may follow
  an undelivered or failed (the carrier corrects itself); nothing moves a row off delivered.
- undelivered, failed: the row keeps the status and the error code, once (a second failure of
  the same message counts no more), and the member's failures in a row go up by one. The
  member is flagged undeliverable at FAILURES_TO_FLAG in a row, or at once for a code that
  says the number can't receive at all; not for one that is the message's or the account's
  fault (NOT_THE_NUMBER: 30007, the carrier filtered it). 21610 says the member opted out
  at the carrier: that is a STOP (opted_out_at_carrier), not a failure of the number.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, case, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

import locales
from store.members import consent, links
from store.models import DeliveryReceipt, Member, OutboxMessage
from store.states import MemberStatus

log = logging.getLogger(__name__)

DELIVERED = "delivered"
UNDELIVERED = "undelivered"
FAILED = "failed"
FAILURES = frozenset({UNDELIVERED, FAILED})
APPLIED = FAILURES | {DELIVERED}
FAILURES_TO_FLAG = 3
# The member texted STOP to the club's number and the carrier (Twilio) took it itself: every
# message to them is refused with this code until they text START. See opted_out_at_carrier.
OPTED_OUT_AT_CARRIER = "21610"
# Error codes that mean the number can't receive SMS from the club, whatever it is sent later:
# 30004 the destination blocks the message, 30005 the number is unknown to its carrier, 30006
# a landline or an unreachable carrier; 21211, 21217, 21612, 21614 (not a valid, reachable
# mobile number). The one list for a callback's code and a send's refusal alike (the Twilio
# gateway reads it: bot.gateways.twilio). 30003 (handset unreachable: switched off, no signal)
# is usually passing, so it only counts towards FAILURES_TO_FLAG.
FLAG_AT_ONCE = frozenset({"30004", "30005", "30006", "21211", "21217", "21612", "21614"})
# Failures that say nothing of the number: the carrier filtered the message's content (30007),
# Twilio's queue overflowed (30001), the account is suspended (30002), the price was over the
# maximum (30010). Counted, every member of a filtered campaign would be one step nearer the
# flag, and three such campaigns would flag the whole club for good.
NOT_THE_NUMBER = frozenset({"30001", "30002", "30007", "30010"})

# PostgreSQL only. A callback that lands while the sender is writing provider ids may find no
# row with its id (not committed yet) and commit its receipt after `apply_waiting` has looked:
# the receipt would never be applied. Callbacks hold this advisory lock shared and
# `apply_waiting` takes it exclusive before it looks, so either the receipt is committed before
# the sender looks, or the callback waits until the sender's ids are committed. SQLite's single
# writer serialises the two anyway. (An arbitrary key, Klubb's own.)
RECEIPTS_LOCK = 0x6B6C_7562_6200
_SHARED_LOCK = text("SELECT pg_advisory_xact_lock_shared(:key)").bindparams(key=RECEIPTS_LOCK)
_EXCLUSIVE_LOCK = text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=RECEIPTS_LOCK)

_RECEIPTS = DeliveryReceipt.__table__
_OUTBOX = OutboxMessage.__table__
_MEMBERS = Member.__table__
_INSERT_RECEIPT = {
    dialect: module.insert(_RECEIPTS)
    .on_conflict_do_nothing(index_elements=["provider_id", "status"])
    .returning(_RECEIPTS.c.id)
    for dialect, module in (("sqlite", sqlite), ("postgresql", postgresql))
}
_ROW_BY_PROVIDER_ID = select(_OUTBOX.c.id, _OUTBOX.c.member_id).where(
    _OUTBOX.c.provider_id == bindparam("provider_id"),
    _OUTBOX.c.program_id == bindparam("program_id"),
)
_WAITING = (
    select(
        _OUTBOX.c.id,
        _OUTBOX.c.member_id,
        _RECEIPTS.c.status,
        _RECEIPTS.c.error_code,
    )
    .join(
        _OUTBOX,
        (_OUTBOX.c.provider_id == _RECEIPTS.c.provider_id)
        & (_OUTBOX.c.program_id == _RECEIPTS.c.program_id),
    )
    .where(
        _RECEIPTS.c.provider_id.in_(bindparam("provider_ids", expanding=True)),
        _RECEIPTS.c.status.in_(sorted(APPLIED)),
    )
    .order_by(_RECEIPTS.c.id)
)
_ROW_IDS = bindparam("row_ids", expanding=True)
# Typed, so the UTC column type converts the value (an untyped bind would reach the driver raw).
_NOW = bindparam("now", type_=_MEMBERS.c.undeliverable_at.type)
_MEMBER_IDS = bindparam("member_ids", expanding=True)
# Conditional on the row's delivery so that two receipts applied at once (two callbacks on
# PostgreSQL) change it once; RETURNING says which rows did change, and only their members
# are counted.
_MARK_DELIVERED = (
    update(_OUTBOX)
    .where(
        _OUTBOX.c.id.in_(_ROW_IDS),
        (_OUTBOX.c.delivery.is_(None)) | (_OUTBOX.c.delivery != DELIVERED),
    )
    .values(delivery=DELIVERED, delivery_error=None, delivered_at=_NOW)
    .returning(_OUTBOX.c.id, _OUTBOX.c.member_id)
)
_MARK_FAILED = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id.in_(_ROW_IDS), _OUTBOX.c.delivery.is_(None))
    .values(delivery=bindparam("outcome"), delivery_error=bindparam("carrier_error"))
    .returning(_OUTBOX.c.id, _OUTBOX.c.member_id)
)
_RESET_FAILURES = (
    update(_MEMBERS)
    .where(_MEMBERS.c.id.in_(_MEMBER_IDS), _MEMBERS.c.delivery_failures != 0)
    .values(delivery_failures=0)
)
# SET expressions read the row as it was: delivery_failures + n is the count after this update.
_COUNT_FAILURES = (
    update(_MEMBERS)
    .where(_MEMBERS.c.id.in_(_MEMBER_IDS))
    .values(
        delivery_failures=_MEMBERS.c.delivery_failures + bindparam("n"),
        undeliverable_at=case(
            (_MEMBERS.c.undeliverable_at.is_not(None), _MEMBERS.c.undeliverable_at),
            (
                (_MEMBERS.c.delivery_failures + bindparam("n") >= FAILURES_TO_FLAG)
                | (bindparam("at_once") == 1),
                _NOW,
            ),
            else_=None,
        ),
    )
    .returning(_MEMBERS.c.id, _MEMBERS.c.undeliverable_at)
)
_FLAG = (
    update(_MEMBERS)
    .where(_MEMBERS.c.id == bindparam("member_id"), _MEMBERS.c.undeliverable_at.is_(None))
    .values(undeliverable_at=_NOW)
)


@dataclass(frozen=True, slots=True)
class _Receipt:
    row_id: int
    member_id: int | None
    status: str
    error_code: str | None


def record_receipt(
    session: Session,
    *,
    program_id: int,
    provider_id: str,
    status: str,
    error_code: str | None,
    now: dt.datetime,
) -> bool:
    """Keep a status callback and apply it to its outbox row if the row has this provider id
    yet. False when this (provider id, status) was received before: nothing is done twice."""
    connection = session.connection()
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(_SHARED_LOCK)
    inserted = connection.execute(
        _INSERT_RECEIPT[dialect],
        {
            "program_id": program_id,
            "provider_id": provider_id,
            "status": status,
            "error_code": error_code,
            "received_at": now,
        },
    ).scalar()
    if inserted is None:
        return False
    if status in APPLIED:
        row = connection.execute(
            _ROW_BY_PROVIDER_ID, {"provider_id": provider_id, "program_id": program_id}
        ).first()
        if row is not None:
            _apply(session, [_Receipt(row.id, row.member_id, status, error_code)], now)
    return True


def apply_waiting(session: Session, provider_ids: Sequence[str], now: dt.datetime) -> None:
    """Apply the receipts that arrived before their rows had these provider ids (the sender
    calls it in the transaction that writes the ids, before it changes any member row)."""
    if not provider_ids:
        return
    # The ids may have been written through the ORM and not flushed yet.
    session.flush()
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(_EXCLUSIVE_LOCK)
    found = connection.execute(_WAITING, {"provider_ids": list(set(provider_ids))}).all()
    if not found:
        return
    # One outcome per row: delivered wins (it may correct a failure, never the reverse);
    # otherwise the first failure received.
    chosen: dict[int, _Receipt] = {}
    for row in found:
        receipt = _Receipt(row.id, row.member_id, row.status, row.error_code)
        held = chosen.get(row.id)
        if held is None or (receipt.status == DELIVERED and held.status != DELIVERED):
            chosen[row.id] = receipt
    _apply(session, list(chosen.values()), now)


def flag(session: Session, member_id: int, now: dt.datetime, reason: str) -> bool:
    """Flag a member's number as undeliverable (the gateway said opted out or invalid when
    sending). True if it was not flagged before. There is no column for the reason: the log
    keeps it, with the member's id."""
    changed = session.connection().execute(_FLAG, {"member_id": member_id, "now": now}).rowcount
    _expire(session, Member, [member_id], ["undeliverable_at"])
    if changed:
        links.end_all(session, [member_id], now)
        log.info("member %s flagged undeliverable: %s", member_id, reason[:200])
    return bool(changed)


def opted_out_at_carrier(
    session: Session, member_id: int, now: dt.datetime, outbox_id: int
) -> bool:
    """The carrier says the member opted out (Twilio's 21610: they texted STOP to the club's
    number and it was taken before it reached Klubb). That is an objection to marketing like any
    STOP: their consent is withdrawn in the log (channel sms, the carrier's word as evidence)
    and they are stopped, so the consent Klubb shows and plans by is what the carrier enforces.
    No confirmation is sent (the carrier refuses it and has confirmed the STOP itself), and the
    number is not flagged undeliverable: a START they text later reaches Klubb as any START and
    brings them back. The refused message (`outbox_id`) is the evidence, with the code. True if
    consent was withdrawn now (a member already stopped or erased is left as they are)."""
    member = session.get(Member, member_id)
    if member is None or member.phone is None or member.status == MemberStatus.ERASED:
        return False
    if member.status == consent.WITHDRAWN:
        return False
    language = member.language or locales.language_for_phone(member.phone)
    evidence = f"carrier:{OPTED_OUT_AT_CARRIER}:outbox:{outbox_id}"
    consent.withdraw(
        session,
        member,
        wording_id="consent.carrier_stop",
        wording_language=language,
        wording_text=locales.text("consent.carrier_stop", language),
        channel="sms",
        evidence=evidence,
        now=now,
    )
    log.info("member %s opted out at the carrier: %s", member_id, evidence)
    return True


def _apply(session: Session, receipts: Sequence[_Receipt], now: dt.datetime) -> None:
    """Apply at most one receipt per row, set-based: a few statements whatever their number."""
    connection = session.connection()
    delivered = [r.row_id for r in receipts if r.status == DELIVERED]
    if delivered:
        changed = connection.execute(_MARK_DELIVERED, {"row_ids": delivered, "now": now}).all()
        _expire(session, OutboxMessage, [r.id for r in changed], ["delivery", "delivered_at"])
        members = sorted({r.member_id for r in changed if r.member_id is not None})
        if members:
            connection.execute(_RESET_FAILURES, {"member_ids": members})
            _expire(session, Member, members, ["delivery_failures"])
    failed: dict[tuple[str, str | None], list[int]] = defaultdict(list)
    for r in receipts:
        if r.status in FAILURES:
            failed[(r.status, r.error_code)].append(r.row_id)
    if not failed:
        return
    counts: Counter[int] = Counter()
    at_once: dict[int, str] = {}
    for (status, code), row_ids in failed.items():
        changed = connection.execute(
            _MARK_FAILED, {"row_ids": row_ids, "outcome": status, "carrier_error": code}
        ).all()
        _expire(session, OutboxMessage, [r.id for r in changed], ["delivery", "delivery_error"])
        for row in changed:
            if row.member_id is None:
                continue
            if code == OPTED_OUT_AT_CARRIER:
                # A STOP, not a failure of the number: it counts towards no flag.
                opted_out_at_carrier(session, row.member_id, now, row.id)
                continue
            if code in NOT_THE_NUMBER:
                continue  # kept on the row; the member's number is not at fault
            counts[row.member_id] += 1
            if code in FLAG_AT_ONCE:
                at_once[row.member_id] = code or ""
    _count_failures(session, counts, at_once, now)


def _count_failures(
    session: Session, counts: Counter[int], at_once: dict[int, str], now: dt.datetime
) -> None:
    connection = session.connection()
    groups: dict[tuple[int, bool], list[int]] = defaultdict(list)
    for member_id, n in counts.items():
        groups[(n, member_id in at_once)].append(member_id)
    for (n, immediately), member_ids in groups.items():
        flagged = connection.execute(
            _COUNT_FAILURES,
            {"member_ids": sorted(member_ids), "n": n, "at_once": int(immediately), "now": now},
        ).all()
        _expire(session, Member, member_ids, ["delivery_failures", "undeliverable_at"])
        for member in flagged:
            if member.undeliverable_at is not None and member.undeliverable_at == now:
                links.end_all(session, [member.id], now)
                reason = (
                    f"carrier error {at_once[member.id]}"
                    if member.id in at_once
                    else f"{FAILURES_TO_FLAG} deliveries in a row failed"
                )
                log.info("member %s flagged undeliverable: %s", member.id, reason)


def _expire(session: Session, model: type, ids: Iterable[int], attributes: Sequence[str]) -> None:
    """Core statements bypass the ORM: objects of these rows that the caller holds in its
    session are refreshed on their next read instead of showing the old values."""
    identity_map = session.identity_map
    for row_id in ids:
        held = identity_map.get(session.identity_key(model, row_id))
        if held is not None:
            session.expire(held, list(attributes))


__all__ = [
    "APPLIED",
    "FAILURES_TO_FLAG",
    "FLAG_AT_ONCE",
    "OPTED_OUT_AT_CARRIER",
    "apply_waiting",
    "flag",
    "opted_out_at_carrier",
    "record_receipt",
]
