"""`klubb journey list|on|off`, run in this process on both databases; planned by the
journeys job and sent by the sender, to see what the list counts and what pausing skips."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
from typing import Any

import pytest
from sqlalchemy import delete, select

import locales
from bot.cli.main import main
from scheduler import journeys as journeys_job
from scheduler import sender
from store.database import open_database
from store.models import Campaign, CouponTemplate, OutboxMessage, Program
from store.outreach import journeys
from tests.cli.test_campaigns import (
    EVERYONE_EN,
    EVERYONE_NB,
    Run,
    _second_club,
    demo_club_with_members,
    read,
)
from tests.scheduler.campaign_helpers import T0, RecordingGateway, at

EVERYONE = EVERYONE_NB + EVERYONE_EN
# The demo members joined 100 days before T0: a day later, at noon in Oslo, welcome is due.
WELCOME_DUE = T0 - dt.timedelta(days=99) + dt.timedelta(hours=1)
RUNS = (
    "it runs every 15 minutes in `klubb serve` / `klubb worker`; each member gets it once per "
    "occasion, within the monthly cap (2 a month)"
)
TRIGGERS = ", ".join(journeys.TRIGGERS)


@pytest.fixture
def url(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ("KLUBB_GATEWAY", "KLUBB_CONSOLE_OUTBOX", "KLUBB_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KLUBB_DATABASE_URL", database_url)
    asyncio.run(demo_club_with_members(database_url))
    # These tests start from a club with no journeys, whatever the demo club comes with.
    read(database_url, lambda s: s.execute(delete(Campaign).where(Campaign.kind == "journey")))
    return database_url


@pytest.fixture
def klubb(url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> Any:
    """`klubb ...` in this process."""

    def run(*args: str) -> Run:
        monkeypatch.setattr("sys.stdin", io.StringIO(""))
        code = main(list(args))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def journeys_in(url: str) -> list[Campaign]:
    return read(
        url,
        lambda s: list(
            s.scalars(select(Campaign).where(Campaign.kind == "journey").order_by(Campaign.id))
        ),
    )


def plan(url: str, now: dt.datetime) -> dict[str, int]:
    """The club's active journeys planned at `now` by the journeys job."""

    async def run() -> dict[str, int]:
        db = open_database(url)
        try:
            club = await db.run(lambda s: s.scalar(select(Program.id).order_by(Program.id)))
            done = await journeys_job.run(db, at(now))
            return done.get(club, {})
        finally:
            await db.close()

    return asyncio.run(run())


def send(url: str, now: dt.datetime) -> RecordingGateway:
    async def drain() -> RecordingGateway:
        db = open_database(url)
        try:
            gateway = RecordingGateway()
            await sender.drain(db, gateway, at(now))
            return gateway
        finally:
            await db.close()

    return asyncio.run(drain())


def outbox(url: str) -> list[tuple[str, str | None]]:
    return read(
        url,
        lambda s: [tuple(r) for r in s.execute(select(OutboxMessage.status, OutboxMessage.error))],
    )


def listed(klubb: Any, *flags: str) -> dict[str, list[str]]:
    """`klubb journey list` as its rows by trigger: the cells, split on runs of 2+ spaces."""
    result = klubb("journey", "list", *flags)
    assert result.code == 0, result.err
    header, *rows = result.out.splitlines()
    assert _cells(header) == [
        "TRIGGER",
        "ID",
        "STATUS",
        "SETTINGS",
        "COUPON",
        "CONTROL",
        "TEXT",
        "QUEUED",
        "SENT",
    ]
    return {cells[0]: cells[1:] for cells in map(_cells, rows)}


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().split("  ") if cell.strip()]


def _value(output: str, label: str) -> str:
    for line in output.splitlines():
        if line.startswith(f"  {label}  "):
            return line[len(label) + 2 :].strip()
    raise AssertionError(f"no {label!r} in:\n{output}")


