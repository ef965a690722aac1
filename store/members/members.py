"""Members: found by phone, created on JOIN or STOP, and erased on request."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    String,
    and_,
    any_,
    bindparam,
    case,
    delete,
    func,
    insert,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, make_transient, make_transient_to_detached
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.orm.util import identity_key

from store import messages, states
from store.database import Reads, pipelined, plain_write, prefetched
from store.models import (
    ConsentEvent,
    InboundMessage,
    Member,
    OutboxMessage,
    ProfileAnswer,
    ProfilePrompt,
    Program,
)
from store.states import MemberStatus

PENDING = MemberStatus.PENDING
ACTIVE = MemberStatus.ACTIVE
STOPPED = MemberStatus.STOPPED
ERASED = MemberStatus.ERASED
STATUSES = frozenset(MemberStatus)


def hash_phone(program: Program, phone: str) -> str:
    """A salted hash of the number: kept after erasure so the number stays suppressed."""
    return hashlib.sha256(f"{program.hash_salt}:{phone}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class MemberState:
    """A member's conversation state, read without the ORM (every inbound text reads one)."""

    id: int
    status: str
    language: str | None
    first_name: str | None
    flow: str | None
    step: str | None
    flow_data: dict[str, Any] | None
    joined: bool
    columns: Mapping[str, Any]  # the whole row, so `attach` needs no second read


_MEMBERS = Member.__table__
_STATE_BY_PHONE = select(_MEMBERS).where(
    _MEMBERS.c.program_id == bindparam("program_id"), _MEMBERS.c.phone == bindparam("phone")
)
_STATE_BY_PHONE_LOCKED = _STATE_BY_PHONE.with_for_update()
_MEMBER_COLUMNS = tuple(column.name for column in _STATE_BY_PHONE.selected_columns)


def state_by_phone(
    session: Session, program_id: int, phone: str, *, lock: bool = False
) -> MemberState | None:
    """The conversation state of the member with this number. `lock` holds the row for the
    turn (FOR UPDATE on PostgreSQL; on SQLite the single writer already serialises turns).

    Read through the session's connection, so the session's own changes must be flushed."""
    query = _STATE_BY_PHONE_LOCKED if lock else _STATE_BY_PHONE
    found = session.connection().execute(query, {"program_id": program_id, "phone": phone})
    row = found.mappings().first()
    return None if row is None else _state(row)


def _state(row: Mapping[str, Any]) -> MemberState:
    return MemberState(
        id=row["id"],
        status=row["status"],
        language=row["language"],
        first_name=row["first_name"],
        flow=row["flow"],
        step=row["step"],
        flow_data=row["flow_data"],
        joined=row["joined_at"] is not None,
        columns=row,
    )


def state_for_turn(
    session: Session, program_id: int, phone: str, provider_sid: str
) -> tuple[MemberState | None, messages.SeenText | None]:
    """The member's state held for a text's turn (state_by_phone's lock), and the text as
    recorded before if this is a retry (messages.find_inbound), looked up after the lock, so
    that on PostgreSQL a retry racing its first delivery sees it committed. On psycopg the two
    reads go in one round trip (store.database.pipelined), made with those of the other turns
    of the group when a writer of turns made them ahead (`turn_reads`)."""
    connection = session.connection()
    if connection.dialect.driver != "psycopg":
        state = state_by_phone(session, program_id, phone, lock=True)
        return state, messages.find_inbound(session, program_id, provider_sid)
    reads = turn_reads(program_id, phone, provider_sid)
    found = prefetched(session, reads.key)
    if found is None:
        found = _states_for_turns(connection, [reads])[reads.key]
    return found  # type: ignore[no-any-return]


def turn_reads(program_id: int, phone: str, provider_sid: str) -> Reads:
    """`state_for_turn`'s reads (the member locked, the retry looked up), declared."""
    return Reads(
        key=("state_for_turn", program_id, phone, provider_sid),
        holder=("member", program_id, phone),
        make=_states_for_turns,
        args=(program_id, phone, provider_sid),
    )


# Several turns' members, locked in the order of their ids (two groups locking members they
# share take them in the same order). By club and number each: a number that texted two clubs
# of one group locks its member in both, which changes nothing.
_STATES_BY_PHONES_LOCKED = (
    select(_MEMBERS)
    .where(
        _MEMBERS.c.program_id == any_(bindparam("program_ids", type_=ARRAY(BigInteger))),
        _MEMBERS.c.phone == any_(bindparam("phones", type_=ARRAY(String))),
    )
    .order_by(_MEMBERS.c.id)
    .with_for_update()
)
_PROGRAM = _MEMBER_COLUMNS.index("program_id")
_PHONE = _MEMBER_COLUMNS.index("phone")


