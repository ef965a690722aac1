"""Messages in and out: inbound texts (idempotent on the provider's id) and the outbox."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Connection, Select, String, any_, bindparam, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from store.database import pipelined, write_later
from store.models import InboundMessage, OutboxMessage, ProgramNumber
from store.states import OutboxStatus

# Outbox kinds and statuses (store.outreach.sending moves rows on from queued).
REPLY, SYSTEM, MARKETING = "reply", "system", "marketing"
SENT_INLINE, QUEUED = OutboxStatus.SENT_INLINE, OutboxStatus.QUEUED


# Built once: these run on every inbound text (the hot path), and building a statement
# costs more than SQLAlchemy's cached compilation of it.
_INBOUND = InboundMessage.__table__
_OUTBOX = OutboxMessage.__table__
_FIND_REPLY = select(_INBOUND.c.reply).where(
    _INBOUND.c.program_id == bindparam("program_id"),
    _INBOUND.c.provider_sid == bindparam("provider_sid"),
)
_INSERT_INBOUND = {
    dialect: module.insert(_INBOUND)
    .on_conflict_do_nothing(index_elements=["program_id", "provider_sid"])
    .returning(_INBOUND.c.id)
    for dialect, module in (("sqlite", sqlite), ("postgresql", postgresql))
}
_INSERT_OUTBOX = insert(_OUTBOX)


def _insert_texts_with_replies() -> Any:
    """PostgreSQL: texts and their replies' outbox rows in one statement, one text's (a turn's
    record_inbound) or a group's (a writer of turns sends them with its commit, `_send_texts`):
    the rows given as arrays, a column each, numbered; a text seen before (or given twice: the
    first counts) inserts neither row, and the statement returns the number and the id of each
    text it inserted."""
    return text(
        """
        WITH given AS (
            SELECT * FROM unnest(
                CAST(:program_id AS BIGINT[]), CAST(:provider_sid AS VARCHAR[]),
                CAST(:member_id AS BIGINT[]), CAST(:from_number AS VARCHAR[]),
                CAST(:to_number AS VARCHAR[]), CAST(:body AS TEXT[]),
                CAST(:intent AS VARCHAR[]), CAST(:reply AS TEXT[]),
                CAST(:received_at AS TIMESTAMP WITH TIME ZONE[]),
                CAST(:not_understood AS BOOLEAN[]), CAST(:segments AS INTEGER[])
            ) WITH ORDINALITY AS given(
                program_id, provider_sid, member_id, from_number, to_number, body, intent,
                reply, received_at, not_understood, segments, n
            )
        ), firsts AS (
            SELECT DISTINCT ON (program_id, provider_sid) * FROM given
            ORDER BY program_id, provider_sid, n
        ), inbound AS (
            INSERT INTO inbound_messages (
                program_id, provider_sid, member_id, from_number, to_number, body, intent,
                reply, received_at, not_understood
            )
            SELECT program_id, provider_sid, member_id, from_number, to_number, body, intent,
                reply, received_at, not_understood
            FROM firsts ORDER BY n
            ON CONFLICT (program_id, provider_sid) DO NOTHING
            RETURNING id, program_id, provider_sid
        ), outbox AS (
            INSERT INTO outbox_messages (
                program_id, member_id, inbound_id, kind, status, to_number, from_number, body,
                segments, created_at, sent_at
            )
            SELECT firsts.program_id, firsts.member_id, inbound.id, :kind, :status,
                firsts.from_number, firsts.to_number, firsts.reply, firsts.segments,
                firsts.received_at, firsts.received_at
            FROM inbound JOIN firsts USING (program_id, provider_sid)
            ORDER BY firsts.n
        )
        SELECT firsts.n, inbound.id FROM firsts JOIN inbound USING (program_id, provider_sid)
        """
    )


_INSERT_TEXTS_WITH_REPLIES = _insert_texts_with_replies()
_TEXT_COLUMNS = (
    *("program_id", "provider_sid", "member_id", "from_number", "to_number", "body"),
    *("intent", "reply", "received_at", "not_understood", "segments"),
)


def _send_texts(connection: Connection, rows: Sequence[dict[str, Any]]) -> list[int | None]:
    """Write texts and their replies (record_inbound's values each): each text's id, None for
    one recorded before."""
    params: dict[str, Any] = {name: [row[name] for row in rows] for name in _TEXT_COLUMNS}
    params |= {"kind": REPLY, "status": SENT_INLINE}
    (returned,) = pipelined(connection, [(_INSERT_TEXTS_WITH_REPLIES, params)])
    written = dict(returned)
    return [written.get(n) for n in range(1, len(rows) + 1)]


class SeenBefore(Exception):
    """The gateway delivered this text before: the turn must not take effect twice."""


@dataclass(frozen=True, slots=True)
class SeenText:
    """An inbound text recorded before: its reply (None when none was given)."""

    reply: str | None


# The lookup every turn makes first goes to the driver directly, compiled once per driver: on
# SQLite (one writer thread for every turn) SQLAlchemy's execution costs ten times the lookup
# itself (24 µs to 2.4 µs, 5 % of a turn in tests/bench/inbound.py); on asyncpg 50 µs to 20 µs.
_RAW_FIND_REPLY: dict[tuple[str, str], tuple[str, tuple[str, ...] | None]] = {}


def _raw_find_reply(dialect: Dialect) -> tuple[str, tuple[str, ...] | None]:
    """The lookup's SQL for this driver, and the order of its parameters (None: by name)."""
    key = (dialect.name, dialect.driver)
    if key not in _RAW_FIND_REPLY:
        compiled = _FIND_REPLY.compile(dialect=dialect)
        order = tuple(compiled.positiontup or ()) if compiled.positional else None
        _RAW_FIND_REPLY[key] = (str(compiled), order)
    return _RAW_FIND_REPLY[key]


# Several turns' retries looked up at once (store.members.members.state_for_turn): by club
# and provider id each, the pairs picked out of what matches either.
_FIND_REPLIES = select(_INBOUND.c.program_id, _INBOUND.c.provider_sid, _INBOUND.c.reply).where(
    _INBOUND.c.program_id == any_(bindparam("program_ids", type_=ARRAY(BigInteger))),
    _INBOUND.c.provider_sid == any_(bindparam("provider_sids", type_=ARRAY(String))),
)


def seen_read_many(
    program_ids: Sequence[int], provider_sids: Sequence[str]
) -> tuple[Select[Any], dict[str, Any]]:
    """The lookup of several texts recorded before (a club and a provider id each), for a
    caller that sends it with others (store.database.pipelined); `seen_many` reads its rows."""
    return _FIND_REPLIES, {"program_ids": list(program_ids), "provider_sids": list(provider_sids)}


def seen_many(rows: Sequence[Any]) -> dict[tuple[int, str], SeenText]:
    """The texts recorded before, by club and provider id, from seen_read_many's rows."""
    return {(program_id, sid): SeenText(reply) for program_id, sid, reply in rows}


def find_inbound(session: Session, program_id: int, provider_sid: str) -> SeenText | None:
    """The text with this provider id, if it was recorded before (the gateway retried): one
    lookup on the unique key, in the session's transaction."""
    connection = session.connection()
    sql, order = _raw_find_reply(connection.dialect)
    values = {"program_id": program_id, "provider_sid": provider_sid}
    raw = connection.connection.dbapi_connection
    assert raw is not None
    cursor = raw.cursor()
    try:
        cursor.execute(sql, values if order is None else tuple(values[name] for name in order))
        found = cursor.fetchone()
    finally:
        cursor.close()
    return None if found is None else SeenText(found[0])


def record_inbound(
    session: Session,
    *,
    program_id: int,
    provider_sid: str,
    member_id: int | None,
    from_number: str | None,
    to_number: str,
    body: str | None,
    intent: str | None,
    reply: str | None,
    now: dt.datetime,
    not_understood: bool = False,
    reply_segments: int | None = None,
) -> int | None:
    """Record a text and the reply given; returns its id (written through the session's
    connection: these rows are never ORM objects), or None when a writer of turns writes it
    with its group's others before the commit (`store.database.write_later`).
    `not_understood`: Klubb could not tell what the text asked (the admin counts these).
    `reply_segments`, with a reply: the reply's outbox row is written too (`record_reply`'s, to
    the text's sender from its To number), on PostgreSQL in the same statement.

    Raises SeenBefore if a text with this provider id is already recorded: the caller's
    transaction must then be rolled back and the stored reply given instead. A turn looks a
    retry up first (`find_inbound`, before any work); this is the backstop for a delivery
    racing its retry on PostgreSQL (a new number: no member row to lock, so both may look
    before either commits).
    """
    connection = session.connection()
    with_reply = reply is not None and reply_segments is not None
    both = with_reply and connection.dialect.name == "postgresql"
    values = {
        "program_id": program_id,
        "provider_sid": provider_sid,
        "member_id": member_id,
        "from_number": from_number,
        "to_number": to_number,
        "body": body,
        "intent": intent,
        "reply": reply,
        "received_at": now,
        "not_understood": not_understood,
    }
    if both:
        values["segments"] = reply_segments
        # With the group's other turns, just before its commit (a writer of turns).
        if write_later(session, _send_texts, values, SeenBefore(provider_sid)):
            return None
        (inserted,) = _send_texts(connection, [values])
    else:
        inserted = connection.execute(_INSERT_INBOUND[connection.dialect.name], values).scalar()
    if inserted is None:
        raise SeenBefore(provider_sid)
    if with_reply and not both:
        record_reply(
            session,
            program_id=program_id,
            member_id=member_id,
            inbound_id=inserted,
            to_number=from_number,
            from_number=to_number,
            body=reply,
            segments=reply_segments or 0,
            now=now,
        )
    return inserted


def record_reply(
    session: Session,
    *,
    program_id: int,
    member_id: int | None,
    inbound_id: int,
    to_number: str | None,
    from_number: str,
    body: str | None,
    segments: int,
    now: dt.datetime,
) -> None:
    """A reply given inline in the webhook's answer: in the outbox, already sent."""
    session.connection().execute(
        _INSERT_OUTBOX,
        {
            "program_id": program_id,
            "member_id": member_id,
            "inbound_id": inbound_id,
            "kind": REPLY,
            "status": SENT_INLINE,
            "to_number": to_number,
            "from_number": from_number,
            "body": body,
            "segments": segments,
            "created_at": now,
            "sent_at": now,
        },
    )


def enqueue(
    session: Session,
    *,
    program_id: int,
    member_id: int | None,
    kind: str,
    to_number: str,
    from_number: str,
    body: str,
    segments: int,
    now: dt.datetime,
    dedupe_key: str | None = None,
    send_after: dt.datetime | None = None,
) -> OutboxMessage:
    """An SMS to send outside a reply; only the sender hands it to a gateway."""
    message = OutboxMessage(
        program_id=program_id,
        member_id=member_id,
        kind=kind,
        status=QUEUED,
        to_number=to_number,
        from_number=from_number,
        body=body,
        segments=segments,
        dedupe_key=dedupe_key,
        created_at=now,
        send_after=send_after or now,
    )
    session.add(message)
    session.flush()
    return message


def first_number(session: Session, program_id: int) -> str | None:
    """The number a club's messages of its own go out from (its first): None for a club with
    no number, which reaches no one."""
    return session.scalar(
        select(ProgramNumber.number)
        .where(ProgramNumber.program_id == program_id)
        .order_by(ProgramNumber.id)
        .limit(1)
    )
