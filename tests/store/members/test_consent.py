"""Consent's one home: may_market (Python, for one member) and its SQL twin for planning
(may_market_clause, and may_receive with reachability) agree for every member state, on SQLite
and PostgreSQL.

Every state is made the way the product makes it, through the home: joining (by SMS, at the
till, in the demo: enrolment.join), an import's batch (imports.land_batch), STOP
(consent.withdraw), JOIN before YES (pending), erasure (privacy.erase), and events of other
purposes in the log. A member starts in each status and then gets each shape of consent log the
issue names (none, grant, withdraw, grant then withdraw, withdraw then grant, other purposes),
followed by any further sequence of those steps.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from store import states
from store.database import Database
from store.members import consent, enrolment, imports, members, privacy
from store.models import Member, Program
from store.states import MemberStatus
from tests.store.loyalty_helpers import at, club

START = at(2026, 2, 1)
STEP = dt.timedelta(minutes=7)
EXAMPLES = {"sqlite": 60, "postgresql": 40}
OTHER_PURPOSE = "research_sms"
_PHONES = itertools.count(1)

# The shapes of a consent log the rule must read right, as the steps that write them.
SHAPES: dict[str, tuple[str, ...]] = {
    "none": (),
    "grant": ("join",),
    "withdraw": ("stop",),
    "grant, withdraw": ("join", "stop"),
    "withdraw, grant": ("stop", "join"),
    "other purposes": ("other_grant", "other_withdraw"),
}
STEPS = ("join", "stop", "pending", "erase", "other_grant", "other_withdraw", "flag")


def _phone() -> str:
    return f"+4792{next(_PHONES):06d}"


def _words(action: str) -> dict[str, str]:
    return {
        "wording_id": f"test.{action}",
        "wording_language": "nb",
        "wording_text": f"{action} in the member's words",
        "evidence": f"SMtest{action}",
    }


def _start(session: Session, program: Program, status: MemberStatus, when: dt.datetime) -> int:
    """A member in `status`, reached the way the product reaches it."""
    if status is MemberStatus.ACTIVE:
        # Imported: the batch path's members and grants.
        row = imports.Row(
            line=1,
            phone=_phone(),
            raw_phone="x",
            first_name=None,
            language="nb",
            birthday=None,
            consent_at=when,
            evidence="signed form",
            wording=None,
        )
        imports.land_batch(session, program, [row], source="test.csv", stamp=when)
        found = session.scalar(select(Member.id).where(Member.phone == row.phone))
        assert found is not None
        return found
    member = members.create(session, program, _phone(), status=MemberStatus.PENDING, now=when)
    if status is MemberStatus.STOPPED:
        # STOP from a number the club did not know.
        consent.withdraw(session, member, channel="sms", now=when, **_words("stop"))
    elif status is MemberStatus.ERASED:
        privacy.erase(session, member, when, channel="sms", **_words("erase"))
    session.flush()
    return member.id


def _apply(session: Session, program: Program, member: Member, step: str, when: dt.datetime):
    match step:
        case "join":
            enrolment.join(session, program, member, channel="sms", now=when, **_words("grant"))
        case "stop":
            consent.withdraw(session, member, channel="sms", now=when, **_words("stop"))
        case "pending" if states.allowed("member", member.status, MemberStatus.PENDING):
            members.set_status(member, MemberStatus.PENDING, when)
        case "erase":
            privacy.erase(session, member, when, channel="sms", **_words("erase"))
        case "other_grant" | "other_withdraw":
            action = consent.GRANT if step == "other_grant" else consent.WITHDRAW
            consent.record(
                session,
                member,
                action=action,
                channel="sms",
                now=when,
                purpose=OTHER_PURPOSE,
                **_words(action),
            )
        case "flag":
            member.undeliverable_at = when
    session.flush()


def _answers(session: Session, member_id: int) -> tuple[bool, bool, bool, bool]:
    """(may_market, its SQL twin, may_receive in SQL, the rule read off the log by hand)."""
    member = session.get(Member, member_id)
    assert member is not None
    python = consent.may_market(session, member)
    sql, receive = session.execute(
        select(consent.may_market_clause(), consent.may_receive()).where(Member.id == member_id)
    ).one()
    log = consent.history(session, member_id)
    marketing = [event.action for event in log if event.purpose == consent.MARKETING_SMS]
    by_hand = member.status == MemberStatus.ACTIVE and marketing[-1:] == [consent.GRANT]
    reachable = member.phone is not None and member.undeliverable_at is None
    assert bool(receive) == (bool(sql) and reachable)
    return python, bool(sql), bool(receive), by_hand


class _Run:
    def __init__(self, loop: asyncio.AbstractEventLoop, db: Database, program_id: int) -> None:
        self.loop, self.db, self.program_id = loop, db, program_id
        self.when = START

    def run(self, work: Callable[[Session], Any]) -> Any:
        return self.loop.run_until_complete(self.db.run(work))

    def tick(self) -> dt.datetime:
        self.when += STEP
        return self.when

    def start(self, status: MemberStatus) -> int:
        when = self.tick()
        program_id = self.program_id
        return self.run(lambda s: _start(s, s.get(Program, program_id), status, when))  # type: ignore[arg-type]

    def step(self, member_id: int, step: str) -> None:
        when = self.tick()

        def work(session: Session) -> None:
            member = session.get(Member, member_id)
            program = session.get(Program, self.program_id)
            assert member is not None
            assert program is not None
            _apply(session, program, member, step, when)

        self.run(work)

    def check(self, member_id: int) -> None:
        python, sql, _, by_hand = self.run(lambda s: _answers(s, member_id))
        assert python == sql == by_hand


def test_may_market_and_its_sql_twin_agree_for_every_member_state(
    loop_and_db: tuple[asyncio.AbstractEventLoop, Database],
) -> None:
    """Whatever status a member is in and whatever their consent log holds (read in a unit of
    work of its own, as the planner and the sender read): the Python answer, the SQL twin and
    the rule read off the log by hand are the same; may_receive is the twin and a number that
    works."""
    loop, db = loop_and_db
    program_id = loop.run_until_complete(db.run(lambda s: club(s).id))
    states_seen: set[tuple[str, bool]] = set()

    @settings(
        max_examples=EXAMPLES[db.dialect],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        st.sampled_from(list(MemberStatus)),
        st.sampled_from(list(SHAPES)),
        st.lists(st.sampled_from(STEPS), max_size=5),
    )
    def check(status: MemberStatus, shape: str, more: list[str]) -> None:
        run = _Run(loop, db, program_id)
        member_id = run.start(status)
        run.check(member_id)
        for step in (*SHAPES[shape], *more):
            run.step(member_id, step)
            run.check(member_id)
        final = run.run(lambda s: s.get(Member, member_id).status)
        states_seen.add((final, run.run(lambda s: _answers(s, member_id)[0])))

    check()
    # Every status was reached, and marketing was both allowed and refused along the way.
    assert {status for status, _ in states_seen} == set(MemberStatus)
    assert {may for _, may in states_seen} == {True, False}


def test_every_status_with_every_log_shape(
    loop_and_db: tuple[asyncio.AbstractEventLoop, Database],
) -> None:
    """The table the issue names, each cell once: every MemberStatus to start from, times
    every shape of consent log; the answers agree and are what the rule says."""
    loop, db = loop_and_db
    run = _Run(loop, db, loop.run_until_complete(db.run(lambda s: club(s).id)))
    expected = {
        # The shape decides, whatever the start: a grant last makes an active member.
        "grant": True,
        "withdraw, grant": True,
        "withdraw": False,
        "grant, withdraw": False,
    }
    for status in MemberStatus:
        for shape, steps in SHAPES.items():
            member_id = run.start(status)
            for step in steps:
                run.step(member_id, step)
            python, sql, _, by_hand = run.run(lambda s, m=member_id: _answers(s, m))
            assert python == sql == by_hand, (status, shape)
            if shape in expected:
                assert python is expected[shape], (status, shape)
            else:
                # No marketing event since the start: only an imported (active) member may.
                assert python is (status is MemberStatus.ACTIVE), (status, shape)
