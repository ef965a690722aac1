"""The inbox's store side: conversations per number, their state from the times of texts, replies
and "done", and the one rule for a staff reply, checked for every age of text and member state."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from store import messages
from store.database import Database
from store.errors import NotFound
from store.members import consent, members
from store.models import InboundMessage, Member, OutboxMessage, Program, StaffReply
from store.outreach import guard_rails, inbox
from store.states import ConversationState
from tests.store.loyalty_helpers import at, club

NOW = at(2026, 3, 10)
HOUR = dt.timedelta(hours=1)
_NUMBERS = itertools.count(1000)
_SIDS = itertools.count()
EXAMPLES = {"sqlite": 40, "postgresql": 25}


def a_number() -> str:
    return f"+4790{next(_NUMBERS):06d}"


def texted(
    session: Session,
    program: Program,
    number: str,
    body: str,
    when: dt.datetime,
    *,
    understood: bool = False,
    member_id: int | None = None,
) -> int:
    return messages.record_inbound(
        session,
        program_id=program.id,
        provider_sid=f"SM{next(_SIDS)}",
        member_id=member_id,
        from_number=number,
        to_number="2020",
        body=body,
        intent=None,
        reply=None,
        now=when,
        not_understood=not understood,
    )


def stop(session: Session, member: Member, when: dt.datetime) -> None:
    consent.withdraw(
        session,
        member,
        wording_id="stop",
        wording_language="nb",
        wording_text="STOPP",
        channel="sms",
        evidence="SMtest",
        now=when,
    )


def conversation_of(session: Session, program: Program, number: str) -> inbox.Conversation:
    (found,) = [c for c in inbox.conversations(session, program, show="all") if c.number == number]
    return found


async def test_a_conversation_is_unanswered_then_open_then_done_then_open_again(
    db: Database,
) -> None:
    def work(session: Session) -> list[str]:
        program = club(session)
        number = a_number()
        first = texted(session, program, number, "har dere åpent på søndag?", NOW)
        texted(session, program, number, "POENG", NOW + HOUR, understood=True)
        seen = [conversation_of(session, program, number).state]
        assert inbox.unanswered(session, program) == 1
        inbox.reply(session, program, first, account_id=None, text="Ja, 12-16!", now=NOW + 2 * HOUR)
        seen.append(conversation_of(session, program, number).state)
        assert inbox.unanswered(session, program) == 0
        inbox.mark_done(session, program, first, NOW + 3 * HOUR)
        seen.append(conversation_of(session, program, number).state)
        assert inbox.conversations(session, program, show="open") == []
        texted(session, program, number, "og lørdag?", NOW + 4 * HOUR)
        seen.append(conversation_of(session, program, number).state)
        return seen

    assert await db.run(work) == [
        ConversationState.UNANSWERED,
        ConversationState.OPEN,
        ConversationState.DONE,
        ConversationState.UNANSWERED,
    ]


async def test_newest_first_searchable_by_number_and_name(db: Database) -> None:
    def work(session: Session) -> None:
        program = club(session)
        kari, stranger = a_number(), a_number()
        member = members.create(session, program, kari, status=members.ACTIVE, now=NOW)
        member.first_name = "Kari"
        texted(session, program, kari, "hei?", NOW, member_id=member.id)
        texted(session, program, stranger, "hallo?", NOW + HOUR)
        assert [c.number for c in inbox.conversations(session, program)] == [stranger, kari]
        assert [c.name for c in inbox.conversations(session, program, query="kar")] == ["Kari"]
        found = inbox.conversations(session, program, query=stranger[-6:])
        assert [c.number for c in found] == [stranger]
        assert found[0].last_body == "hallo?"

    await db.run(work)


async def test_a_staff_reply_goes_to_the_outbox_as_no_marketing_with_its_sender(
    db: Database,
) -> None:
    def work(session: Session) -> None:
        program = club(session)
        number = a_number()
        first = texted(session, program, number, "kupongen virket ikke i kassa", NOW)
        sent = inbox.reply(
            session, program, first, account_id=None, text="Beklager – vi ser på det", now=NOW
        )
        row = session.get(OutboxMessage, sent.id)
        assert row is not None
        assert (row.kind, row.status, row.to_number) == (inbox.STAFF, "queued", number)
        assert row.body == "Beklager - vi ser på det"  # the dash would have cost UCS-2
        assert row.kind != guard_rails.MARKETING
        recorded = session.scalar(select(StaffReply).where(StaffReply.outbox_id == row.id))
        assert recorded is not None
        assert recorded.account_id is None
        (last,) = [e for e in inbox.thread(session, program, number) if e.staff]
        assert last.body == row.body

    await db.run(work)


async def test_another_clubs_conversation_is_not_found(db: Database) -> None:
    def work(session: Session) -> None:
        mine, theirs = club(session), club(session)
        first = texted(session, theirs, a_number(), "hei", NOW)
        with pytest.raises(NotFound):
            inbox.reply(session, mine, first, account_id=None, text="hei", now=NOW)
        with pytest.raises(NotFound):
            inbox.mark_done(session, mine, first, NOW)

    await db.run(work)


async def test_an_erased_members_conversation_leaves_the_inbox(db: Database) -> None:
    def work(session: Session) -> None:
        program = club(session)
        number = a_number()
        member = members.create(session, program, number, status=members.ACTIVE, now=NOW)
        first = texted(session, program, number, "hei?", NOW, member_id=member.id)
        members.erase(session, member, NOW + HOUR)
        assert inbox.conversations(session, program, show="all") == []
        with pytest.raises(NotFound):
            inbox.reply(session, program, first, account_id=None, text="hei", now=NOW + HOUR)

    await db.run(work)


@pytest.mark.parametrize("text", ["", "   ", "x" * 1600])
async def test_an_empty_or_letter_long_reply_is_refused(db: Database, text: str) -> None:
    def work(session: Session) -> str:
        program = club(session)
        first = texted(session, program, a_number(), "hei?", NOW)
        with pytest.raises(inbox.ReplyRefused) as refused:
            inbox.reply(session, program, first, account_id=None, text=text, now=NOW)
        return refused.value.reason

    assert await db.run(work) in (inbox.EMPTY, inbox.TOO_LONG)


# Who the number is: a stranger, a member, a member who stopped before their last text (and
# wrote after), one who stopped after it, or an erased member whose number wrote again.
WHO = st.sampled_from(["stranger", "member", "wrote_after_stop", "stopped_after", "erased"])


def test_the_reply_rule_holds_for_every_age_and_member_state(
    loop_and_db: tuple[asyncio.AbstractEventLoop, Database],
) -> None:
    """Allowed exactly when the number's last text is at most 7 days old, the number is no
    erased member's, and it has not stopped since its last text; else refused saying which."""
    loop, db = loop_and_db
    program_id = loop.run_until_complete(db.run(lambda s: club(s).id))

    @settings(
        max_examples=EXAMPLES[db.dialect],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(who=WHO, age_hours=st.integers(0, 24 * 10))
    def check(who: str, age_hours: int) -> None:
        def work(session: Session) -> str | None:
            program = session.get(Program, program_id)
            assert program is not None
            number = a_number()
            last = NOW - dt.timedelta(hours=age_hours)
            first = texted(session, program, number, "hva?", last - 10 * HOUR)
            if who != "stranger":
                member = members.create(
                    session, program, number, status=members.ACTIVE, now=last - 20 * HOUR
                )
                if who == "wrote_after_stop":
                    stop(session, member, last - 5 * HOUR)
                elif who == "stopped_after":
                    stop(session, member, last + dt.timedelta(minutes=1))
                elif who == "erased":
                    members.erase(session, member, last - 5 * HOUR)
                    first = texted(session, program, number, "hallo?", last - 2 * HOUR)
            texted(session, program, number, "er dere der?", last)
            try:
                inbox.reply(session, program, first, account_id=None, text="Hei!", now=NOW)
            except inbox.ReplyRefused as exc:
                return exc.reason
            return None

        if who == "erased":
            expected: str | None = inbox.ERASED
        elif age_hours > 24 * 7:
            expected = inbox.TOO_OLD
        elif who == "stopped_after":
            expected = inbox.STOPPED
        else:
            expected = None
        assert loop.run_until_complete(db.run(work)) == expected

    check()


# What happens in a club, in order, a minute apart: a number (0-2) texts (understood or not),
# staff reply to it, or staff mark it done.
EVENTS = st.lists(
    st.tuples(st.sampled_from(["text", "lost", "reply", "done"]), st.integers(0, 2)),
    min_size=1,
    max_size=12,
)


def test_each_state_and_the_unanswered_count_follow_the_times(
    loop_and_db: tuple[asyncio.AbstractEventLoop, Database],
) -> None:
    """Done when marked done since its last text not understood; else unanswered when no staff
    reply came since; else open. The count in the navigation is the number of unanswered."""
    loop, db = loop_and_db

    @settings(
        max_examples=EXAMPLES[db.dialect],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(EVENTS)
    def check(events: list[tuple[str, int]]) -> None:
        def work(session: Session) -> tuple[dict[str, str], int, dict[str, str], int]:
            program = club(session)
            numbers = [a_number() for _ in range(3)]
            first: dict[int, int] = {}
            lost: dict[int, dt.datetime] = {}
            answered: dict[int, dt.datetime] = {}
            done: dict[int, dt.datetime] = {}
            for minute, (what, who) in enumerate(events):
                when = NOW + dt.timedelta(minutes=minute)
                if what in ("text", "lost"):
                    made = texted(
                        session, program, numbers[who], what, when, understood=what == "text"
                    )
                    if what == "lost":
                        first.setdefault(who, made)
                        lost[who] = when
                elif who in first:
                    if what == "reply":
                        inbox.reply(
                            session, program, first[who], account_id=None, text="Hei", now=when
                        )
                        answered[who] = when
                    else:
                        inbox.mark_done(session, program, first[who], when)
                        done[who] = when
            expected = {
                numbers[who]: _state(at_, answered.get(who), done.get(who))
                for who, at_ in lost.items()
            }
            shown = {
                c.number: str(c.state) for c in inbox.conversations(session, program, show="all")
            }
            waiting = sum(state == inbox.UNANSWERED for state in expected.values())
            return shown, inbox.unanswered(session, program), expected, waiting

        shown, count, expected, waiting = loop.run_until_complete(db.run(work))
        assert shown == expected
        assert count == waiting

    check()


def _state(lost: dt.datetime, answered: dt.datetime | None, done: dt.datetime | None) -> str:
    """The states as the inbox's page explains them, written out here rather than borrowed."""
    if done is not None and done >= lost:
        return "done"
    if answered is not None and answered >= lost:
        return "open"
    return "unanswered"


# The same, with numbers erased too, each step a minute apart or all in one frozen instant.
KEPT_EVENTS = st.tuples(
    st.lists(
        st.tuples(st.sampled_from(["text", "lost", "reply", "done", "erase"]), st.integers(0, 2)),
        min_size=1,
        max_size=12,
    ),
    st.sampled_from([0, 1]),
)


def test_the_kept_count_is_the_unanswered_count_after_every_event(
    loop_and_db: tuple[asyncio.AbstractEventLoop, Database],
) -> None:
    """The navigation's count (UnansweredCounts, which counts again only when its marks move)
    equals unanswered() after every text, reply, "done" and erasure, read between each: with a
    cache that never ages, the marks alone keep it right, in a frozen instant too."""
    loop, db = loop_and_db

    @settings(
        max_examples=EXAMPLES[db.dialect],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(KEPT_EVENTS)
    def check(case: tuple[list[tuple[str, int]], int]) -> None:
        events, step = case
        kept = inbox.UnansweredCounts(clock=lambda: 0.0)

        def work(session: Session) -> list[tuple[int, int]]:
            program = club(session)
            numbers = [a_number() for _ in range(3)]
            people = {
                who: members.create(session, program, number, status=members.ACTIVE, now=NOW)
                for who, number in enumerate(numbers)
            }
            first: dict[int, int] = {}
            seen = [(kept.count(session, program), inbox.unanswered(session, program))]
            for minute, (what, who) in enumerate(events):
                when = NOW + dt.timedelta(minutes=minute * step)
                if what in ("text", "lost"):
                    made = texted(
                        session, program, numbers[who], what, when, understood=what == "text"
                    )
                    if what == "lost":
                        first.setdefault(who, made)
                elif what == "erase":
                    if people[who].status != members.ERASED:
                        members.erase(session, people[who], when)
                        first.pop(who, None)
                elif who in first:
                    if what == "reply":
                        # An erased number that writes again is refused an answer: no reply.
                        with contextlib.suppress(inbox.ReplyRefused):
                            inbox.reply(
                                session, program, first[who], account_id=None, text="Hi", now=when
                            )
                    else:
                        inbox.mark_done(session, program, first[who], when)
                seen.append((kept.count(session, program), inbox.unanswered(session, program)))
            return seen

        for cached, counted in loop.run_until_complete(db.run(work)):
            assert cached == counted

    check()


async def test_the_kept_count_ages_out_for_what_its_marks_do_not_see(db: Database) -> None:
    """A number that was never a member blanked (as erasure does) moves no mark: the kept
    count holds until it is max_age seconds old, then it is counted again."""
    seconds = [0.0]
    kept = inbox.UnansweredCounts(max_age=60, clock=lambda: seconds[0])

    def work(session: Session) -> list[int]:
        program = club(session)
        stranger = a_number()
        texted(session, program, stranger, "hei?", NOW)
        seen = [kept.count(session, program)]
        session.execute(
            InboundMessage.__table__.update()
            .where(InboundMessage.from_number == stranger)
            .values(from_number=None)
        )
        seen.append(kept.count(session, program))
        seconds[0] = 59.0
        seen.append(kept.count(session, program))
        seconds[0] = 60.0
        seen.append(kept.count(session, program))
        return seen

    assert await db.run(work) == [1, 1, 1, 0]
