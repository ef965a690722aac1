"""The club's inbox: texts Klubb could not answer, grouped per number, and staff replies to them.

A conversation is every text one number sent; it reaches the inbox with its first text not
understood, whose id is the conversation's id. Its state is worked out from three times, never
stored: the last text not understood, the last staff reply and the last "done" (ConversationState).
A staff reply is conversational, not marketing: no consent needed, outside the monthly cap, but
only as an answer to the number's own text of the last 7 days (`reply` holds the whole rule).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

import locales
from store import messages
from store.cache import TtlCache
from store.errors import Conflict, NotFound
from store.loyalty import coupons, ledger, tiers
from store.members import consent, members
from store.models import (
    AdminAccount,
    ConsentEvent,
    InboundMessage,
    InboxConversation,
    Member,
    OutboxMessage,
    Program,
    StaffReply,
)
from store.states import ConversationState, MemberStatus

# The outbox kind of a staff reply: not marketing, so neither consent nor the cap applies.
STAFF = "staff"
WINDOW = dt.timedelta(days=7)  # a reply answers a text of the last 7 days, never older
MAX_SEGMENTS = 10  # a staff reply longer than this is a letter, not an SMS
THREAD_LIMIT = 200  # the newest texts of a conversation shown
SHOWS = ("open", "done", "all")
MAX_QUERY = 60
# The unanswered count kept (UnansweredCounts): at most this old for what its marks don't see,
# and for this many clubs (one deployment hosts a few).
COUNT_MAX_AGE = 60.0
COUNT_CLUBS = 1000

UNANSWERED, OPEN, DONE = (
    ConversationState.UNANSWERED,
    ConversationState.OPEN,
    ConversationState.DONE,
)
# Why a reply is refused; each is a message id's last part (admin.inbox.refused.<reason>).
EMPTY, TOO_LONG, TOO_OLD, STOPPED, ERASED = "empty", "too_long", "too_old", "stopped", "erased"

_IN = InboundMessage.__table__
_OUT = OutboxMessage.__table__
_STATE = InboxConversation.__table__
_MEMBERS = Member.__table__


class ReplyRefused(Conflict):
    """A staff reply the rule does not allow: `reason` is one of EMPTY, TOO_LONG, TOO_OLD,
    STOPPED, ERASED (the admin and the CLI render it from the catalogs)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, f"reply refused: {reason}")


@dataclass(frozen=True, slots=True)
class Conversation:
    """One line of the inbox."""

    id: int  # the number's first text not understood
    number: str
    member_id: int | None
    name: str | None
    member_status: str | None
    last_at: dt.datetime  # its last text not understood
    last_body: str | None
    state: ConversationState


@dataclass(frozen=True, slots=True)
class Entry:
    """One SMS of a thread, in or out. `kind`: "in" for the number's own text, else the outbox
    kind (reply, system, marketing, staff); `sent_by` names a staff reply's account (None: the
    account was removed)."""

    id: int
    at: dt.datetime
    kind: str
    body: str | None
    not_understood: bool = False
    status: str | None = None
    delivery: str | None = None
    delivery_error: str | None = None
    sent_by: str | None = None
    staff: bool = False


@dataclass(frozen=True, slots=True)
class Context:
    """What staff see of the member beside the thread (all None for a number not a member)."""

    member_id: int | None
    name: str | None
    status: str | None  # MemberStatus: active means marketing consent
    language: str
    tier: str | None
    points: int | None
    last_purchase_at: dt.datetime | None
    coupons: tuple[coupons.Valid, ...]


@dataclass(frozen=True, slots=True)
class Opened:
    """A conversation read for its page: its line, thread and context."""

    conversation: Conversation
    thread: list[Entry]
    context: Context
    may_reply: str | None  # None when a reply is allowed now, else why not (a refusal reason)


