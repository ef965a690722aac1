"""Segments: a filter over a club's members, stored as data, validated, and counted by one SQL
query that selects exactly the members a plain reading of the filter would, on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.cli.demo import DEMO_QUESTIONS
from store.clubs import programs
from store.database import Database
from store.errors import InvalidInput
from store.loyalty import ledger, marks, purchases, tiers
from store.loyalty.earning import Line
from store.members import member_search, members, profile
from store.models import (
    LedgerEntry,
    Member,
    PointLot,
    ProfileQuestion,
    Program,
    Purchase,
    PurchaseLine,
    Tier,
)
from store.outreach import campaigns, segments
from tests.store.loyalty_helpers import at, club, error_of, fingerprint

NOW = at(2026, 3, 10)  # 13:00 in Oslo
DAY = dt.timedelta(days=1)
_PHONES = itertools.count()
_IDS = itertools.count()


# --- a club and its members, made through the store ---------------------------------------------


def demo_club(session: Session) -> Program:
    """A club in Oslo with the default ladder and the demo's questions (activities is a
    multichoice of running, cycling and skiing)."""
    program = club(session)
    for question in DEMO_QUESTIONS:
        programs.add_question(session, program, **question)
    return program


def person(
    session: Session,
    program: Program,
    *,
    phone: str | None = None,
    status: str = members.ACTIVE,
    language: str | None = "nb",
    birthday: dt.date | None = None,
    joined: dt.datetime | None = NOW - 400 * DAY,
    store: str | None = None,
) -> Member:
    phone = phone or f"+4791{next(_PHONES):06d}"
    member = members.create(session, program, phone, status=status, now=NOW - 500 * DAY)
    member.language = language
    member.birthday = birthday
    member.joined_at = joined if status != members.PENDING else None
    member.store = store  # as enrolment keeps it, with its mark
    marks.mark(session.connection(), program.id, member.id, [(marks.JOINED, store)], NOW)
    session.flush()
    return member


def buy(
    session: Session,
    program: Program,
    member: Member,
    when: dt.datetime,
    amount: int = 10_000,
    *,
    store: str | None = None,
    categories: Sequence[str | None] = (None,),
) -> None:
    """A purchase through store.loyalty.purchases.record: one line per category, `amount` shared."""
    lines = [Line(qty=1, amount_minor=amount // len(categories), category=c) for c in categories]
    transaction_id = f"T{next(_IDS)}"
    purchases.record(
        session,
        program,
        member.id,
        transaction_id=transaction_id,
        lines=lines,
        occurred_at=when,
        fingerprint=fingerprint(member.id, transaction_id),
        now=when,
        store=store,
    )


def answer(session: Session, program: Program, member: Member, key: str, value: list[str]) -> None:
    question = session.scalar(
        select(ProfileQuestion).where(
            ProfileQuestion.program_id == program.id, ProfileQuestion.key == key
        )
    )
    assert question is not None
    profile.save_answer(session, member, question.id, value, NOW - 100 * DAY)


def picked(
    session: Session,
    program: Program,
    people: dict[str, Member],
    filters: Sequence[dict[str, Any]],
    now: dt.datetime = NOW,
) -> list[set[str]]:
    """The names each filter selects (members_query), checked against count()."""
    names = {m.id: name for name, m in people.items()}
    found = []
    for f in filters:
        ids = set(session.scalars(segments.members_query(f, program=program, now=now)))
        assert segments.count(session, program, f, now) == len(ids)
        found.append({names[i] for i in ids})
    return found


def leaf(field: str, op: str, value: Any, **extra: Any) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value, **extra}


def no(f: dict[str, Any]) -> dict[str, Any]:
    return {"not": f}


# --- each field -----------------------------------------------------------------------------------


async def test_consent_is_the_members_status(loyalty_db: Database) -> None:
    """Only active members have marketing consent: stopped, pending and erased ones don't."""

    def work(session: Session) -> list[set[str]]:
        program = demo_club(session)
        people = {
            status: person(session, program, status=status)
            for status in (members.ACTIVE, members.STOPPED, members.PENDING)
        }
        people["erased"] = person(session, program)
        members.erase(session, people["erased"], NOW)
        session.flush()
        return picked(
            session,
            program,
            people,
            [leaf("consent", "is", True), leaf("consent", "is", False)],
        )

    assert await loyalty_db.run(work) == [{"active"}, {"stopped", "pending"}]


async def test_erased_members_are_in_no_segment(loyalty_db: Database) -> None:
    """A segment counts who the member list shows: an erased number is in none, whatever the
    filter (everyone, a negation, no consent), and a campaign's preview does not count it."""

    def work(session: Session) -> tuple[list[int], int, int]:
        program = demo_club(session)
        for status in (members.ACTIVE, members.ACTIVE, members.STOPPED):
            person(session, program, status=status)
        for _ in range(2):
            members.erase(session, person(session, program), NOW)
        session.flush()
        filters = [
            {"all": []},
            {"any": []},
            no(leaf("consent", "is", True)),
            no(leaf("language", "in", ["sv"])),
            leaf("joined_days", "gte", 0),
        ]
        listed = member_search.search(session, program, "", limit=10).total
        draft = campaigns.try_broadcast(
            session, program, now=NOW, name="x", texts={"nb": "Hei!"}, segment=None
        )
        return (
            [segments.count(session, program, f, NOW) for f in filters],
            listed,
            draft.preview.matching,
        )

    counts, listed, matching = await loyalty_db.run(work)
    assert listed == 3
    assert counts == [3, 0, 1, 3, 3]
    assert matching == 3


async def test_language_in_a_list(loyalty_db: Database) -> None:
    """A member without a language is in no list, and so in the negation of every list."""

    def work(session: Session) -> list[set[str]]:
        program = demo_club(session)
        people = {
            str(lang): person(session, program, language=lang) for lang in ("nb", "sv", "en", None)
        }
        return picked(
            session,
            program,
            people,
            [
                leaf("language", "in", ["nb"]),
                leaf("language", "in", ["SV", "en"]),
                no(leaf("language", "in", ["nb"])),
            ],
        )

    assert await loyalty_db.run(work) == [{"nb"}, {"sv", "en"}, {"sv", "en", "None"}]


async def test_country_from_the_phones_calling_code(loyalty_db: Database) -> None:
    """+47 is Norway, +46 Sweden, +45 Denmark, +358 Finland; an erased member is in none (and
    in no negation either: erased, they are no one)."""

    def work(session: Session) -> list[set[str]]:
        program = demo_club(session)
        people = {
            "no": person(session, program, phone="+4791000001"),
            "se": person(session, program, phone="+46701000001"),
            "dk": person(session, program, phone="+4520000001"),
            "fi": person(session, program, phone="+358401000001"),
            "erased": person(session, program, phone="+4791000002"),
        }
        members.erase(session, people["erased"], NOW)
        session.flush()
        return picked(
            session,
            program,
            people,
            [
                leaf("country", "in", ["NO"]),
                leaf("country", "in", ["se", "FI"]),
                no(leaf("country", "in", ["NO"])),
                leaf("country", "in", ["IS"]),
            ],
        )

    assert await loyalty_db.run(work) == [
        {"no"},
        {"se", "fi"},
        {"se", "dk", "fi"},
        set(),
    ]


