"""member_marks and answer_choices (migration 0014), the rows a segment's store, category and
answer read: the store a member joined at is marked once; after any sales (told late, retried,
without a store or a category) the marks are what the sales say; an answer's choice rows follow
the answer (replaced, erased, its question deleted); and the migration fills both as their
writers keep them."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, delete, select
from sqlalchemy.orm import Session

from store import migrate
from store.clubs import programs
from store.database import Database, open_database
from store.loyalty import marks, purchases
from store.loyalty.earning import Line
from store.members import enrolment, members, profile
from store.models import AnswerChoice, MemberMark, ProfileQuestion, Program
from store.outreach import segments
from tests.store.loyalty_helpers import T0, club, fingerprint, member
from tests.store.test_migrations import on_connection, own_database

NOW = dt.datetime(2027, 1, 15, 12, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
_SALES = itertools.count()
_MARKS = MemberMark.__table__
_CHOICES = AnswerChoice.__table__
EXAMPLES = {"sqlite": 40, "postgresql": 15}

# A sale: the buyer (of three), its store, its lines' categories, how long before NOW it was
# made (so later sales are often told after earlier ones, a till's backlog), and whether the
# till sends it again.
SALE = st.tuples(
    st.integers(0, 2),
    st.sampled_from((None, "", "Torshov", "Sandvika", "torshov")),
    st.lists(st.sampled_from((None, "", "shoes", "skiing", "Shoes")), min_size=1, max_size=3),
    st.integers(0, 400 * 86400),
    st.booleans(),
)


def sell(
    session: Session,
    program: Program,
    member_id: int,
    store: str | None,
    categories: list[str | None],
    at: dt.datetime,
    transaction: str,
) -> None:
    purchases.record(
        session,
        program,
        member_id,
        transaction_id=transaction,
        lines=[Line(qty=1, amount_minor=1000, category=c) for c in categories],
        occurred_at=at,
        fingerprint=fingerprint(transaction),
        now=NOW,
        store=store,
    )


def by_hand(
    sales: list[tuple[int, str | None, list[str | None], dt.datetime]],
) -> set[tuple[str, str, int, dt.datetime]]:
    """(kind, name, buyer, latest purchase) for each store bought at and category bought."""
    latest: dict[tuple[str, str, int], dt.datetime] = {}
    for buyer, store, categories, at in sales:
        names = [("store", store)] + [("category", c) for c in categories]
        for kind, name in names:
            if name:
                key = (kind, name, buyer)
                latest[key] = max(at, latest.get(key, at))
    return {(kind, name, buyer, at) for (kind, name, buyer), at in latest.items()}


def test_the_marks_are_what_the_sales_say(
    loop_and_db: tuple[asyncio.AbstractEventLoop, Database],
) -> None:
    """Whatever the sales, in whatever order they are told, each member has one row per store
    they bought at and per category they bought a line of, with the latest such purchase."""
    loop, db = loop_and_db

    @settings(
        max_examples=EXAMPLES[db.dialect],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(SALE, max_size=12))
    def check(sales: list[tuple[int, str | None, list[str | None], int, bool]]) -> None:
        def work(session: Session) -> tuple[list[int], set[tuple[Any, ...]]]:
            program = club(session)
            buyers = [member(session, program).id for _ in range(3)]
            for buyer, store, categories, seconds, again in sales:
                transaction = f"M{next(_SALES)}"
                at = NOW - dt.timedelta(seconds=seconds)
                for _ in range(1 + again):
                    sell(session, program, buyers[buyer], store, categories, at, transaction)
            rows = session.execute(
                select(_MARKS.c.kind, _MARKS.c.name, _MARKS.c.member_id, _MARKS.c.last_at).where(
                    _MARKS.c.program_id == program.id, _MARKS.c.kind != marks.JOINED
                )
            )
            return buyers, {tuple(row) for row in rows}

        buyers, found = loop.run_until_complete(db.run(work))
        told = [
            (buyers[b], store, categories, NOW - dt.timedelta(seconds=seconds))
            for b, store, categories, seconds, _ in sales
        ]
        assert found == by_hand(told)

    check()


def choices_of(session: Session, *member_ids: int) -> set[tuple[int, str, int]]:
    rows = session.execute(
        select(_CHOICES.c.question_id, _CHOICES.c.choice, _CHOICES.c.member_id).where(
            _CHOICES.c.member_id.in_(member_ids)
        )
    )
    return {tuple(row) for row in rows}  # type: ignore[misc]


def question(session: Session, program: Program, key: str, kind: str = "multichoice") -> int:
    found = programs.add_question(
        session,
        program,
        key=key,
        kind=kind,
        prompt={"en": "Which?"},
        choices=(
            [{"key": k, "label": {"en": k}} for k in ("running", "skiing", "ski & fjell")]
            if kind != "text"
            else None
        ),
    )
    return found.id


async def test_an_answers_choice_rows_follow_the_answer(loyalty_db: Database) -> None:
    """Each key once, replaced with the answer, none for a text answer, gone with an erased
    member's answers and with a deleted question."""

    def work(session: Session) -> tuple[list[set[tuple[int, str, int]]], int, int, int, int]:
        program = club(session)
        sport, other, note = (
            question(session, program, "sport"),
            question(session, program, "other"),
            question(session, program, "note", "text"),
        )
        kari, ola = member(session, program), member(session, program)
        seen = []
        profile.save_answer(session, kari, sport, ["running", "skiing", "running"], NOW)
        profile.save_answer(session, kari, other, ["ski & fjell"], NOW)
        profile.save_answer(session, ola, sport, ["skiing"], NOW)
        profile.save_answer(session, ola, note, ["skiing"], NOW, free_text=True)
        seen.append(choices_of(session, kari.id, ola.id))
        profile.save_answer(session, kari, sport, ["skiing"], NOW + DAY)
        seen.append(choices_of(session, kari.id))
        members.erase(session, ola, NOW + DAY)
        seen.append(choices_of(session, ola.id))
        session.execute(delete(ProfileQuestion).where(ProfileQuestion.id == other))
        seen.append(choices_of(session, kari.id))
        return seen, sport, other, kari.id, ola.id

    seen, sport, other, kari, ola = await loyalty_db.run(work)
    assert seen == [
        {(sport, "running", kari), (sport, "skiing", kari), (other, "ski & fjell", kari)}
        | {(sport, "skiing", ola)},
        {(sport, "skiing", kari), (other, "ski & fjell", kari)},
        set(),
        {(sport, "skiing", kari)},
    ]