def conversations(
    session: Session,
    program: Program,
    *,
    show: str = "open",
    query: str = "",
    limit: int = 50,
    offset: int = 0,
) -> list[Conversation]:
    """The club's conversations, the newest text first: `show` open (not marked done since its
    last text; unanswered ones included), done, or all; `query` finds a part of the number or
    the member's first name."""
    text = query.strip()[:MAX_QUERY]
    # A search by name joins the members before the page is cut; otherwise only the page's
    # numbers are looked up, after it (50 lookups, not one per conversation of the club).
    groups = _listing(program.id, people=bool(text)).subquery()
    state = _state_of(groups.c.last_at, groups.c.answered_at, groups.c.done_at)
    wanted = select(groups, state.label("state"))
    if show == "open":
        wanted = wanted.where(state != DONE)
    elif show == "done":
        wanted = wanted.where(state == DONE)
    if text:
        digits = "".join(c for c in text if c.isdigit())
        found = [func.lower(groups.c.first_name).contains(text.lower(), autoescape=True)]
        if digits:
            found.append(groups.c.number.contains(digits, autoescape=True))
        wanted = wanted.where(or_(*found))
    wanted = wanted.order_by(groups.c.last_at.desc(), groups.c.id.desc()).limit(limit)
    rows = session.execute(wanted.offset(offset)).all()
    bodies = _bodies(session, [row.last_id for row in rows])
    people = (
        {row.number: (row.member_id, row.first_name, row.member_status) for row in rows}
        if text
        else _people(session, program.id, [row.number for row in rows])
    )
    return [_line(row, bodies.get(row.last_id), people.get(row.number)) for row in rows]


def unanswered(session: Session, program: Program) -> int:
    """How many conversations wait for a staff answer (the count in the admin's navigation)."""
    groups = _listing(program.id, people=False).subquery()
    state = _state_of(groups.c.last_at, groups.c.answered_at, groups.c.done_at)
    return int(session.scalar(select(func.count()).select_from(groups).where(state == UNANSWERED)))