async def test_age_in_whole_years_in_the_clubs_time_zone(loyalty_db: Database) -> None:
    """23:30 UTC on 10 March is 11 March in Oslo: born 11 March 2008 is 18 there already.
    Members without a birthday match no age condition (but its negation)."""
    late = at(2026, 3, 10, 23, 30)

    def work(session: Session) -> list[set[str]]:
        program = demo_club(session)
        people = {
            "18 today": person(session, program, birthday=dt.date(2008, 3, 11)),
            "18 tomorrow": person(session, program, birthday=dt.date(2008, 3, 12)),
            "40": person(session, program, birthday=dt.date(1986, 1, 1)),
            "unknown": person(session, program),
        }
        return picked(
            session,
            program,
            people,
            [
                leaf("age", "gte", 18),
                leaf("age", "lte", 17),
                leaf("age", "between", [17, 18]),
                no(leaf("age", "gte", 18)),
                leaf("age", "gte", 0),
                leaf("age", "between", [40, 40]),
            ],
            now=late,
        )

    assert await loyalty_db.run(work) == [
        {"18 today", "40"},
        {"18 tomorrow"},
        {"18 today", "18 tomorrow"},
        {"18 tomorrow", "unknown"},
        {"18 today", "18 tomorrow", "40"},
        {"40"},
    ]


async def test_a_leap_day_birthday_comes_on_the_first_of_march(loyalty_db: Database) -> None:
    """Born 29 February 2008: 17 on 28 February 2026, 18 on 1 March; and on 29 February 2028
    whoever was born 28 February 2010 is 18."""

    def work(session: Session) -> list[set[str]]:
        program = demo_club(session)
        people = {
            "leap": person(session, program, birthday=dt.date(2008, 2, 29)),
            "28th": person(session, program, birthday=dt.date(2010, 2, 28)),
            "1st": person(session, program, birthday=dt.date(2010, 3, 1)),
        }
        adult = [leaf("age", "gte", 18)]
        return [
            *picked(session, program, people, adult, now=at(2026, 2, 28)),
            *picked(session, program, people, adult, now=at(2026, 3, 1)),
            *picked(session, program, people, adult, now=at(2028, 2, 29)),
        ]

    assert await loyalty_db.run(work) == [set(), {"leap"}, {"leap", "28th"}]


async def test_birthday_month(loyalty_db: Database) -> None:
    def work(session: Session) -> list[set[str]]:
        program = demo_club(session)
        people = {
            "march": person(session, program, birthday=dt.date(1990, 3, 31)),
            "december": person(session, program, birthday=dt.date(2001, 12, 1)),
            "unknown": person(session, program),
        }
        return picked(
            session,
            program,
            people,
            [
                leaf("birthday_month", "in", [3]),
                leaf("birthday_month", "in", [12, 1]),
                no(leaf("birthday_month", "in", [3])),
            ],
        )

    assert await loyalty_db.run(work) == [{"march"}, {"december"}, {"december", "unknown"}]


async def test_answer_to_a_profile_question(loyalty_db: Database) -> None:
    """ "in" matches a member who chose any of the choices (as they answer now: a changed
    answer's old choices no longer count); "answered" whether there is an answer at all. An
    erased member's answers are gone, and they are in no segment."""

    def work(session: Session) -> list[set[str]]:
        program = demo_club(session)
        names = ("runner", "skier", "silent", "gone", "changed")
        people = {name: person(session, program) for name in names}
        answer(session, program, people["runner"], "activities", ["running", "cycling"])
        answer(session, program, people["skier"], "activities", ["skiing"])
        answer(session, program, people["changed"], "activities", ["skiing", "cycling"])
        answer(session, program, people["changed"], "activities", ["running"])
        answer(session, program, people["gone"], "activities", ["skiing"])
        members.erase(session, people["gone"], NOW)
        session.flush()
        activities = {"question": "activities"}
        return picked(
            session,
            program,
            people,
            [
                leaf("answer", "in", ["running"], **activities),
                leaf("answer", "in", ["skiing", "cycling"], **activities),
                leaf("answer", "answered", True, **activities),
                leaf("answer", "answered", False, **activities),
                no(leaf("answer", "in", ["running"], **activities)),
                leaf("answer", "answered", True, question="no-such-question"),
            ],
        )

    assert await loyalty_db.run(work) == [
        {"runner", "changed"},
        {"runner", "skier"},
        {"runner", "skier", "changed"},
        {"silent"},
        {"skier", "silent"},
        set(),
    ]


async def test_a_choice_matches_whole_elements_only_whatever_its_key(
    loyalty_db: Database,
) -> None:
    """A key inside a longer element, or quoted inside one, is not that choice; keys with
    spaces, quotes or letters beyond ASCII match exactly too."""
    odd = ["løping", 'say "hi"', "ski & fjell"]

    def work(session: Session) -> list[set[str]]:
        program = demo_club(session)
        programs.add_question(
            session,
            program,
            key="odd",
            kind="multichoice",
            prompt={"en": "Odd?"},
            choices=[{"key": k, "label": {"en": k}} for k in odd],
        )
        people = {name: person(session, program) for name in ("runner", "shoes", "quoted", "odd")}
        answer(session, program, people["runner"], "activities", ["skiing", "running"])
        answer(session, program, people["shoes"], "activities", ["running-shoes", "run"])
        answer(session, program, people["quoted"], "activities", ['say "running"', "a,"])
        answer(session, program, people["odd"], "odd", ['say "hi"', "løping"])
        answer(session, program, people["runner"], "odd", ["ski & fjell"])
        activities = {"question": "activities"}
        return picked(
            session,
            program,
            people,
            [
                leaf("answer", "in", ["running"], **activities),
                leaf("answer", "in", ["run", "skiing"], **activities),
                leaf("answer", "in", ["løping"], question="odd"),
                leaf("answer", "in", ['say "hi"'], question="odd"),
                leaf("answer", "in", ["ski & fjell", "say"], question="odd"),
                leaf("answer", "in", ["hi"], question="odd"),
            ],
        )

    assert await loyalty_db.run(work) == [
        {"runner"},
        {"runner", "shoes"},
        {"odd"},
        {"odd"},
        {"runner"},
        set(),
    ]