async def test_the_store_a_member_joined_at_is_marked_once(loyalty_db: Database) -> None:
    """Enrolled at a till, a member is in their store's segment before buying anything; joined
    again at another till (after STOP) they stay the first store's, as the sign-ups per store
    count them."""

    def work(session: Session) -> list[int]:
        program = club(session)
        kari = None
        for day, store in enumerate(("Torshov", "Sandvika")):
            if kari is not None:
                members.set_status(kari, members.STOPPED, NOW + day * DAY)
            kari = enrolment.enrol(
                session,
                program,
                "+4791112233",
                wording_id="consent.wording",
                wording_language="nb",
                wording_text="Ja takk",
                channel="pos",
                evidence=f"till-{store}",
                now=NOW + day * DAY,
                store=store,
            ).member
        session.flush()
        return [
            segments.count(session, program, {"field": "store", "op": "in", "value": [s]}, NOW)
            for s in ("Torshov", "Sandvika")
        ]

    assert await loyalty_db.run(work) == [1, 0]


async def test_0014_fills_the_rows_as_their_writers_keep_them(
    database_url: str, tmp_path: Path
) -> None:
    """Sales and answers made before migration 0014 are in member_marks and answer_choices
    after it: the same rows purchases.record and profile.save_answer write."""
    url = await own_database(database_url, tmp_path)
    db = open_database(url)
    try:

        def work(session: Session) -> None:
            for _ in range(2):
                program = club(session)
                sport = question(session, program, "sport")
                note = question(session, program, "note", "text")
                buyers = [member(session, program) for _ in range(3)]
                buyers[0].store = "Majorstuen"  # as enrolment keeps it, with its mark
                joined = [(marks.JOINED, "Majorstuen")]
                marks.mark(session.connection(), program.id, buyers[0].id, joined, T0)
                for i, (buyer, store, categories) in enumerate(
                    itertools.product(
                        buyers, (None, "Torshov", "Sandvika"), ([None], ["shoes", "skiing"])
                    )
                ):
                    at = NOW - (i % 5) * DAY - i * dt.timedelta(minutes=7)
                    sell(session, program, buyer.id, store, categories, at, f"F{next(_SALES)}")
                profile.save_answer(session, buyers[0], sport, ["running", "skiing"], NOW)
                profile.save_answer(session, buyers[1], sport, ["ski & fjell"], NOW)
                profile.save_answer(session, buyers[2], note, ["running"], NOW, free_text=True)

        await db.run(work)
    finally:
        await db.close()

    def every_row(conn: Connection) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
        return (
            {tuple(row) for row in conn.execute(select(_MARKS))},
            {tuple(row) for row in conn.execute(select(_CHOICES))},
        )

    try:
        marked, choices = await on_connection(url, every_row)
        assert len(marked) > 20
        assert len(choices) == 6
        await migrate.downgrade(url, "0013")
        await migrate.upgrade(url)
        assert await on_connection(url, every_row) == (marked, choices)
    finally:
        await migrate.upgrade(url)