class UnansweredCounts:
    """The unanswered count per club, kept between the admin's page views (its navigation shows
    it on every one) and counted again only when it may have changed.

    Before a kept count is used, a few index lookups read what moves it: the club's newest
    text not understood (a new text, from this process or any other), its conversations'
    staff times (a reply or a "done", from the admin or `klubb inbox reply`) and its erased
    members (an erasure takes a conversation away). Anything else, such as erasing a number
    that was never a member, shows within `max_age` seconds. Several reader threads share one:
    a lock guards the cache."""

    def __init__(
        self, max_age: float = COUNT_MAX_AGE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._kept: TtlCache[int, tuple[tuple[object, ...], int]] = TtlCache(
            max_age, clock, size=COUNT_CLUBS
        )
        self._lock = threading.Lock()

    def count(self, session: Session, program: Program) -> int:
        """unanswered(session, program), read from the cache while nothing moved it."""
        mark = _count_mark(session, program.id)
        with self._lock:
            kept = self._kept.get(program.id)
        if kept is not None and kept[0] == mark:
            return kept[1]
        count = unanswered(session, program)
        with self._lock:
            self._kept.put(program.id, (mark, count))
        return count


def open_conversation(
    session: Session, program: Program, conversation_id: int, now: dt.datetime
) -> Opened:
    """A conversation's line, its thread (oldest first), the member's context and whether a
    reply may go now. NotFound for an id that is no conversation of this club."""
    line = _find(session, program, conversation_id)
    return Opened(
        conversation=line,
        thread=thread(session, program, line.number),
        context=context(session, program, line.number, now),
        may_reply=_refusal(session, program, line.number, now),
    )


def thread(session: Session, program: Program, number: str) -> list[Entry]:
    """Every SMS from and to the number, oldest first (the newest THREAD_LIMIT of them): its
    texts, Klubb's replies, campaigns and staff replies, with delivery status."""
    inbound = session.execute(
        select(_IN.c.id, _IN.c.received_at, _IN.c.body, _IN.c.not_understood)
        .where(_IN.c.program_id == program.id, _IN.c.from_number == number)
        .order_by(_IN.c.id.desc())
        .limit(THREAD_LIMIT)
    ).all()
    outbound = session.execute(
        select(
            _OUT.c.id,
            func.coalesce(_OUT.c.sent_at, _OUT.c.created_at).label("at"),
            _OUT.c.kind,
            _OUT.c.body,
            _OUT.c.status,
            _OUT.c.delivery,
            _OUT.c.delivery_error,
            StaffReply.account_id,
            AdminAccount.email,
        )
        .select_from(
            _OUT.outerjoin(StaffReply, StaffReply.outbox_id == _OUT.c.id).outerjoin(
                AdminAccount, AdminAccount.id == StaffReply.account_id
            )
        )
        .where(_OUT.c.program_id == program.id, _OUT.c.to_number == number)
        .order_by(_OUT.c.id.desc())
        .limit(THREAD_LIMIT)
    ).all()
    entries = [Entry(r.id, r.received_at, "in", r.body, bool(r.not_understood)) for r in inbound]
    entries += [
        Entry(
            r.id,
            r.at,
            r.kind,
            r.body,
            status=r.status,
            delivery=r.delivery,
            delivery_error=r.delivery_error,
            sent_by=r.email,
            staff=r.kind == STAFF,
        )
        for r in outbound
    ]
    # A text comes before the reply given to it in the same instant.
    entries.sort(key=lambda e: (e.at, e.kind != "in", e.id))
    return entries[-THREAD_LIMIT:]


def context(session: Session, program: Program, number: str, now: dt.datetime) -> Context:
    """The member behind the number, as staff need them to answer."""
    member = _member(session, program, number)
    language = locales.language_for_phone(number)
    if member is None:
        return Context(None, None, None, language, None, None, None, ())
    # The tier as the member hears it (POINTS): the one held, or the one earned since.
    held = tiers.standing(session, program, member.id, member.tier_id, now).tier
    tier_name = None if held is None else tiers.name(held, member.language or language)
    return Context(
        member_id=member.id,
        name=member.first_name,
        status=member.status,
        language=member.language or language,
        tier=tier_name,
        points=ledger.balance(session, member.id, now),
        last_purchase_at=member.last_purchase_at,
        coupons=tuple(coupons.valid_codes(session, member.id, now)),
    )


def mark_done(session: Session, program: Program, conversation_id: int, now: dt.datetime) -> None:
    """Staff are done with the conversation; a later text not understood opens it again."""
    line = _find(session, program, conversation_id)
    _save_state(session, program.id, line.id, now, done=True)


def reply(
    session: Session,
    program: Program,
    conversation_id: int,
    *,
    account_id: int | None,
    text: str,
    now: dt.datetime,
) -> OutboxMessage:
    """A staff reply to the conversation's number, queued in the outbox like every SMS (the
    sender hands it to the gateway) and recorded with the account that wrote it.

    The rule, in this one place: only an answer to the number's own text of the last 7 days;
    never to an erased member; never to a number that has stopped, unless it wrote after
    stopping. Not marketing: no consent is asked and the monthly cap does not count it.
    Raises NotFound for an id not of this club, ReplyRefused when the rule says no."""
    line = _find(session, program, conversation_id)
    body = locales.to_gsm7(text.strip())
    if not body:
        raise ReplyRefused(EMPTY)
    size = locales.segments(body)
    if size.segments > MAX_SEGMENTS:
        raise ReplyRefused(TOO_LONG)
    why = _refusal(session, program, line.number, now)
    if why is not None:
        raise ReplyRefused(why)
    last = _last_text(session, program.id, line.number)
    assert last is not None  # _refusal said there is one within the window
    member = _member(session, program, line.number)
    message = messages.enqueue(
        session,
        program_id=program.id,
        member_id=member.id if member is not None else None,
        kind=STAFF,
        to_number=line.number,
        from_number=last.to_number,
        body=body,
        segments=size.segments,
        now=now,
    )
    message.inbound_id = last.id
    session.add(
        StaffReply(
            program_id=program.id, outbox_id=message.id, account_id=account_id, created_at=now
        )
    )
    _save_state(session, program.id, line.id, now, done=False)
    session.flush()
    return message


def may_reply(
    session: Session, program: Program, conversation_id: int, now: dt.datetime
) -> str | None:
    """None when a staff reply may go to the conversation now, else the refusal's reason."""
    return _refusal(session, program, _find(session, program, conversation_id).number, now)


# --- helpers ----------------------------------------------------------------------------------


def _listing(
    program_id: int, number: str | None = None, *, people: bool = True
) -> Select[tuple[object, ...]]:
    """Per number with texts not understood: its first and last such text, the last one's
    time, what staff did (answered_at, done_at) and the member (if any) behind it. Read from the
    partial index ix_inbound_messages_inbox alone; the texts of erased numbers have no number
    and drop out. `number`: that number's line alone; `people`: False leaves the members out
    (a count needs none of them)."""
    of_number = [] if number is None else [_IN.c.from_number == number]
    groups = (
        select(
            _IN.c.from_number.label("number"),
            func.min(_IN.c.id).label("id"),
            func.max(_IN.c.id).label("last_id"),
            func.max(_IN.c.received_at).label("last_at"),
        )
        .where(
            _IN.c.program_id == program_id,
            _IN.c.not_understood == true(),
            _IN.c.from_number.is_not(None),
            *of_number,
        )
        .group_by(_IN.c.from_number)
        .subquery()
    )
    with_state = groups.outerjoin(_STATE, _STATE.c.first_inbound_id == groups.c.id)
    if not people:
        return select(groups, _STATE.c.answered_at, _STATE.c.done_at).select_from(with_state)
    return select(
        groups,
        _STATE.c.answered_at,
        _STATE.c.done_at,
        _MEMBERS.c.id.label("member_id"),
        _MEMBERS.c.first_name,
        _MEMBERS.c.status.label("member_status"),
    ).select_from(
        with_state.outerjoin(
            _MEMBERS,
            and_(_MEMBERS.c.program_id == program_id, _MEMBERS.c.phone == groups.c.number),
        )
    )


def _count_mark(session: Session, program_id: int) -> tuple[object, ...]:
    """What the unanswered count follows, cheaply: the newest text not understood (one step
    down the (program_id, not_understood, received_at) index), the conversations' staff times
    (the club's rows of inbox_conversations: only conversations staff acted on) and the number
    of erased members (a range of the members' (program_id, status, ...) index)."""
    newest = session.execute(
        select(_IN.c.received_at, _IN.c.id)
        .where(_IN.c.program_id == program_id, _IN.c.not_understood == true())
        .order_by(_IN.c.received_at.desc(), _IN.c.id.desc())
        .limit(1)
    ).first()
    staff = session.execute(
        select(
            func.count(),
            func.max(_STATE.c.updated_at),
            func.max(_STATE.c.answered_at),
            func.max(_STATE.c.done_at),
        ).where(_STATE.c.program_id == program_id)
    ).one()
    erased = session.scalar(
        select(func.count()).where(
            _MEMBERS.c.program_id == program_id, _MEMBERS.c.status == MemberStatus.ERASED
        )
    )
    return (None if newest is None else tuple(newest), *staff, erased)


def _state_of(
    last_at: ColumnElement[dt.datetime],
    answered_at: ColumnElement[dt.datetime],
    done_at: ColumnElement[dt.datetime],
) -> ColumnElement[str]:
    """ConversationState in SQL: done when marked done since its last text not understood;
    else unanswered when no staff reply came since that text; else open."""
    return case(
        (and_(done_at.is_not(None), done_at >= last_at), literal(str(DONE))),
        (or_(answered_at.is_(None), answered_at < last_at), literal(str(UNANSWERED))),
        else_=literal(str(OPEN)),
    )


def _find(session: Session, program: Program, conversation_id: int) -> Conversation:
    """The conversation whose first text not understood has this id, in this club."""
    first = session.execute(
        select(_IN.c.from_number).where(
            _IN.c.id == conversation_id,
            _IN.c.program_id == program.id,
            _IN.c.not_understood == true(),
        )
    ).first()
    if first is None or first.from_number is None:
        raise NotFound("conversation", str(conversation_id))
    groups = _listing(program.id, first.from_number).subquery()
    state = _state_of(groups.c.last_at, groups.c.answered_at, groups.c.done_at)
    row = session.execute(select(groups, state.label("state"))).first()
    # Only the number's first such text is its conversation's id (a later one redirects nowhere).
    if row is None or row.id != conversation_id:
        raise NotFound("conversation", str(conversation_id))
    person = (row.member_id, row.first_name, row.member_status)
    return _line(row, _bodies(session, [row.last_id]).get(row.last_id), person)


def _line(
    row: object, body: str | None, person: tuple[int | None, str | None, str | None] | None
) -> Conversation:
    member_id, name, status = person or (None, None, None)
    return Conversation(
        id=row.id,  # type: ignore[attr-defined]
        number=row.number,  # type: ignore[attr-defined]
        member_id=member_id,
        name=name,
        member_status=status,
        last_at=row.last_at,  # type: ignore[attr-defined]
        last_body=body,
        state=ConversationState(row.state),  # type: ignore[attr-defined]
    )


def _people(
    session: Session, program_id: int, numbers: Sequence[str]
) -> dict[str, tuple[int | None, str | None, str | None]]:
    """The members behind these numbers (a number that is no member is absent)."""
    if not numbers:
        return {}
    found = session.execute(
        select(_MEMBERS.c.phone, _MEMBERS.c.id, _MEMBERS.c.first_name, _MEMBERS.c.status).where(
            _MEMBERS.c.program_id == program_id, _MEMBERS.c.phone.in_(numbers)
        )
    )
    return {phone: (member_id, name, status) for phone, member_id, name, status in found}


def _bodies(session: Session, ids: Sequence[int]) -> dict[int, str | None]:
    if not ids:
        return {}
    return dict(session.execute(select(_IN.c.id, _IN.c.body).where(_IN.c.id.in_(ids))).all())


def _member(session: Session, program: Program, number: str) -> Member | None:
    return session.scalar(
        select(Member).where(Member.program_id == program.id, Member.phone == number)
    )


def _last_text(session: Session, program_id: int, number: str) -> object | None:
    """The number's newest text to the club (any text, understood or not)."""
    return session.execute(
        select(_IN.c.id, _IN.c.received_at, _IN.c.to_number)
        .where(_IN.c.program_id == program_id, _IN.c.from_number == number)
        .order_by(_IN.c.received_at.desc(), _IN.c.id.desc())
        .limit(1)
    ).first()


def _refusal(session: Session, program: Program, number: str, now: dt.datetime) -> str | None:
    """Why no staff reply may go to the number now (ERASED, TOO_OLD, STOPPED), or None."""
    member = _member(session, program, number)
    if (member is not None and member.status == MemberStatus.ERASED) or members.was_erased(
        session, program, number
    ):
        return ERASED
    last = _last_text(session, program.id, number)
    if last is None or last.received_at < now - WINDOW:  # type: ignore[attr-defined]
        return TOO_OLD
    if member is not None and member.status == MemberStatus.STOPPED:
        stopped_at = _stopped_at(session, member)
        if last.received_at <= stopped_at:  # type: ignore[attr-defined]
            return STOPPED
    return None


def _stopped_at(session: Session, member: Member) -> dt.datetime:
    """When the member stopped: their latest withdrawal in the consent log (STOP writes one in
    the turn that took it), else the last change of their row."""
    withdrawn = session.scalar(
        select(func.max(ConsentEvent.created_at)).where(
            ConsentEvent.member_id == member.id, ConsentEvent.action == consent.WITHDRAW
        )
    )
    return withdrawn if withdrawn is not None else member.updated_at


def _save_state(
    session: Session, program_id: int, conversation_id: int, now: dt.datetime, *, done: bool
) -> None:
    """Record a reply (answered_at) or a "done" (done_at) on the conversation's row, made on
    first use: an upsert, so two staff acting at once both land."""
    values = {"answered_at": now} if not done else {"done_at": now}
    dialect = session.connection().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    statement = (
        module.insert(_STATE)
        .values(program_id=program_id, first_inbound_id=conversation_id, updated_at=now, **values)
        .on_conflict_do_update(
            index_elements=["first_inbound_id"], set_={"updated_at": now, **values}
        )
    )
    session.execute(statement)