async def test_store_where_joined_or_bought(loyalty_db: Database) -> None:
    def work(session: Session) -> list[set[str]]:
        program = demo_club(session)
        people = {
            "joined torshov": person(session, program, store="Torshov"),
            "bought sandvika": person(session, program),
            "both": person(session, program, store="Sandvika"),
            "none": person(session, program),
        }
        buy(session, program, people["bought sandvika"], NOW - 3 * DAY, store="Sandvika")
        buy(session, program, people["both"], NOW - 3 * DAY, store="Torshov")
        return picked(
            session,
            program,
            people,
            [
                leaf("store", "in", ["Torshov"]),
                leaf("store", "in", ["Sandvika"]),
                no(leaf("store", "in", ["Torshov"])),
            ],
        )

    assert await loyalty_db.run(work) == [
        {"joined torshov", "both"},
        {"bought sandvika", "both"},
        {"bought sandvika", "none"},
    ]


async def test_tier_by_position_on_the_ladder(loyalty_db: Database) -> None:
    """Position 0 is the bottom tier, held as no tier at all; a club without a ladder has no
    tier to match."""

    def work(session: Session) -> list[set[str]]:
        program = demo_club(session)
        steps = tiers.ladder(session, program.id)
        people = {name: person(session, program) for name in ("bronze", "silver", "gold")}
        people["silver"].tier_id = steps[1].id
        people["gold"].tier_id = steps[2].id
        session.flush()
        cases = [
            leaf("tier", "in", [0]),
            leaf("tier", "in", [1, 2]),
            no(leaf("tier", "in", [0])),
            no(leaf("tier", "in", [2])),
        ]
        found = picked(session, program, people, cases)
        session.execute(delete(Tier).where(Tier.program_id == program.id))
        session.expire_all()
        return found + picked(session, program, people, [cases[0], cases[2]])

    assert await loyalty_db.run(work) == [
        {"bronze"},
        {"silver", "gold"},
        {"silver", "gold"},
        {"bronze", "silver"},
        set(),
        {"bronze", "silver", "gold"},
    ]


async def test_points_are_the_balance_now(loyalty_db: Database) -> None:
    """The balance counts open lots that have not ended, whether or not the daily expiry has
    closed them; a member without lots has 0."""

    def work(session: Session) -> list[set[str]]:
        program = demo_club(session)
        people = {
            name: person(session, program) for name in ("rich", "ended", "spent", "some", "none")
        }

        def credit(name: str, points: int, when: dt.datetime) -> None:
            ledger.credit(session, program, people[name].id, points, ledger.ADJUST, when)

        long_ago = at(2023, 6, 1)  # a 24-month lot that ended in June 2025
        credit("rich", 500, NOW - 10 * DAY)
        credit("ended", 300, long_ago)
        credit("spent", 200, NOW - 10 * DAY)
        ledger.debit(session, program.id, people["spent"].id, 200, ledger.SPEND, NOW - 5 * DAY)
        credit("some", 300, long_ago)
        credit("some", 50, NOW - 10 * DAY)
        return picked(
            session,
            program,
            people,
            [
                leaf("points", "gte", 100),
                leaf("points", "gte", 1),
                leaf("points", "lte", 50),
                leaf("points", "between", [50, 500]),
                leaf("points", "between", [0, 0]),
                leaf("points", "gte", 0),
                no(leaf("points", "gte", 100)),
                no(leaf("points", "lte", 0)),
            ],
        )

    everyone = {"rich", "ended", "spent", "some", "none"}
    assert await loyalty_db.run(work) == [
        {"rich"},
        {"rich", "some"},
        {"ended", "spent", "some", "none"},
        {"rich", "some"},
        {"ended", "spent", "none"},
        everyone,
        everyone - {"rich"},
        {"rich", "some"},
    ]


async def test_points_under_an_or_and_a_not_are_the_balance_too(loyalty_db: Database) -> None:
    """Under an OR (on PostgreSQL the members holding a lot ended unsettled are found once and
    their balances looked up as one set), twice in one filter, and negated there: the same
    balance as each leaf alone."""

    def work(session: Session) -> list[set[str]]:
        program = demo_club(session)
        people = {name: person(session, program) for name in ("rich", "ended", "some", "none")}

        def credit(name: str, points: int, when: dt.datetime) -> None:
            ledger.credit(session, program, people[name].id, points, ledger.ADJUST, when)

        long_ago = at(2023, 6, 1)  # ended in June 2025, not settled by the daily job
        credit("rich", 500, NOW - 10 * DAY)
        credit("ended", 300, long_ago)
        credit("some", 300, long_ago)
        credit("some", 50, NOW - 10 * DAY)
        nobody = leaf("member", "in", [people["none"].id])
        return picked(
            session,
            program,
            people,
            [
                {"any": [leaf("points", "gte", 100), nobody]},
                {"any": [leaf("points", "gte", 1), nobody]},
                {"any": [leaf("points", "lte", 50), leaf("points", "gte", 400)]},
                {"any": [no(leaf("points", "between", [1, 100])), nobody]},
                no({"all": [leaf("points", "gte", 1), no(nobody)]}),
            ],
        )

    assert await loyalty_db.run(work) == [
        {"rich", "none"},
        {"rich", "some", "none"},
        {"rich", "ended", "some", "none"},
        {"rich", "ended", "none"},
        {"ended", "none"},
    ]


async def test_purchase_count_and_amount_count_zero_too(loyalty_db: Database) -> None:
    """A member who never bought has 0 purchases for 0 kr, in any window; "days" keeps the
    purchases made less than that many days ago."""

    def work(session: Session) -> list[set[str]]:
        program = demo_club(session)
        people = {name: person(session, program) for name in ("none", "one old", "three")}
        buy(session, program, people["one old"], NOW - 400 * DAY, 10_000)
        buy(session, program, people["three"], NOW - 5 * DAY, 5_000)
        buy(session, program, people["three"], NOW - 20 * DAY, 15_000)
        buy(session, program, people["three"], NOW - 200 * DAY, 30_000)
        return picked(
            session,
            program,
            people,
            [
                leaf("purchase_count", "gte", 1),
                leaf("purchase_count", "lte", 1),
                leaf("purchase_count", "between", [0, 0]),
                leaf("purchase_count", "gte", 2, days=30),
                leaf("purchase_count", "lte", 0, days=30),
                leaf("purchase_count", "gte", 1, days=365),
                leaf("purchase_count", "between", [3, 3]),
                no(leaf("purchase_count", "gte", 1)),
                leaf("purchase_amount", "gte", 10_000),
                leaf("purchase_amount", "lte", 10_000),
                leaf("purchase_amount", "gte", 20_000, days=30),
                leaf("purchase_amount", "between", [1, 5_000], days=10),
                leaf("purchase_amount", "lte", 0, days=10),
                no(leaf("purchase_amount", "lte", 0, days=10)),
            ],
        )

    assert await loyalty_db.run(work) == [
        {"one old", "three"},
        {"none", "one old"},
        {"none"},
        {"three"},
        {"none", "one old"},
        {"three"},
        {"three"},
        {"none"},
        {"one old", "three"},
        {"none", "one old"},
        {"three"},
        {"three"},
        {"none", "one old"},
        {"three"},
    ]


