"""`klubb report`: the dashboard's figures as tables, run in this process on both databases."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.cli import report
from bot.cli.main import main
from flows.conversation import InboundText, handle_text
from scheduler import sender
from store.clubs import programs
from store.database import Database, open_database
from store.loyalty import coupons, purchases
from store.loyalty.earning import Line
from store.models import Coupon, Member, OutboxMessage, Program
from store.outreach import delivery, inbox
from tests.cli.test_campaigns import demo_club_with_members
from tests.scheduler.campaign_helpers import T0, RecordingGateway, add_members, at, broadcast, plan

NOW = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)


@dataclass
class Run:
    code: int
    out: str
    err: str


async def shop(url: str) -> None:
    """The demo club's members (6 nb, 2 en, 1 stopped), three who joined in November at the
    Torshov till, purchases, and a broadcast on 24 November with a coupon and a 50 % control
    group: sent, delivered but for one, a coupon redeemed, and a STOP two days later."""
    await demo_club_with_members(url)
    db = open_database(url)
    try:
        await _shop(db)
    finally:
        await db.close()


async def _shop(db: Database) -> None:
    club_id = await db.run(lambda s: programs.all_programs(s)[0].id)
    november = dt.datetime(2026, 11, 4, 9, tzinfo=dt.UTC)
    await add_members(db, club_id, 3, start=200, joined_at=november, store="Torshov")
    await db.run(
        lambda s: coupons.create_template(
            s,
            s.get(Program, club_id),
            key="tenoff",
            kind="campaign",
            benefit={"nb": "10 % rabatt", "en": "10% off"},
            valid_days=14,
            discount_percent=10,
        )
    )
    campaign_id = await broadcast(
        db,
        club_id,
        name="Winter jackets",
        texts={"nb": "Hei {first_name}! 10 % på vinterjakker: {coupon_code}"},
        coupon="tenoff",
        control_percent=50,
    )
    await plan(db, campaign_id)

    def five_recipients(session: Session) -> None:
        # The report is read from the outbox: fix the split the expected tables were written
        # for (5 recipients, 6 held out: these members) rather than depend on the control
        # hash's draw.
        for row in session.scalars(
            select(OutboxMessage).where(OutboxMessage.campaign_id == campaign_id)
        ):
            chosen = (row.member_id * 2654435761 + campaign_id * 40503) % 1000003 % 100 < 50
            row.status = "held_out" if chosen else "queued"

    await db.run(five_recipients)
    await sender.drain(db, RecordingGateway(), at(T0))

    def rows(session: Session) -> dict[str, Any]:
        members = dict(session.execute(select(Member.phone, Member.id)).all())
        held = session.scalars(
            select(OutboxMessage.member_id).where(OutboxMessage.status == "held_out")
        ).all()
        sent = session.scalars(
            select(OutboxMessage.member_id).where(OutboxMessage.status == "sent")
        ).all()
        return {"members": members, "held": sorted(held), "sent": sorted(sent)}

    found = await db.run(rows)
    assert (len(found["sent"]), len(found["held"])) == (5, 6)
    day = dt.timedelta(days=1)
    sales = [
        (found["sent"][0], 45000, T0 + day),
        (found["sent"][0], 12000, T0 + 3 * day),
        (found["sent"][1], 30000, T0 + 2 * day),
        (found["held"][0], 20000, T0 + 4 * day),
        (found["members"]["+4791000200"], 9900, dt.datetime(2026, 11, 5, 15, tzinfo=dt.UTC)),
        (found["members"]["+4791000201"], 19900, dt.datetime(2026, 10, 20, 15, tzinfo=dt.UTC)),
    ]

    def buy(session: Session) -> None:
        program = session.get(Program, club_id)
        for i, (member_id, amount, when) in enumerate(sales):
            purchases.record(
                session,
                program,
                member_id,
                transaction_id=f"T{i}",
                lines=[Line(qty=1, amount_minor=amount)],
                occurred_at=when,
                fingerprint=f"T{i}",
                now=when,
                store="Torshov",
            )
        sent = session.execute(
            select(OutboxMessage.member_id, OutboxMessage.provider_id)
            .where(OutboxMessage.status == "sent")
            .order_by(OutboxMessage.member_id)
        ).all()
        for i, (_, provider_id) in enumerate(sent):
            delivery.record_receipt(
                session,
                program_id=club_id,
                provider_id=provider_id,
                status="undelivered" if i == len(sent) - 1 else "delivered",
                error_code="30003" if i == len(sent) - 1 else None,
                now=T0 + dt.timedelta(minutes=1),
            )
        code = session.scalar(
            select(Coupon.code).where(Coupon.source == f"campaign:{campaign_id}:{sent[0][0]}")
        )
        coupons.redeem(session, club_id, code, T0 + day, by="till")
        stopper = next(p for p, i in found["members"].items() if i == found["sent"][2])
        number = programs.numbers(session, club_id)[0]
        handle_text(
            session, InboundText("SM" + uuid.uuid4().hex, stopper, number, "STOP", T0 + 2 * day)
        )
        # Texts Klubb could not answer: two in November, one in October; POINTS is understood.
        asker = next(p for p, i in found["members"].items() if i == found["sent"][0])
        for body, when in (
            ("har dere åpent på søndag?", T0 + day),
            ("hva koster kaffen?", T0 + 3 * day),
            ("POENG", T0 + 3 * day),
            ("hallo?", dt.datetime(2026, 10, 20, 15, tzinfo=dt.UTC)),
        ):
            handle_text(session, InboundText("SM" + uuid.uuid4().hex, asker, number, body, when))

    await db.run(buy)


@pytest.fixture
def env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """`klubb` on the test's database, at NOW."""
    for name in ("KLUBB_GATEWAY", "KLUBB_CONSOLE_OUTBOX", "KLUBB_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KLUBB_DATABASE_URL", database_url)
    monkeypatch.setattr("bot.cli.report.utc_now", lambda: NOW)
    return database_url