class TestList:
    def test_every_trigger_in_order_with_its_defaults(self, klubb: Any) -> None:
        rows = listed(klubb)
        assert list(rows) == list(journeys.TRIGGERS)
        assert rows["welcome"] == ["-", "-", "delay_hours=24 lookback_days=3", *["-"] * 5]
        assert rows["birthday"][2] == "-"
        assert rows["expiring"][2] == "days=30"
        assert rows["near_tier"][2] == "within=auto (20%)"
        # The demo club's cheapest reward (a water bottle) costs 300 points.
        assert rows["balance"][2] == "threshold=auto (300)"
        assert rows["winback"][2] == "days=180 lookback_days=30"

    def test_the_clubs_journeys_with_their_options_and_counts(self, klubb: Any, url: str) -> None:
        assert klubb("journey", "on", "welcome", "--coupon", "welcome", "--control", "10").code == 0
        assert klubb("journey", "on", "balance", "--set", "threshold=500").code == 0
        assert klubb("journey", "on", "winback", "--text", "Hi {first_name}!").code == 0
        assert klubb("journey", "off", "winback").code == 0
        [welcome, balance, winback] = journeys_in(url)
        assert plan(url, WELCOME_DUE) == {"welcome": EVERYONE, "balance": 0}

        rows = listed(klubb)
        held_out = sum(1 for status, _ in outbox(url) if status == "held_out")
        assert rows["welcome"] == [
            str(welcome.id),
            "on",
            "delay_hours=24 lookback_days=3",
            "welcome",
            "10%",
            "catalog wording",
            str(EVERYONE - held_out),
            "0",
        ]
        assert rows["balance"] == [
            str(balance.id),
            "on",
            "threshold=500",
            "-",
            "0%",
            "catalog wording",
            "0",
            "0",
        ]
        assert rows["winback"][:6] == [
            str(winback.id),
            "off",
            "days=180 lookback_days=30",
            "-",
            "0%",
            "own text",
        ]

        gateway = send(url, WELCOME_DUE)
        assert len(gateway.sent) == EVERYONE - held_out
        assert listed(klubb)["welcome"][-2:] == ["0", str(EVERYONE - held_out)]