async def test_days_since_the_last_purchase(loyalty_db: Database) -> None:
    """Whole days since the last purchase; members who never bought match none of it (NOT
    purchase_count gte 1 finds them)."""

    def work(session: Session) -> list[set[str]]:
        program = demo_club(session)
        people = {name: person(session, program) for name in ("recent", "30 days", "old", "never")}
        buy(session, program, people["recent"], NOW - 10 * DAY)
        buy(session, program, people["recent"], NOW - 300 * DAY)
        buy(session, program, people["30 days"], NOW - 30 * DAY)
        buy(session, program, people["old"], NOW - 100 * DAY)
        buy(session, program, people["old"], NOW - 300 * DAY)
        return picked(
            session,
            program,
            people,
            [
                leaf("days_since_purchase", "lte", 30),
                leaf("days_since_purchase", "lte", 29),
                leaf("days_since_purchase", "gte", 30),
                leaf("days_since_purchase", "gte", 31),
                leaf("days_since_purchase", "between", [30, 99]),
                leaf("days_since_purchase", "gte", 0),
                no(leaf("days_since_purchase", "lte", 30)),
                no(leaf("days_since_purchase", "gte", 30)),
                no(leaf("purchase_count", "gte", 1)),
            ],
        )

    assert await loyalty_db.run(work) == [
        {"recent", "30 days"},
        {"recent"},
        {"30 days", "old"},
        {"old"},
        {"30 days"},
        {"recent", "30 days", "old"},
        {"old", "never"},
        {"recent", "never"},
        {"never"},
    ]


async def test_category_bought(loyalty_db: Database) -> None:
    def work(session: Session) -> list[set[str]]:
        program = demo_club(session)
        people = {name: person(session, program) for name in ("skis", "old skis", "mixed", "none")}
        buy(session, program, people["skis"], NOW - 10 * DAY, categories=["skiing"])
        buy(session, program, people["old skis"], NOW - 200 * DAY, categories=["skiing"])
        buy(session, program, people["mixed"], NOW - 5 * DAY, categories=["running", "service"])
        buy(session, program, people["none"], NOW - 5 * DAY, categories=[None])
        return picked(
            session,
            program,
            people,
            [
                leaf("category", "in", ["skiing"]),
                leaf("category", "in", ["skiing"], days=30),
                leaf("category", "in", ["service", "tennis"]),
                no(leaf("category", "in", ["skiing"])),
                no(leaf("category", "in", ["skiing"], days=30)),
            ],
        )

    assert await loyalty_db.run(work) == [
        {"skis", "old skis"},
        {"skis"},
        {"mixed"},
        {"mixed", "none"},
        {"old skis", "mixed", "none"},
    ]


async def test_days_since_joining(loyalty_db: Database) -> None:
    """A member who never joined (pending) has no such days."""

    def work(session: Session) -> list[set[str]]:
        program = demo_club(session)
        people = {
            "new": person(session, program, joined=NOW - 5 * DAY),
            "30 days": person(session, program, joined=NOW - 30 * DAY),
            "old": person(session, program, joined=NOW - 400 * DAY),
            "pending": person(session, program, status=members.PENDING),
        }
        return picked(
            session,
            program,
            people,
            [
                leaf("joined_days", "lte", 30),
                leaf("joined_days", "lte", 29),
                leaf("joined_days", "gte", 30),
                leaf("joined_days", "between", [0, 10]),
                no(leaf("joined_days", "lte", 30)),
            ],
        )

    assert await loyalty_db.run(work) == [
        {"new", "30 days"},
        {"new"},
        {"30 days", "old"},
        {"new"},
        {"old", "pending"},
    ]


# --- combining, composing, clubs ------------------------------------------------------------------

RELATED = [
    leaf("answer", "in", ["running"], question="activities"),
    no(leaf("answer", "answered", True, question="activities")),
    leaf("store", "in", ["Torshov"]),
    no(leaf("store", "in", ["Torshov"])),
    leaf("points", "gte", 1),
    leaf("points", "between", [1, 150]),
    leaf("points", "lte", 100),
    leaf("purchase_count", "gte", 1, days=30),
    leaf("purchase_count", "lte", 1),
    no(leaf("purchase_count", "gte", 2)),
    leaf("purchase_amount", "gte", 15_000),
    leaf("days_since_purchase", "lte", 15),
    leaf("days_since_purchase", "between", [15, 100]),
    no(leaf("days_since_purchase", "gte", 50)),
    leaf("category", "in", ["skiing"], days=30),
    no(leaf("category", "in", ["skiing"])),
]


async def test_a_narrow_filter_selects_the_same_members_however_it_is_run(
    loyalty_db: Database,
) -> None:
    """Behind a narrow condition on the members' own columns (one birthday month) SQLite
    probes each member's rows instead of building whole sets: the members are the same."""

    def work(session: Session) -> list[tuple[set[str], set[str]]]:
        program = demo_club(session)
        march = dt.date(1990, 3, 3)
        people = {
            name: person(session, program, birthday=march, store=store)
            for name, store in (("a", "Torshov"), ("b", None), ("c", "Sandvika"), ("d", None))
        }
        answer(session, program, people["a"], "activities", ["running"])
        answer(session, program, people["c"], "activities", ["skiing"])
        buy(session, program, people["b"], NOW - 10 * DAY, 10_000, categories=["skiing"])
        buy(session, program, people["b"], NOW - 60 * DAY, 10_000, store="Torshov")
        buy(session, program, people["c"], NOW - 40 * DAY, 5_000, categories=["skiing"])
        buy(session, program, people["d"], NOW - 200 * DAY, 20_000, categories=["service"])
        in_march = leaf("birthday_month", "in", [3])
        return [
            tuple(picked(session, program, people, [f, {"all": [in_march, f]}]))  # type: ignore[misc]
            for f in RELATED
        ]

    found = await loyalty_db.run(work)
    assert all(alone == narrowed for alone, narrowed in found), found
    assert len({frozenset(alone) for alone, _ in found}) > 5  # the cases tell members apart