def _states_for_turns(connection: Connection, reads: Sequence[Reads]) -> dict[Hashable, Any]:
    """`state_for_turn`'s answer for each of `reads` (`turn_reads`): the members in one
    statement, then the retries in another, in one round trip on psycopg."""
    program_ids = [each.args[0] for each in reads]
    member_rows, seen_rows = pipelined(
        connection,
        [
            (
                _STATES_BY_PHONES_LOCKED,
                {"program_ids": program_ids, "phones": [each.args[1] for each in reads]},
            ),
            messages.seen_read_many(program_ids, [each.args[2] for each in reads]),
        ],
    )
    states = {(row[_PROGRAM], row[_PHONE]): row for row in member_rows}
    seen = messages.seen_many(seen_rows)
    found: dict[Hashable, Any] = {}
    for each in reads:
        program_id, phone, provider_sid = each.args
        row = states.get((program_id, phone))
        state = None if row is None else _state(dict(zip(_MEMBER_COLUMNS, row, strict=True)))
        found[each.key] = (state, seen.get((program_id, provider_sid)))
    return found


def attach(session: Session, state: MemberState) -> Member:
    """The member as an ORM object, for a turn that changes it, without reading it again: the
    one this session already holds, or one made from the row the turn read. In the session:
    its flush writes the changes (see `take` and `save` for the turn's cheaper way)."""
    member = take(session, state)
    session.add(member)  # nothing to do if the session held it
    return member


def take(session: Session, state: MemberState) -> Member:
    """The member as an ORM object for a turn that changes it, without reading it again and
    kept out of the session: `save` writes what the turn changed.

    Why not the session: on SQLite every turn runs in the one writer thread, and the ORM's
    unit of work for a changed member costs that thread about as much as the rest of the turn;
    a Core UPDATE of the changed columns costs a fraction (in process, 100,000 members: STOP
    370 -> 280 µs of writer CPU, JOIN 480 -> 270 µs with `new`). The object stays a Member, so
    store functions that take one (consent, loyalty, privacy) work on it unchanged. If the
    session already holds this member (a unit of work earlier in the same group changed it),
    that object is returned, and the session's flush writes it."""
    held = session.identity_map.get(identity_key(Member, state.id))
    if held is not None:
        return held  # type: ignore[no-any-return]
    member = Member(**dict(state.columns))
    make_transient_to_detached(member)  # as if loaded: only later changes count as changes
    return member


def new(program: Program, phone: str, *, status: str, now: dt.datetime) -> Member:
    """A member not stored yet (a first text from a number): `save` inserts it.

    Every column is given (as stored: None or its default), so once inserted the object holds
    the whole row, as one read from the database would."""
    given = {
        "program_id": program.id,
        "phone": phone,
        "phone_hash": hash_phone(program, phone),
        "status": status,
        "created_at": now,
        "updated_at": now,
    }
    return Member(**{**_UNSET, **given})


_UNSET = {
    column.key: column.default.arg
    if column.default is not None and column.default.is_scalar
    else None
    for column in _MEMBERS.columns
    if not column.primary_key
}
_INSERT = insert(_MEMBERS).returning(_MEMBERS.c.id)
_UPDATE = update(_MEMBERS).where(_MEMBERS.c.id == bindparam("member_id"))


def save(session: Session, member: Member) -> None:
    """Write a member from `take` or `new` with one Core statement: an INSERT of a new one
    (its id is set), else an UPDATE of only the columns changed since it was read or last
    saved (nothing if none). A member the session holds is left to the session's flush.

    The member's own row only: store functions that change other tables write them
    themselves. Within a turn nothing reads the member's row back before this runs (the
    referral credited on joining is given the referrer, not read: loyalty.on_joined)."""
    if member in session:
        return
    state = inspect(member)
    if state.transient:
        # None left out, as the ORM does: SQL NULL (a JSON column would store JSON null).
        values = {
            key: value for key, value in state.dict.items() if key in _COLUMNS and value is not None
        }
        ((member.id,),), _ = plain_write(session.connection(), _INSERT, values)
        make_transient_to_detached(member)
        return
    # committed_state holds the stored value of each attribute set since the object was made
    # from its row or last saved: only those whose value differs are written.
    current = state.dict
    changed = {
        key: current[key]
        for key, stored in state.committed_state.items()
        if key in _COLUMNS and current[key] != stored
    }
    if not changed:
        return
    _, rowcount = plain_write(session.connection(), _UPDATE, {"member_id": member.id, **changed})
    if rowcount != 1:
        raise StaleDataError(f"member {member.id} was not found to update")
    make_transient(member)  # and back: what was written is now the stored state
    make_transient_to_detached(member)


_COLUMNS = frozenset(column.key for column in _MEMBERS.columns)


def in_club(session: Session, program_id: int, member_id: int) -> Member | None:
    """The member with this id if it belongs to the club; None for another club's (an admin of
    one club must not learn whether an id exists in another)."""
    return session.scalar(
        select(Member).where(Member.id == member_id, Member.program_id == program_id)
    )


