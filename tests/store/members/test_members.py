"""A turn's member written by Core (members.take, members.new, members.save), as the ORM would."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import event, select, text, update
from sqlalchemy.orm import Session

from store.database import Database
from store.members import members
from store.models import Member
from tests.store.loyalty_helpers import T0, at, club, member

_PHONES = itertools.count()


def _phone() -> str:
    return f"+4741{next(_PHONES):06d}"


def _row(session: Session, member_id: int) -> dict:
    found = session.connection().execute(select(Member.__table__).where(Member.id == member_id))
    return dict(found.mappings().one())


def _as_a_turn_reads_it(session: Session, state: members.MemberState) -> members.MemberState:
    """The state, with the ORM's copy of the member gone from the session (the helper that
    made the member left it there; a turn finds none)."""
    session.flush()
    session.expunge_all()
    return state


async def test_a_new_member_is_inserted_whole_once(loyalty_db: Database) -> None:
    def work(session: Session) -> tuple[dict, dict, bool]:
        program = club(session)
        new = members.new(program, "+4741999999", status=members.PENDING, now=T0)
        new.flow, new.step, new.flow_data = "join", "consent", {"shown": "JA?"}
        members.save(session, new)
        as_built = {key: getattr(new, key) for key in _row(session, new.id)}
        # A plain NULL, as the ORM writes an attribute never set (not JSON null).
        plain = session.connection().execute(
            text("SELECT referral_code IS NULL AND birthday IS NULL FROM members WHERE id = :id"),
            {"id": new.id},
        )
        return _row(session, new.id), as_built, bool(plain.scalar_one())

    stored, as_built, nulls = await loyalty_db.run(work)
    assert stored == as_built
    assert stored["status"] == members.PENDING
    assert stored["flow_data"] == {"shown": "JA?"}
    assert stored["delivery_failures"] == 0
    assert stored["phone_hash"] != "+4741999999"
    assert nulls


async def test_a_new_member_saved_twice_is_inserted_then_updated(loyalty_db: Database) -> None:
    def work(session: Session) -> tuple[list[int], dict]:
        program = club(session)
        phone = _phone()
        new = members.new(program, phone, status=members.STOPPED, now=T0)
        members.save(session, new)  # a STOP from a new number: the consent log needs the id
        members.set_status(new, members.PENDING, at(2026, 3, 11))
        members.save(session, new)
        ids = session.scalars(
            select(Member.id).where(Member.program_id == program.id, Member.phone == phone)
        ).all()
        return ids, _row(session, new.id)

    ids, stored = await loyalty_db.run(work)
    assert ids == [stored["id"]]
    assert stored["status"] == members.PENDING
    assert stored["updated_at"] == at(2026, 3, 11)


async def test_only_the_changed_columns_are_written(loyalty_db: Database) -> None:
    """A column the turn did not change keeps what another writer stored meanwhile."""

    def work(session: Session) -> dict:
        program = club(session)
        found = member(session, program)
        state = members.state_by_phone(session, program.id, found.phone)
        assert state is not None
        taken = members.take(session, _as_a_turn_reads_it(session, state))
        taken.first_name = "Kari"
        taken.language = taken.language  # set to what it was: not a change
        # The sender flags the number while the turn runs.
        session.connection().execute(
            update(Member).where(Member.id == found.id).values(delivery_failures=3, language="sv")
        )
        members.save(session, taken)
        return _row(session, found.id)

    stored = await loyalty_db.run(work)
    assert stored["first_name"] == "Kari"
    assert stored["delivery_failures"] == 3
    assert stored["language"] == "sv"


async def test_nothing_is_written_when_nothing_changed(loyalty_db: Database) -> None:
    def work(session: Session) -> list[str]:
        program = club(session)
        found = member(session, program)
        state = members.state_by_phone(session, program.id, found.phone)
        assert state is not None
        taken = members.take(session, _as_a_turn_reads_it(session, state))
        taken.flow = None  # as stored
        sent: list[str] = []
        connection = session.connection()
        listener = lambda *args: sent.append(args[2])  # noqa: E731 (the statement's SQL)
        event.listen(connection, "before_cursor_execute", listener)
        try:
            members.save(session, taken)
        finally:
            event.remove(connection, "before_cursor_execute", listener)
        return sent

    assert await loyalty_db.run(work) == []


async def test_a_member_the_session_holds_is_left_to_its_flush(loyalty_db: Database) -> None:
    def work(session: Session) -> tuple[bool, str | None]:
        program = club(session)
        held = member(session, program)  # made through the ORM: in the session
        state = members.state_by_phone(session, program.id, held.phone)
        assert state is not None
        taken = members.take(session, state)
        taken.first_name = "Ola"
        members.save(session, taken)
        session.flush()
        return taken is held, _row(session, held.id)["first_name"]

    assert await loyalty_db.run(work) == (True, "Ola")


async def test_saving_a_member_that_is_gone_fails(loyalty_db: Database) -> None:
    def work(session: Session) -> None:
        program = club(session)
        found = member(session, program)
        state = members.state_by_phone(session, program.id, found.phone)
        assert state is not None
        taken = members.take(session, _as_a_turn_reads_it(session, state))
        session.connection().execute(
            Member.__table__.delete().where(Member.__table__.c.id == found.id)
        )
        taken.first_name = "Kari"
        members.save(session, taken)

    with pytest.raises(Exception, match="not found"):
        await loyalty_db.run(work)