async def test_all_any_and_not(loyalty_db: Database) -> None:
    """{"all": []} is everyone, {"any": []} no one; not is the complement at any depth."""

    def work(session: Session) -> list[set[str]]:
        program = demo_club(session)
        people = {
            "nb active": person(session, program),
            "sv active": person(session, program, language="sv"),
            "nb stopped": person(session, program, status=members.STOPPED),
            "none": person(session, program, language=None, status=members.STOPPED),
        }
        nb = leaf("language", "in", ["nb"])
        active = leaf("consent", "is", True)
        return picked(
            session,
            program,
            people,
            [
                {"all": []},
                {"any": []},
                no({"all": []}),
                {"all": [nb, active]},
                {"any": [nb, active]},
                no({"any": [nb, active]}),
                no(no({"all": [nb, active]})),
                {"all": [active, {"any": [no(nb), {"all": []}]}]},
                {"any": [{"all": [nb, no(active)]}, no(nb)]},
            ],
        )

    assert await loyalty_db.run(work) == [
        {"nb active", "sv active", "nb stopped", "none"},
        set(),
        set(),
        {"nb active"},
        {"nb active", "sv active", "nb stopped"},
        {"none"},
        {"nb active"},
        {"nb active", "sv active"},
        {"nb stopped", "sv active", "none"},
    ]


async def test_the_clause_composes_and_a_range_of_ids_is_pushed_down(
    loyalty_db: Database,
) -> None:
    """The clause is a WHERE over members that takes more conditions (a planner's chunk of
    ids); id_range gives the same members as the whole club's query cut to the range."""

    def work(session: Session) -> tuple[list[int], list[int], list[int]]:
        program = demo_club(session)
        people = [person(session, program) for _ in range(8)]
        for i, member in enumerate(people):
            if i % 2:
                buy(session, program, member, NOW - i * DAY, 1000 * (i + 1))
        f = {"all": [leaf("purchase_amount", "gte", 3000), no(leaf("points", "gte", 70))]}
        whole = list(session.scalars(segments.members_query(f, program=program, now=NOW)))
        low, high = people[2].id, people[6].id
        table = Member.__table__
        dialect = session.get_bind().dialect.name
        clause = segments.compile_filter(
            f, program_id=program.id, zone="Europe/Oslo", now=NOW, dialect=dialect
        )
        composed = session.scalars(
            select(table.c.id)
            .where(table.c.program_id == program.id, table.c.id > low, table.c.id <= high, clause)
            .order_by(table.c.id)
        )
        pushed = segments.compile_filter(
            f,
            program_id=program.id,
            zone="Europe/Oslo",
            now=NOW,
            dialect=dialect,
            id_range=(low, high),
        )
        ranged = session.scalars(
            select(table.c.id).where(table.c.program_id == program.id, pushed).order_by(table.c.id)
        )
        expected = [m.id for m in people if low < m.id <= high and m.id in whole]
        return expected, list(composed), list(ranged)

    expected, composed, ranged = await loyalty_db.run(work)
    assert expected  # members 3 and 5 (amount 4,000 and 6,000; 40 and 60 points)
    assert composed == expected
    assert ranged == expected


async def test_another_clubs_members_and_rows_never_count(loyalty_db: Database) -> None:
    def work(session: Session) -> list[int]:
        mine, theirs = demo_club(session), demo_club(session)
        person(session, mine)
        for _ in range(3):
            other = person(session, theirs, store="Torshov")
            buy(session, theirs, other, NOW - DAY, 50_000, store="Torshov", categories=["skiing"])
        filters = [
            {"all": []},
            leaf("store", "in", ["Torshov"]),
            leaf("points", "gte", 1),
            leaf("purchase_count", "lte", 0),
            leaf("category", "in", ["skiing"]),
            leaf("tier", "in", [0]),
        ]
        return [segments.count(session, mine, f, NOW) for f in filters]

    assert await loyalty_db.run(work) == [1, 0, 0, 1, 0, 1]


async def test_members_picked_by_id(loyalty_db: Database) -> None:
    """ "These members" (the dashboard's top 10): their ids, and another club's ids select no
    one; the negation is everyone else."""

    def work(session: Session) -> list[set[str]]:
        mine, theirs = demo_club(session), demo_club(session)
        people = {name: person(session, mine) for name in ("a", "b", "c")}
        stranger = person(session, theirs)
        ids = [people["a"].id, people["c"].id, stranger.id]
        return picked(
            session,
            mine,
            people,
            [
                leaf("member", "in", ids),
                no(leaf("member", "in", ids)),
                {"all": [leaf("member", "in", ids), leaf("consent", "is", True)]},
                leaf("member", "in", [stranger.id]),
            ],
        )

    assert await loyalty_db.run(work) == [{"a", "c"}, {"b"}, {"a", "c"}, set()]


async def test_a_thousand_members_in_every_condition_fit_one_statement(
    loyalty_db: Database,
) -> None:
    """50 conditions of 1,000 ids each are more ids than SQLite takes as parameters."""

    def work(session: Session) -> int:
        program = demo_club(session)
        first = person(session, program)
        ids = list(range(first.id, first.id + segments.MAX_MEMBERS))
        return segments.count(
            session, program, {"any": [leaf("member", "in", ids)] * segments.MAX_LEAVES}, NOW
        )

    assert await loyalty_db.run(work) == 1


# --- saved segments -------------------------------------------------------------------------------


async def test_a_segment_is_saved_replaced_listed_and_deleted(loyalty_db: Database) -> None:
    def work(session: Session) -> dict[str, Any]:
        program = demo_club(session)
        first = segments.save(
            session,
            program,
            " Runners ",
            {"all": [leaf("answer", "in", ["running"], question="activities")]},
            NOW,
        )
        segments.save(session, program, "Adults", leaf("age", "gte", 18), NOW)
        later = NOW + DAY
        again = segments.save(session, program, "Runners", leaf("language", "in", ["NB"]), later)
        listed = [s.name for s in segments.all_of(session, program.id)]
        got = segments.get(session, program.id, "Runners")
        seen = {
            "same": again.id == first.id,
            "filter": got.filter,
            "times": (got.created_at, got.updated_at),
            "listed": listed,
        }
        segments.delete(session, program.id, "Adults")
        seen["after delete"] = [s.name for s in segments.all_of(session, program.id)]
        missing = [
            error_of(lambda: segments.get(session, program.id, "Adults")),
            error_of(lambda: segments.delete(session, program.id, "Adults")),
        ]
        seen["missing"] = [(type(e).__name__, getattr(e, "key", None)) for e in missing]
        return seen

    seen = await loyalty_db.run(work)
    assert seen["same"]
    assert seen["filter"] == {"field": "language", "op": "in", "value": ["nb"]}
    assert seen["times"] == (NOW, NOW + DAY)
    assert seen["listed"] == ["Adults", "Runners"]
    assert seen["after delete"] == ["Runners"]
    assert seen["missing"] == [("NotFound", "Adults")] * 2