class TestOn:
    def test_sets_up_a_journey_and_shows_what_it_sends(self, klubb: Any, url: str) -> None:
        result = klubb(
            "journey", "on", "welcome", "--coupon", "welcome", "--set", "delay_hours=2",
            "--control", "10",
        )  # fmt: skip
        assert result.code == 0, result.err
        [journey] = journeys_in(url)
        assert (journey.trigger, journey.status) == ("welcome", "active")
        assert journey.settings == {"delay_hours": 2}
        assert journey.control_percent == 10
        assert journey.texts is None
        template = read(url, lambda s: s.get(CouponTemplate, journey.coupon_template_id))
        assert template.key == "welcome"

        out = result.out
        assert out.startswith("Journey 'welcome' of Torshov Sport\n")
        assert _value(out, "when") == ("2 hours after a member joins (catching up to 3 days late)")
        assert _value(out, "settings") == "delay_hours=2 lookback_days=3"
        assert _value(out, "coupon") == "welcome, a code of their own for each member"
        assert _value(out, "control") == "10% held out"
        assert _value(out, "text") == "the catalog's wording"
        # The catalog's wording for a made-up member, with the coupon's line and the footer.
        for language, name, coupon in (
            ("nb", "Kari", "Kupongkode: ABCD-2345"),
            ("sv", "Karin", "Kupongkod: ABCD-2345"),
            ("en", "Kate", "Coupon code: ABCD-2345"),
        ):
            wording = locales.render(
                "journey.welcome", language, first_name=name, club="Torshov Sport"
            )
            footer = locales.render("campaign.stop_footer", language)
            assert f"\n    Torshov Sport: {wording}\n    {coupon}\n    {footer}\n" in out
        # The club's name before the text is sized too: English takes two with it.
        assert "  nb, GSM-7, 2 SMS\n" in out
        assert "  en, GSM-7, 2 SMS\n" in out
        assert out.splitlines()[-1] == (
            f"klubb: welcome journey on (set up now, id {journey.id}): {RUNS}"
        )

    def test_the_clubs_own_text(self, klubb: Any, url: str) -> None:
        result = klubb(
            "journey", "on", "expiring", "--set", "days=14",
            "--text", "Hi {first_name}: {expiring_points} points expire on {expiry_date}",
            "--text-nb", "Hei {first_name}: {expiring_points} poeng går ut {expiry_date}",
        )  # fmt: skip
        assert result.code == 0, result.err
        [journey] = journeys_in(url)
        assert journey.texts == {
            "nb": "Hei {first_name}: {expiring_points} poeng går ut {expiry_date}",
            "sv": "Hi {first_name}: {expiring_points} points expire on {expiry_date}",
            "en": "Hi {first_name}: {expiring_points} points expire on {expiry_date}",
        }
        assert journey.settings == {"days": 14}
        assert _value(result.out, "text") == "the club's own"
        assert _value(result.out, "when") == (
            "when some of a member's points expire within 14 days, once per expiry date"
        )
        assert "\n    Torshov Sport: Hei Kari: 350 poeng går ut " in result.out
        assert "\n    Torshov Sport: Hi Karin: 350 points expire on " in result.out
        assert "\n    Reply STOP to opt out\n" in result.out

    def test_an_own_text_in_one_language_leaves_the_others_the_catalogs(
        self, klubb: Any, url: str
    ) -> None:
        result = klubb("journey", "on", "welcome", "--text-nb", "Hei {first_name}, velkommen!")
        assert result.code == 0, result.err
        [journey] = journeys_in(url)
        assert journey.texts == {"nb": "Hei {first_name}, velkommen!"}
        assert _value(result.out, "text") == (
            "the club's own in nb, the catalog's wording in sv, en"
        )
        assert "\n    Torshov Sport: Hei Kari, velkommen!\n" in result.out
        english = locales.render("journey.welcome", "en", first_name="Kate", club="Torshov Sport")
        assert f"\n    Torshov Sport: {english}\n    Reply STOP to opt out\n" in result.out
        assert listed(klubb)["welcome"][5] == "own text nb"

    def test_again_switches_it_back_on_and_keeps_its_options(self, klubb: Any, url: str) -> None:
        made = klubb("journey", "on", "balance", "--set", "threshold=500", "--coupon", "welcome")
        assert made.code == 0, made.err
        [journey] = journeys_in(url)
        again = klubb("journey", "on", "balance")
        assert again.code == 0, again.err
        assert again.out.splitlines()[-1] == (
            f"klubb: the balance journey (id {journey.id}) was already on: {RUNS}"
        )

        assert klubb("journey", "off", "balance").code == 0
        # Options it already has may be given again (a script run twice works).
        resumed = klubb("journey", "on", "balance", "--set", "threshold=500", "--control", "0")
        assert resumed.code == 0, resumed.err
        assert resumed.out.splitlines()[-1] == (
            f"klubb: balance journey switched back on (id {journey.id}): {RUNS}"
        )
        assert _value(resumed.out, "when") == (
            "when a balance reaches 500 points, again after points are spent"
        )
        [journey] = journeys_in(url)
        assert journey.status == "active"

        assert klubb("journey", "off", "balance").code == 0
        changed = klubb(
            "journey", "on", "balance", "--set", "threshold=800", "--coupon", "birthday",
            "--text", "Hi",
        )  # fmt: skip
        assert changed.code == 1
        assert changed.err.strip() == (
            f"klubb journey: the club's balance journey (id {journey.id}) exists, and a "
            "journey's options can't be changed yet (--text, --coupon, --set threshold differ "
            "from what it has): leave them out to switch it on as it is"
        )
        [journey] = journeys_in(url)
        assert (journey.status, journey.settings, journey.texts) == (
            "paused",
            {"threshold": 500},
            None,
        )
        # Input that is wrong is still wrong on a journey the club has.
        assert klubb("journey", "on", "balance", "--set", "threshold=0").code == 2

    def test_a_tier_journey_shows_the_clubs_tier_names(self, klubb: Any) -> None:
        result = klubb("journey", "on", "tier_reached")
        assert result.code == 0, result.err
        assert "\n    Torshov Sport: Gratulerer, Kari! Du er nå Sølv i Torshov Sport." in result.out
        assert (
            "\n    Torshov Sport: Congratulations, Kate! You are now Silver at Torshov Sport."
            in result.out
        )