@pytest.fixture
def url(env: str) -> str:
    asyncio.run(shop(env))
    return env


@pytest.fixture
def klubb(url: str, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> Any:
    def run(*args: str) -> Run:
        monkeypatch.setattr("sys.stdin", io.StringIO(""))
        code = main(list(args))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


NOVEMBER = """\
Torshov Sport: Sun 1 Nov 2026 to Mon 30 Nov 2026 (30 days, Europe/Oslo)

Members now
  members                 10
  consent share           83.3% (10 of 12 numbers known)
  left (STOP)             2
  STOP, never joined      0
  not confirmed yet       0
  erased                  0

New members: 3 joined in the period
  WEEK      FROM        TO          JOINED  STILL MEMBERS
  2026-W44  2026-11-01  2026-11-01       0              0
  2026-W45  2026-11-02  2026-11-08       3              2
  2026-W46  2026-11-09  2026-11-15       0              0
  2026-W47  2026-11-16  2026-11-22       0              0
  2026-W48  2026-11-23  2026-11-29       0              0
  2026-W49  2026-11-30  2026-11-30       0              0

  STORE    JOINED  STILL MEMBERS
  Torshov       3              2

Texts in the period
  received                4
  not understood          2 (Klubb could not answer them)
  answered by staff       0 conversations
  median time to answer   -

Purchases by members
  purchases               5
  revenue                 NOK 1,169.00 (refunds not deducted)
  average purchase        NOK 233.80
  members who bought      4 (NOK 292.25 each)
  refunds                 0 (NOK 0.00)
  non-members             not known: the till sends Klubb only members' purchases,
                          so the members' share of sales and a non-member's average purchase
                          can't be shown

  WEEK      FROM        TO          PURCHASES       REVENUE  BUYERS
  2026-W44  2026-11-01  2026-11-01          0      NOK 0.00       0
  2026-W45  2026-11-02  2026-11-08          1     NOK 99.00       1
  2026-W46  2026-11-09  2026-11-15          0      NOK 0.00       0
  2026-W47  2026-11-16  2026-11-22          0      NOK 0.00       0
  2026-W48  2026-11-23  2026-11-29          4  NOK 1,070.00       3
  2026-W49  2026-11-30  2026-11-30          0      NOK 0.00       0

Days since the last purchase (members now)
  DAYS     MEMBERS  SHARE
  0-30           3  30.0%
  31-90          1  10.0%
  91-180         0   0.0%
  181-365        0   0.0%
  >365           0   0.0%
  never          6  60.0%

Top 10 customers by revenue in the period
  MEMBER  NAME   PHONE        STATUS   PURCHASES     REVENUE
       7  Navn0  +44*****050  active           2  NOK 570.00
       8  Navn1  +44*****051  active           1  NOK 300.00
       1  Navn0  +47*****000  active           1  NOK 200.00
      10  Navn0  +47*****200  stopped          1   NOK 99.00

Campaigns sent in the period
  ID  NAME            STATUS  SENT AT           SENT  DELIVERED  FAILED  HELD OUT  OPT-OUTS  COUPONS REDEEMED
   4  Winter jackets  done    2026-11-24 10:00     5          4       1         6         1            1 of 5

Recipients and control group: purchases in the 30 days after sending, STOP within 7 days
  ID  GROUP       MEMBERS  BOUGHT     REVENUE  PER MEMBER  OPT-OUTS
   4  recipients        5       2  NOK 870.00  NOK 174.00         1
      control           6       1  NOK 200.00   NOK 33.33         0
  campaign 4: uplift +NOK 140.67 per member (+422.0%), so far: the 30 days end 2026-12-24
"""  # noqa: E501 (the terminal's width, not the code's)


def test_november(klubb: Any) -> None:
    shown = klubb("report", "--from", "2026-11-01", "--to", "2026-12-01")
    assert shown.code == 0, shown.err
    assert shown.out == NOVEMBER


def first_line(run: Run) -> str:
    assert run.code == 0, run.err
    return run.out.splitlines()[0]


def test_the_period_defaults_to_the_last_30_days_and_either_end_may_be_given(klubb: Any) -> None:
    # Now is 13:00 on Tuesday 1 December in Oslo.
    assert first_line(klubb("report")) == (
        "Torshov Sport: Mon 2 Nov 2026 to Tue 1 Dec 2026 (30 days, Europe/Oslo)"
    )
    assert first_line(klubb("report", "--from", "2026-11-20")) == (
        "Torshov Sport: Fri 20 Nov 2026 to Tue 1 Dec 2026 (12 days, Europe/Oslo)"
    )
    assert first_line(klubb("report", "--to", "2026-11-15")) == (
        "Torshov Sport: Fri 16 Oct 2026 to Sat 14 Nov 2026 (30 days, Europe/Oslo)"
    )
    one_day = klubb("report", "--from", "2026-11-05", "--to", "2026-11-06", "--club", "1")
    assert first_line(one_day) == (
        "Torshov Sport: Thu 5 Nov 2026 to Thu 5 Nov 2026 (1 day, Europe/Oslo)"
    )
    assert "  purchases               1\n" in one_day.out


def test_months_when_asked_or_over_thirteen_weeks(klubb: Any) -> None:
    shown = klubb("report", "--from", "2026-10-01", "--to", "2026-12-01", "--by", "month")
    assert shown.code == 0, shown.err
    assert (
        "  MONTH    FROM        TO          PURCHASES       REVENUE  BUYERS\n"
        "  2026-10  2026-10-01  2026-10-31          1    NOK 199.00       1\n"
        "  2026-11  2026-11-01  2026-11-30          5  NOK 1,169.00       4\n"
    ) in shown.out
    assert (
        "  MONTH    FROM        TO          JOINED  STILL MEMBERS\n"
        "  2026-10  2026-10-01  2026-10-31       0              0\n"
        "  2026-11  2026-11-01  2026-11-30       3              2\n"
    ) in shown.out
    year = klubb("report", "--from", "2026-01-01", "--to", "2026-12-01")
    assert "New members: 12 joined in the period\n" in year.out
    assert "  2026-08  2026-08-01  2026-08-31       9              8\n" in year.out
    assert "  (no store)       9              8\n" in year.out
    assert "\n  not understood          3 (Klubb could not answer them)\n" in year.out


def test_a_quiet_period_says_so(klubb: Any) -> None:
    shown = klubb("report", "--from", "2025-01-01", "--to", "2025-02-01")
    assert shown.code == 0, shown.err
    assert "\n  received                0\n  not understood          0 (" in shown.out
    assert "\n  median time to answer   -\n" in shown.out
    assert "Top 10 customers by revenue in the period\n  no purchases in the period\n" in (
        shown.out
    )
    assert shown.out.endswith(
        "Campaigns sent in the period\n  no broadcast was sent in the period\n"
    )


BAD = [
    (
        ["--from", "2026-13-01"],
        "klubb report: --from: '2026-13-01' is not a date; give YYYY-MM-DD, e.g. 2026-11-01",
    ),
    (
        ["--from", "2026-11-10", "--to", "2026-11-10"],
        "klubb report: --to: must be after the first day (2026-11-10)",
    ),
    (["--from", "2026-12-05"], "klubb report: --from: 2026-12-05 is after today (2026-12-01)"),
    (
        ["--from", "2000-01-01", "--to", "2026-01-01"],
        "klubb report: --from: a report covers at most 3,660 days",
    ),
    (["--club", "99"], "klubb report: no club with id 99"),
    # Years whose arithmetic overflowed (a traceback): refused as the admin's dashboard does.
    (
        ["--to", "0001-01-01"],
        "klubb report: --to: 0001-01-01 is outside the days a report covers "
        "(2000-01-01 to 2100-12-31)",
    ),
    (
        ["--from", "9999-12-01", "--to", "9999-12-31"],
        "klubb report: --from: 9999-12-01 is outside the days a report covers "
        "(2000-01-01 to 2100-12-31)",
    ),
]


def test_bad_input_is_one_line_and_exit_2(env: str, capsys: pytest.CaptureFixture) -> None:
    asyncio.run(demo_club_with_members(env))
    for args, error in BAD:
        code = main(["report", *args])
        captured = capsys.readouterr()
        assert (code, captured.out, captured.err.strip()) == (2, "", error), args


def test_texts_answered_by_staff_and_the_median_time_to_an_answer(url: str, klubb: Any) -> None:
    """A staff answer two hours after the asker's second text answers their first, two days
    before it: one conversation, a median of 2 d 2 h over one answer."""

    async def answer() -> None:
        db = open_database(url)
        try:
            await db.run(_answer)
        finally:
            await db.close()

    def _answer(session: Session) -> None:
        program = programs.all_programs(session)[0]
        (conversation,) = inbox.conversations(session, program)
        inbox.reply(
            session,
            program,
            conversation.id,
            account_id=None,
            text="Ja, 12-16!",
            now=T0 + 3 * dt.timedelta(days=1) + dt.timedelta(hours=2),
        )

    asyncio.run(answer())
    shown = klubb("report", "--from", "2026-11-01", "--to", "2026-12-01")
    assert shown.code == 0, shown.err
    assert (
        "Texts in the period\n"
        "  received                4\n"
        "  not understood          2 (Klubb could not answer them)\n"
        "  answered by staff       1 conversation\n"
        "  median time to answer   2 d 2 h (of 1 answer)\n"
    ) in shown.out


@pytest.mark.parametrize(
    ("minutes", "shown"),
    [
        (0, "0 min"),
        (25, "25 min"),
        (60, "1 h"),
        (185, "3 h 5 min"),
        (2880, "2 d"),
        (3060, "2 d 3 h"),
    ],
)
def test_a_wait_is_written_to_the_minute(minutes: int, shown: str) -> None:
    assert report.wait_text(dt.timedelta(minutes=minutes)) == shown