async def test_a_segment_is_renamed_unless_the_name_is_taken(loyalty_db: Database) -> None:
    def work(session: Session) -> dict[str, Any]:
        program = demo_club(session)
        other = demo_club(session)
        segments.save(session, program, "Runners", leaf("age", "gte", 18), NOW)
        segments.save(session, program, "Adults", leaf("age", "gte", 18), NOW)
        segments.save(session, other, "Joggers", leaf("age", "gte", 18), NOW)
        renamed = segments.rename(session, program.id, "Runners", " Joggers ")
        taken = error_of(lambda: segments.rename(session, program.id, "Joggers", "Adults"))
        empty = error_of(lambda: segments.rename(session, program.id, "Joggers", "  "))
        missing = error_of(lambda: segments.rename(session, program.id, "Runners", "X"))
        same = segments.rename(session, program.id, "Adults", "Adults")
        return {
            "renamed": renamed.name,
            "listed": [s.name for s in segments.all_of(session, program.id)],
            "other": [s.name for s in segments.all_of(session, other.id)],
            "errors": [
                (type(e).__name__, getattr(e, "field", None), getattr(e, "reason", None))
                for e in (taken, empty)
            ],
            "missing": type(missing).__name__,
            "same": same.name,
        }

    seen = await loyalty_db.run(work)
    assert seen["renamed"] == "Joggers"
    assert seen["listed"] == ["Adults", "Joggers"]
    assert seen["other"] == ["Joggers"]
    assert seen["errors"] == [
        ("InvalidInput", "name", "the club has a segment named 'Adults' already"),
        ("InvalidInput", "name", "a segment needs a name"),
    ]
    assert seen["missing"] == "NotFound"
    assert seen["same"] == "Adults"


async def test_the_campaigns_not_yet_sent_with_a_segment_are_named(loyalty_db: Database) -> None:
    """They keep the filter they were made with: deleting the segment leaves it to them."""
    from store.outreach import campaigns

    def work(session: Session) -> dict[str, Any]:
        program = demo_club(session)
        segment = segments.save(session, program, "Adults", leaf("age", "gte", 18), NOW)
        texts = {"nb": "Hei", "sv": "Hej", "en": "Hi"}
        made = [
            campaigns.create_broadcast(
                session,
                program,
                name=name,
                texts=texts,
                segment="Adults",
                now=NOW,
                send_at=NOW + days * DAY,
            )
            for name, days in (("Later", 5), ("Soon", 1), ("Cancelled", 2))
        ]
        campaigns.cancel(session, program.id, made[2].id, NOW)
        using = [c.name for c in segments.campaigns_using(session, segment)]
        segments.delete(session, program.id, "Adults")
        session.expire_all()
        kept = [(c.segment_id, c.filter) for c in made[:2]]
        return {"using": using, "kept": kept}

    seen = await loyalty_db.run(work)
    assert seen["using"] == ["Soon", "Later"]
    assert seen["kept"] == [(None, leaf("age", "gte", 18))] * 2


@pytest.mark.parametrize(
    ("filter", "where", "reason"),
    [
        (
            leaf("answer", "answered", True, question="shoe_size"),
            "question",
            "the club has no question 'shoe_size'",
        ),
        (
            {
                "all": [
                    leaf("consent", "is", True),
                    leaf("answer", "in", ["golf"], question="activities"),
                ]
            },
            "all[1].value[0]",
            "'golf' is not a choice of activities (running, cycling, skiing)",
        ),
        (
            no(leaf("answer", "answered", True, question="birthday")),
            "not.question",
            "birthday is kept on the member, not as an answer: use age or birthday_month",
        ),
        (
            leaf("age", "gte", -1),
            "value",
            "age must be between 0 and 150",
        ),
    ],
)
async def test_a_segment_is_saved_only_if_valid_for_the_club(
    loyalty_db: Database, filter: dict[str, Any], where: str, reason: str
) -> None:
    def work(session: Session) -> tuple[Exception | None, list[Any]]:
        program = demo_club(session)
        failed = error_of(lambda: segments.save(session, program, "Bad", filter, NOW))
        return failed, segments.all_of(session, program.id)

    failed, kept = await loyalty_db.run(work)
    assert isinstance(failed, InvalidInput)
    assert (failed.field, failed.reason) == (where, reason)
    assert kept == []


# --- validation -----------------------------------------------------------------------------------