class TestOff:
    def test_pauses_and_the_sender_skips_what_it_had_queued(self, klubb: Any, url: str) -> None:
        assert klubb("journey", "on", "welcome").code == 0
        [journey] = journeys_in(url)
        assert plan(url, WELCOME_DUE) == {"welcome": EVERYONE}

        paused = klubb("journey", "off", "welcome")
        assert paused.code == 0, paused.err
        assert paused.out.strip() == (
            f"klubb: welcome journey off (id {journey.id}): it plans nothing more, and the "
            f"sender skips its {EVERYONE} queued messages while it is off"
        )
        assert journeys_in(url)[0].status == "paused"
        assert plan(url, WELCOME_DUE + dt.timedelta(hours=1)) == {}
        assert send(url, WELCOME_DUE).sent == []
        assert outbox(url) == [("skipped", "cancelled")] * EVERYONE
        assert listed(klubb)["welcome"][1:2] + listed(klubb)["welcome"][-2:] == ["off", "0", "0"]

        again = klubb("journey", "off", "welcome")
        assert (again.code, again.out.strip()) == (
            0,
            f"klubb: the welcome journey (id {journey.id}) was already off",
        )

    def test_a_journey_the_club_has_not_set_up(self, klubb: Any) -> None:
        result = klubb("journey", "off", "birthday")
        assert result.code == 1
        assert result.err.strip() == (
            "klubb journey: the club has no birthday journey: see `klubb journey list`"
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("on", "bday"), f"klubb journey: unknown trigger 'bday'; the triggers are {TRIGGERS}"),
        (("off", "bday"), f"klubb journey: unknown trigger 'bday'; the triggers are {TRIGGERS}"),
        (
            ("on", "welcome", "--set", "colour=blue"),
            "klubb journey: --set colour: not a setting of welcome (use delay_hours, "
            "lookback_days)",
        ),
        (
            ("on", "expiring", "--set", "days=two"),
            "klubb journey: --set days: must be a whole number from 1 to 730",
        ),
        (
            ("on", "expiring", "--set", "days"),
            "klubb journey: --set days: give KEY=VALUE, e.g. --set days=14",
        ),
        (
            ("on", "expiring", "--set", "days=731"),
            "klubb journey: --set days: must be a whole number from 1 to 730",
        ),
        (
            ("on", "birthday", "--set", "days=3"),
            "klubb journey: --set days: not a setting of birthday (use none)",
        ),
        (
            ("on", "welcome", "--control", "51"),
            "klubb journey: --control: must be between 0 and 50 percent",
        ),
        (
            ("on", "welcome", "--coupon", "nope"),
            "klubb journey: --coupon: the club has no active coupon template 'nope' "
            "(its coupons: welcome, birthday, ",
        ),
        (
            ("on", "welcome", "--text-sv", "Hej {frist_name}"),
            "klubb journey: --text-sv: unknown placeholder frist_name; use {club}, ",
        ),
        (
            ("on", "near_tier", "--text", "Hi {expiry_date}"),
            "klubb journey: --text: unknown placeholder expiry_date; use {club}, ",
        ),
        (
            ("on", "welcome", "--text", "Hi, here is {coupon_code}"),
            "klubb journey: --text: {coupon_code} needs a coupon to issue (--coupon KEY)",
        ),
    ],
)
def test_bad_input_is_one_line_naming_it(
    klubb: Any, url: str, args: tuple[str, ...], message: str
) -> None:
    result = klubb("journey", *args)
    assert result.code == 2
    assert result.err.startswith(message)
    assert len(result.err.splitlines()) == 1
    assert result.out == ""
    assert journeys_in(url) == []


def test_with_two_clubs_the_club_is_named(klubb: Any, url: str) -> None:
    read(url, _second_club)
    unnamed = klubb("journey", "on", "welcome")
    assert unnamed.code == 2
    assert "--club-number" in unnamed.err
    named = klubb("journey", "on", "welcome", "--club-number", "2121")
    assert named.code == 0, named.err
    assert "Journey 'welcome' of Kaffebaren" in named.out
    assert listed(klubb, "--club-number", "2121")["welcome"][1] == "on"
    assert listed(klubb, "--club-number", "2020")["welcome"][1] == "-"