def count_by_status(session: Session, program_id: int) -> dict[str, int]:
    """How many of the club's members are in each status (every status named, 0 if none)."""
    rows = session.execute(
        select(Member.status, func.count())
        .where(Member.program_id == program_id)
        .group_by(Member.status)
    ).all()
    counts = dict.fromkeys(sorted(STATUSES), 0)
    counts.update(dict(rows))
    return counts


def newest(session: Session, program_id: int, limit: int = 10) -> Sequence[Member]:
    """The club's most recently created members, newest first (erased ones left out)."""
    return session.scalars(
        select(Member)
        .where(Member.program_id == program_id, Member.status != ERASED)
        .order_by(Member.id.desc())
        .limit(limit)
    ).all()


def was_erased(session: Session, program: Program, phone: str) -> bool:
    """Whether this number asked to be erased: an import must not bring it back."""
    return phone in erased_among(session, program, [phone])


_ERASED_CHUNK = 500  # hashes per query, well under any database's limit on bound parameters


def erased_among(session: Session, program: Program, phones: Iterable[str]) -> set[str]:
    """The numbers among `phones` that asked to be erased (was_erased for many at once: only
    the salted hash of an erased number is left to match)."""
    hashes = {hash_phone(program, phone): phone for phone in phones}
    keys = list(hashes)
    erased: set[str] = set()
    for start in range(0, len(keys), _ERASED_CHUNK):
        found = session.scalars(
            select(Member.phone_hash).where(
                Member.program_id == program.id,
                Member.phone_hash.in_(keys[start : start + _ERASED_CHUNK]),
                Member.status == ERASED,
            )
        )
        erased.update(hashes[h] for h in found)
    return erased


def create(
    session: Session, program: Program, phone: str, *, status: str, now: dt.datetime
) -> Member:
    member = Member(
        program_id=program.id,
        phone=phone,
        phone_hash=hash_phone(program, phone),
        status=status,
        created_at=now,
        updated_at=now,
    )
    session.add(member)
    session.flush()
    return member


def set_status(member: Member, status: str, now: dt.datetime) -> None:
    if status not in STATUSES:
        raise ValueError(f"unknown member status {status!r}")
    member.status = states.move("member", member.status, status, what=member.id)
    member.updated_at = now
    if status == ACTIVE and member.joined_at is None:
        member.joined_at = now


def erase(session: Session, member: Member, now: dt.datetime) -> None:
    """Remove everything personal; figures (counts, consent history) stay, anonymous."""
    session.execute(delete(ProfileAnswer).where(ProfileAnswer.member_id == member.id))
    # Which questions were put to them and which they skipped: about the person too.
    session.execute(delete(ProfilePrompt).where(ProfilePrompt.member_id == member.id))
    _forget_messages(session, member)
    member.birthday_changed_at = None
    member.phone = None
    member.first_name = None
    member.birthday = None
    member.language = None
    member.flow = None
    member.step = None
    member.flow_data = None
    set_status(member, ERASED, now)


def discard(session: Session, member: Member, now: dt.datetime) -> bool:
    """NO to joining: a number with no past here is forgotten (no row left, its texts blanked);
    True then. One with a past keeps its row, stopped, and False: a former member (their
    points, purchases and consent history) or a number that texted STOP, whose withdrawal
    must stay in the append-only log so that nothing, an import included, brings it back
    without new consent. Deleting the row would take its consent events with it (cascade)."""
    if member.joined_at is not None or _has_consent_events(session, member.id):
        set_status(member, STOPPED, now)
        return False
    _forget_messages(session, member)
    session.delete(member)
    session.flush()
    return True


def _has_consent_events(session: Session, member_id: int) -> bool:
    found = session.execute(
        select(ConsentEvent.id).where(ConsentEvent.member_id == member_id).limit(1)
    ).first()
    return found is not None


def _forget_messages(session: Session, member: Member) -> None:
    """Blank every text to or from the member's number, including those sent before it was a
    member (they carry the number, not the member's id)."""
    inbound_of_member = or_(
        InboundMessage.member_id == member.id,
        and_(
            InboundMessage.program_id == member.program_id,
            InboundMessage.from_number == member.phone,
        ),
    )
    outbox_of_member = or_(
        OutboxMessage.member_id == member.id,
        and_(
            OutboxMessage.program_id == member.program_id,
            OutboxMessage.to_number == member.phone,
        ),
    )
    session.execute(
        update(InboundMessage)
        .where(inbound_of_member)
        .values(from_number=None, body=None, reply=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(OutboxMessage)
        .where(outbox_of_member)
        .values(to_number=None, body=None, error=_ERROR_KEPT)
        .execution_options(synchronize_session=False)
    )


# A failed or retried row's error is the gateway's own text, which can quote the number ("The
# 'To' number +47... is not valid"): erasure empties it (the status and the carrier's code
# stay). A skipped row's error is Klubb's reason (no_consent, cancelled), which campaign
# reports count: kept.
_ERROR_KEPT = case(
    (OutboxMessage.status == states.OutboxStatus.SKIPPED, OutboxMessage.error), else_=None
)