def deep(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = leaf("consent", "is", True)
    for _ in range(levels - 1):
        node = {"not": node}
    return node


@pytest.mark.parametrize(
    ("filter", "where", "reason"),
    [
        ([], "filter", "must be an object"),
        ({}, "filter", "must be all, any, not or a condition with a field"),
        ({"all": {}}, "all", "must be a list of filters"),
        ({"all": [], "any": []}, "filter", "all must be the only key of its object"),
        ({"all": [1]}, "all[0]", "must be an object"),
        (
            {"all": [leaf("consent", "is", True), {"any": [leaf("colour", "in", ["red"])]}]},
            "all[1].any[0].field",
            "unknown field 'colour'",
        ),
        (leaf("age", "in", [18]), "op", "age takes op gte, lte or between"),
        ({"field": "age", "op": "gte"}, "value", "is missing"),
        (leaf("age", "gte", 18, days=3), "days", "age takes no 'days'"),
        (leaf("consent", "is", "yes"), "value", "consent is takes true or false"),
        (leaf("language", "in", ["de"]), "value[0]", "language must be nb, sv or en"),
        (leaf("language", "in", "nb"), "value", "language in takes a list of at least one value"),
        (leaf("language", "in", []), "value", "language in takes a list of at least one value"),
        (
            leaf("country", "in", ["NO", "XX"]),
            "value[1]",
            "country must be an ISO 3166 code such as NO or SE, not 'XX'",
        ),
        (leaf("age", "gte", 18.5), "value", "age takes whole numbers"),
        (leaf("age", "gte", True), "value", "age takes whole numbers"),
        (
            leaf("age", "between", [30, 20]),
            "value",
            "age between takes [low, high] with low <= high",
        ),
        (leaf("age", "between", [30]), "value", "age between takes [low, high]"),
        (
            {
                "all": [
                    leaf("consent", "is", True),
                    leaf("consent", "is", True),
                    leaf("birthday_month", "in", [13]),
                ]
            },
            "all[2].value[0]",
            "birthday_month must be between 1 and 12",
        ),
        (
            leaf("answer", "in", ["running"]),
            "question",
            "is missing: the key of a profile question",
        ),
        (
            leaf("answer", "answered", "yes", question="activities"),
            "value",
            "answer answered takes true or false",
        ),
        (
            leaf("answer", "maybe", True, question="activities"),
            "op",
            "answer takes op in or answered",
        ),
        (leaf("store", "in", ["  "]), "value[0]", "store takes non-empty text"),
        (leaf("tier", "in", [-1]), "value[0]", "tier must be between 0 and 99"),
        (leaf("points", "gte", -5), "value", "points must be between 0 and 1,000,000,000,000"),
        (
            leaf("purchase_count", "gte", 1, days=0),
            "days",
            "purchase_count must be between 1 and 36,500 of days",
        ),
        (
            leaf("category", "in", ["x" * 61]),
            "value[0]",
            "category takes text of at most 60 characters",
        ),
        (leaf("member", "in", [1, "2"]), "value[1]", "member takes whole numbers (member ids)"),
        (
            leaf("member", "in", list(range(1, 1002))),
            "value",
            "member in takes at most 1,000 values",
        ),
        (leaf("member", "between", [1, 2]), "op", "member takes op in"),
        (deep(9), "not.not.not.not.not.not.not.not", "filters nest at most 8 deep"),
        (
            {"any": [leaf("consent", "is", True)] * 51},
            "filter",
            "a filter has at most 50 conditions",
        ),
    ],
)
def test_a_filter_that_breaks_a_rule_is_refused_naming_where(
    filter: Any, where: str, reason: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        segments.validate(filter)
    assert (refused.value.field, refused.value.reason) == (where, reason)


def test_a_valid_filter_comes_back_in_its_normal_form() -> None:
    """Codes in their usual case, repeats dropped, text trimmed, "days": null dropped; a
    filter of 8 levels and 50 conditions is allowed."""
    given_filter = {
        "all": [
            leaf("language", "in", ["NB", "nb", "sv"]),
            leaf("country", "in", ["se", "SE", "fi"]),
            leaf("store", "in", [" Torshov ", "Torshov"]),
            leaf("purchase_count", "gte", 2, days=None),
            leaf("category", "in", ["skiing"], days=30),
            no(leaf("answer", "in", ["running"], question=" activities ")),
            {"any": []},
        ]
    }
    assert segments.validate(given_filter) == {
        "all": [
            leaf("language", "in", ["nb", "sv"]),
            leaf("country", "in", ["SE", "FI"]),
            leaf("store", "in", ["Torshov"]),
            leaf("purchase_count", "gte", 2),
            leaf("category", "in", ["skiing"], days=30),
            no({"field": "answer", "op": "in", "value": ["running"], "question": "activities"}),
            {"any": []},
        ]
    }
    assert segments.validate(deep(8)) == deep(8)
    fifty = {"any": [leaf("consent", "is", True)] * 50}
    assert segments.validate(fifty) == fifty


# --- the property: SQL selects what a plain reading of the filter selects ------------------------

STORES = ("Torshov", "Sandvika", "Nettbutikk")
CATEGORIES = ("skiing", "running", "service")
CHOICES = ("running", "cycling", "skiing")
COUNTRIES = {"NO": "+4791", "SE": "+46701", "DK": "+4520", "FI": "+35840"}
EXAMPLES = {"sqlite": 60, "postgresql": 25}


@dataclass
class Bought:
    at: dt.datetime
    store: str | None
    amount: int
    categories: list[str | None]


@dataclass
class Someone:
    status: str
    language: str | None
    country: str | None  # None: erased, no number
    birthday: dt.date | None
    joined: dt.datetime | None
    store: str | None
    tier: int  # position; 0 is held as no tier
    activities: list[str] | None
    bought: list[Bought] = field(default_factory=list)
    lots: list[tuple[int, dt.datetime]] = field(default_factory=list)  # (remaining, end)


# Instants on and around whole days before NOW, so the boundaries are met.
AGO = st.builds(
    lambda days, hours: NOW - days * DAY + hours * dt.timedelta(hours=1),
    st.integers(0, 400),
    st.sampled_from([0, 0, 1, -1, 12]),
)
BOUGHT = st.builds(
    Bought,
    AGO,
    st.sampled_from([None, *STORES]),
    st.integers(0, 3).map(lambda n: n * 2500),
    st.lists(st.sampled_from([None, *CATEGORIES]), min_size=1, max_size=2),
)
SOMEONE = st.builds(
    Someone,
    status=st.sampled_from(["active", "active", "stopped", "pending"]),
    language=st.sampled_from([None, "nb", "sv", "en"]),
    country=st.sampled_from(list(COUNTRIES)),
    birthday=st.one_of(
        st.none(),
        st.builds(
            lambda years, days: dt.date(2026 - years, 3, 10) + days * DAY,
            st.integers(13, 40),
            st.integers(-2, 2),
        ),
    ),
    joined=AGO,
    store=st.sampled_from([None, *STORES]),
    tier=st.integers(0, 2),
    activities=st.one_of(
        st.none(), st.lists(st.sampled_from(CHOICES), min_size=1, max_size=3, unique=True)
    ),
    bought=st.lists(BOUGHT, max_size=3),
    lots=st.lists(
        st.tuples(
            st.integers(0, 3).map(lambda n: n * 50),
            st.builds(lambda d: NOW + d * DAY, st.integers(-3, 3)),
        ),
        max_size=3,
    ),
)
# (someone, erased): one in four is erased.
CLUBS = st.lists(
    st.tuples(SOMEONE, st.sampled_from([False, False, False, True])), min_size=3, max_size=8
)


def ranged(name: str, top: int, **extra: Any) -> st.SearchStrategy[dict[str, Any]]:
    values = st.integers(0, top)
    return st.one_of(
        st.builds(lambda v: leaf(name, "gte", v, **extra), values),
        st.builds(lambda v: leaf(name, "lte", v, **extra), values),
        st.builds(lambda a, b: leaf(name, "between", sorted([a, b]), **extra), values, values),
    )


def some(items: Sequence[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(st.sampled_from(items), min_size=1, max_size=len(items), unique=True)


WINDOW = st.sampled_from([{}, {"days": 10}, {"days": 200}])
LEAVES = st.one_of(
    st.builds(lambda v: leaf("consent", "is", v), st.booleans()),
    st.builds(lambda v: leaf("language", "in", v), some(["nb", "sv", "en"])),
    st.builds(lambda v: leaf("country", "in", v), some(list(COUNTRIES))),
    ranged("age", 45),
    st.builds(lambda v: leaf("birthday_month", "in", v), some([2, 3, 4])),
    st.builds(lambda v: leaf("answer", "in", v, question="activities"), some(CHOICES)),
    st.builds(lambda v: leaf("answer", "answered", v, question="activities"), st.booleans()),
    st.builds(lambda v: leaf("store", "in", v), some(STORES)),
    st.builds(lambda v: leaf("tier", "in", v), some([0, 1, 2])),
    ranged("points", 300),
    WINDOW.flatmap(lambda w: ranged("purchase_count", 4, **w)),
    WINDOW.flatmap(lambda w: ranged("purchase_amount", 10_000, **w)),
    ranged("days_since_purchase", 400),
    st.builds(lambda v, w: leaf("category", "in", v, **w), some(CATEGORIES), WINDOW),
    ranged("joined_days", 400),
)
FILTERS = st.recursive(
    LEAVES,
    lambda children: st.one_of(
        st.builds(lambda c: {"all": c}, st.lists(children, max_size=3)),
        st.builds(lambda c: {"any": c}, st.lists(children, max_size=3)),
        st.builds(no, children),
    ),
    max_leaves=6,
)


def age_on(birthday: dt.date, today: dt.date) -> int:
    return today.year - birthday.year - ((today.month, today.day) < (birthday.month, birthday.day))


def whole_days(since: dt.datetime) -> int:
    return max(0, (NOW - since) // DAY)


def within(value: int, f: dict[str, Any]) -> bool:
    op, bound = f["op"], f["value"]
    if op == "gte":
        return value >= bound
    if op == "lte":
        return value <= bound
    return bound[0] <= value <= bound[1]


def selects(f: dict[str, Any], one: Someone, erased: bool) -> bool:
    """The filter read plainly, member by member."""
    if "all" in f:
        return all(selects(c, one, erased) for c in f["all"])
    if "any" in f:
        return any(selects(c, one, erased) for c in f["any"])
    if "not" in f:
        return not selects(f["not"], one, erased)
    today = NOW.astimezone(ZoneInfo("Europe/Oslo")).date()
    name, value = f["field"], f["value"]
    recent = [b for b in one.bought if "days" not in f or b.at > NOW - f["days"] * DAY]
    birthday = None if erased else one.birthday
    match name:
        case "consent":
            return (one.status == "active" and not erased) is value
        case "language":
            return not erased and one.language in value
        case "country":
            return not erased and one.country in value
        case "age":
            return birthday is not None and within(age_on(birthday, today), f)
        case "birthday_month":
            return birthday is not None and birthday.month in value
        case "answer":
            answered = one.activities is not None and not erased
            if f["op"] == "answered":
                return answered is value
            return answered and bool(set(one.activities or ()) & set(value))
        case "store":
            return one.store in value or any(b.store in value for b in one.bought)
        case "tier":
            return one.tier in value
        case "points":
            return within(sum(left for left, end in one.lots if end > NOW), f)
        case "purchase_count":
            return within(len(recent), f)
        case "purchase_amount":
            return within(sum(b.amount for b in recent), f)
        case "days_since_purchase":
            return bool(one.bought) and within(whole_days(max(b.at for b in one.bought)), f)
        case "category":
            return any(set(b.categories) & set(value) for b in recent)
        case "joined_days":
            joined = one.joined if one.status != "pending" else None
            return joined is not None and within(whole_days(joined), f)
    raise AssertionError(name)


def fill(session: Session, people: list[tuple[Someone, bool]]) -> tuple[Program, list[int]]:
    """A club holding these members, written as rows (the store functions would add their own
    effects: points for purchases, tiers for points)."""
    program = demo_club(session)
    steps = {t.position: t.id for t in tiers.ladder(session, program.id)}
    question = session.scalar(
        select(ProfileQuestion.id).where(
            ProfileQuestion.program_id == program.id, ProfileQuestion.key == "activities"
        )
    )
    ids = []
    for one, erased in people:
        phone = f"{COUNTRIES[one.country or 'NO']}{next(_PHONES):06d}"
        member = members.create(session, program, phone, status=one.status, now=NOW - 500 * DAY)
        member.language, member.birthday, member.store = one.language, one.birthday, one.store
        member.joined_at = one.joined if one.status != "pending" else None
        member.tier_id = steps[one.tier] if one.tier else None
        # As purchases.record keeps them: segments read "bought (within N days)", "twice
        # (within N days)" and the purchases' count and amount without days from them.
        times = sorted((b.at for b in one.bought), reverse=True)
        member.last_purchase_at = times[0] if times else None
        member.previous_purchase_at = times[1] if len(times) > 1 else None
        member.purchase_count = len(one.bought)
        member.purchase_total_minor = sum(b.amount for b in one.bought)
        # As enrolment keeps it: the store joined at, and its mark.
        joined_at = [(marks.JOINED, one.store)]
        marks.mark(session.connection(), program.id, member.id, joined_at, NOW - 500 * DAY)
        if one.activities is not None:
            profile.save_answer(session, member, question, one.activities, NOW - DAY)
        session.flush()
        for b in one.bought:
            purchase = Purchase(
                program_id=program.id,
                member_id=member.id,
                transaction_id=f"P{next(_IDS)}",
                store=b.store,
                currency="NOK",
                total_minor=b.amount,
                points=0,
                fingerprint="-",
                occurred_at=b.at,
                created_at=b.at,
            )
            session.add(purchase)
            session.flush()
            session.add_all(
                PurchaseLine(
                    program_id=program.id,
                    purchase_id=purchase.id,
                    member_id=member.id,
                    line_no=n,
                    category=category,
                    qty=1,
                    amount_minor=0,
                    discounted=False,
                    points=0,
                )
                for n, category in enumerate(b.categories, start=1)
            )
            bought = [(marks.STORE, b.store), *((marks.CATEGORY, c) for c in b.categories)]
            marks.mark(session.connection(), program.id, member.id, bought, b.at)
        for remaining, end in one.lots:
            entry = LedgerEntry(
                program_id=program.id,
                member_id=member.id,
                kind="adjust",
                points=max(remaining, 1),
                created_at=end - 700 * DAY,
                expires_at=end,
            )
            session.add(entry)
            session.flush()
            session.add(
                PointLot(
                    entry_id=entry.id,
                    program_id=program.id,
                    member_id=member.id,
                    points=max(remaining, 1),
                    remaining=remaining,
                    expires_at=end,
                )
            )
        # What store.loyalty.ledger keeps on the member's row as it writes lots.
        held = [(remaining, end) for remaining, end in one.lots if remaining > 0]
        member.open_points = sum(remaining for remaining, _ in held)
        member.open_points_until = min((end for _, end in held), default=None)
        if erased:
            members.erase(session, member, NOW - DAY)
        session.flush()
        ids.append(member.id)
    return program, ids


def test_any_filter_selects_what_a_plain_reading_of_it_selects(
    loop_and_db: tuple[asyncio.AbstractEventLoop, Database],
) -> None:
    """For random small clubs and random filters, the query's members and count are the
    members the filter selects when read one member at a time in Python."""
    loop, db = loop_and_db

    @settings(
        max_examples=EXAMPLES[db.dialect],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(CLUBS, st.lists(FILTERS, min_size=1, max_size=4))
    def check(people: list[tuple[Someone, bool]], filters: list[dict[str, Any]]) -> None:
        def work(session: Session) -> tuple[list[int], list[tuple[set[int], int]]]:
            program, ids = fill(session, people)
            return ids, [
                (
                    set(session.scalars(segments.members_query(f, program=program, now=NOW))),
                    segments.count(session, program, f, NOW),
                )
                for f in filters
            ]

        ids, found = loop.run_until_complete(db.run(work))
        for f, (selected, counted) in zip(filters, found, strict=True):
            expected = {
                member_id
                for member_id, (one, erased) in zip(ids, people, strict=True)
                # An erased member is no one: in no segment, not even a negation's.
                if not erased and selects(f, one, erased)
            }
            assert (selected, counted) == (expected, len(expected)), f

    check()
