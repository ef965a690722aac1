"""`klubb segment`, `klubb campaign` and `klubb worker`: run in this process on both databases,
and the worker in a subprocess sending what is queued."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.cli.common import run_once
from bot.cli.demo import DEMO_CLUB, DEMO_QUESTIONS, set_up_loyalty
from bot.cli.main import main
from store import messages
from store.clubs import programs
from store.database import open_database
from store.members import members
from store.members.phones import club_number
from store.models import Campaign, CouponTemplate, Member, OutboxMessage, Program
from store.outreach import campaigns
from tests.cli.test_main import KLUBB, Klubb, free_port, stop
from tests.scheduler.campaign_helpers import add_members

OSLO = ZoneInfo("Europe/Oslo")
WORKER_SECONDS = 20
EVERYONE_NB = 6  # Norwegian members with consent
EVERYONE_EN = 2  # English members with consent


async def demo_club_with_members(url: str, *, never_quiet: bool = False) -> None:
    """The demo club with its coupons; six nb and two en members with consent, one stopped."""

    def club(session: Session) -> int:
        program = programs.create(session, **DEMO_CLUB, now=dt.datetime.now(dt.UTC))
        for question in DEMO_QUESTIONS:
            programs.add_question(session, program, **question)
        set_up_loyalty(session, program)
        if never_quiet:
            # The worker test must not wait for the morning when it runs at night.
            program.quiet_start = program.quiet_end = 0
        return program.id

    db = open_database(url)
    try:
        club_id = await db.run(club)
        await add_members(db, club_id, EVERYONE_NB, language="nb")
        await add_members(db, club_id, EVERYONE_EN, start=50, language="en", prefix="+4477")
        await add_members(db, club_id, 1, start=90, status="stopped")
    finally:
        await db.close()


def read(url: str, work: Any) -> Any:
    return asyncio.run(run_once(url, work))


def campaigns_in(url: str) -> list[Campaign]:
    """The club's broadcasts (the demo club also has journeys)."""
    return read(
        url,
        lambda s: list(
            s.scalars(select(Campaign).where(Campaign.kind == "broadcast").order_by(Campaign.id))
        ),
    )


@dataclass
class Run:
    code: int
    out: str
    err: str


class Terminal(io.StringIO):
    """Typed answers on a stdin that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def url(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ("KLUBB_GATEWAY", "KLUBB_CONSOLE_OUTBOX", "KLUBB_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KLUBB_DATABASE_URL", database_url)
    asyncio.run(demo_club_with_members(database_url))
    return database_url


@pytest.fixture
def klubb(url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> Any:
    """`klubb ...` in this process; `stdin` is what is typed (a terminal when `tty`)."""

    def run(*args: str, stdin: str = "", tty: bool = False) -> Run:
        monkeypatch.setattr("sys.stdin", Terminal(stdin) if tty else io.StringIO(stdin))
        code = main(list(args))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


LANGUAGE_EN = json.dumps({"field": "language", "op": "in", "value": ["en"]})


class TestSegments:
    def test_save_list_show_count_delete(self, klubb: Any) -> None:
        saved = klubb("segment", "save", "english", "--filter", LANGUAGE_EN)
        assert saved.code == 0, saved.err
        assert saved.out.strip() == "klubb: saved segment 'english': 2 members match now"

        # Saving again under the name replaces the filter.
        wider = json.dumps({"field": "language", "op": "in", "value": ["en", "nb"]})
        assert klubb("segment", "save", "english", "--filter", wider).code == 0
        assert klubb("segment", "save", "english", "--filter", LANGUAGE_EN).code == 0

        listed = klubb("segment", "list")
        assert listed.code == 0, listed.err
        header, row = listed.out.splitlines()
        assert header.split()[:2] == ["NAME", "MEMBERS"]
        assert "(Europe/Oslo)" in header
        assert row.split()[:2] == ["english", "2"]

        shown = klubb("segment", "show", "english")
        assert shown.code == 0, shown.err
        lines = shown.out.splitlines()
        assert lines[0].startswith("segment 'english' of Torshov Sport, updated ")
        assert json.loads("\n".join(lines[1:-1])) == json.loads(LANGUAGE_EN)
        assert lines[-1] == "2 members match now"

        counted = klubb(
            "segment", "count", "--filter", '{"field": "consent", "op": "is", "value": true}'
        )
        assert (counted.code, counted.out.strip()) == (
            0,
            f"{EVERYONE_NB + EVERYONE_EN} members match",
        )

        deleted = klubb("segment", "delete", "english")
        assert deleted.code == 0, deleted.err
        assert "deleted segment 'english'" in deleted.out
        assert "no segments yet" in klubb("segment", "list").out
        again = klubb("segment", "delete", "english")
        assert again.code == 1
        assert again.err.strip() == (
            "klubb segment: the club has no segment named 'english': see `klubb segment list`"
        )

    def test_erased_numbers_are_counted_in_no_segment(self, klubb: Any, url: str) -> None:
        """`klubb segment count` agrees with the member list: two erased numbers are no one."""

        def erase_two(session: Session) -> int:
            found = session.scalars(select(Member).order_by(Member.id).limit(2)).all()
            for member in found:
                members.erase(session, member, dt.datetime.now(dt.UTC))
            return len(found)

        assert read(url, erase_two) == 2
        everyone = EVERYONE_NB + EVERYONE_EN + 1  # the stopped member is still a member
        counted = klubb("segment", "count", "--filter", '{"all": []}')
        assert (counted.code, counted.out.strip()) == (0, f"{everyone - 2} members match")
        nobody = klubb("segment", "count", "--filter", '{"not": {"all": []}}')
        assert (nobody.code, nobody.out.strip()) == (0, "0 members match")

    def test_a_filter_from_a_file(self, klubb: Any, tmp_path: Path) -> None:
        path = tmp_path / "english.json"
        path.write_text(LANGUAGE_EN, encoding="utf-8")
        saved = klubb("segment", "save", "english", "--filter-file", str(path))
        assert saved.code == 0, saved.err
        missing = klubb("segment", "count", "--filter-file", str(tmp_path / "nope.json"))
        assert missing.code == 2
        assert "--filter-file" in missing.err

    @pytest.mark.parametrize(
        ("filter_", "message"),
        [
            ('{"all": [}', "klubb segment: --filter: not JSON: "),
            (
                '{"all": [{"field": "age", "op": "in", "value": 40}]}',
                "klubb segment: the filter at all[0].op: age takes op gte, lte or between",
            ),
            ('{"field": "shoe_size"}', "klubb segment: the filter at field: unknown field"),
            ("[]", "klubb segment: the filter: must be an object"),
            (
                '{"field": "answer", "question": "pets", "op": "answered", "value": true}',
                "klubb segment: the filter at question: the club has no question 'pets'",
            ),
        ],
    )
    def test_a_bad_filter_is_one_line_naming_the_path(
        self, klubb: Any, filter_: str, message: str
    ) -> None:
        result = klubb("segment", "save", "bad", "--filter", filter_)
        assert result.code == 2
        assert result.err.startswith(message)
        assert len(result.err.splitlines()) == 1
        assert "no segments yet" in klubb("segment", "list").out

    def test_count_checks_the_filter_too(self, klubb: Any) -> None:
        result = klubb("segment", "count", "--filter", '{"field": "age", "op": "gte", "value": -1}')
        assert result.code == 2
        assert result.err.startswith("klubb segment: the filter at value: age must be between 0")

    @pytest.mark.parametrize(
        ("filter_", "path"),
        [
            ('{"field": "store", "op": "in", "value": ["\\ud800"]}', "value[0]"),
            ('{"field": "category", "op": "in", "value": ["ski\\udfff"]}', "value[0]"),
            (
                '{"field": "answer", "question": "x\\ud800", "op": "answered", "value": true}',
                "question",
            ),
            (
                '{"any": [{"field": "store", "op": "in", "value": ["a\\u0000b"]}]}',
                "any[0].value[0]",
            ),
        ],
    )
    @pytest.mark.parametrize("action", ["count", "save"])
    def test_a_lone_surrogate_or_a_nul_in_a_filter_exits_2_naming_where(
        self, klubb: Any, filter_: str, path: str, action: str
    ) -> None:
        args = ("segment", "save", "bad") if action == "save" else ("segment", "count")
        result = klubb(*args, "--filter", filter_)
        assert result.code == 2, result.err
        assert result.err.startswith(f"klubb segment: the filter at {path}: ")
        assert "Traceback" not in result.err
        assert len(result.err.splitlines()) == 1

    def test_a_name_that_is_not_text_exits_2_naming_the_flag(self, klubb: Any) -> None:
        # What the shell hands Python for bytes that are not UTF-8 (surrogateescape).
        result = klubb("segment", "save", "bad\udcff", "--filter", LANGUAGE_EN)
        assert result.code == 2, result.err
        assert result.err.startswith("klubb: NAME: is not text")
        assert "Traceback" not in result.err
        assert "no segments yet" in klubb("segment", "list").out

    @pytest.mark.parametrize(
        ("args", "flag"),
        [
            (("apikey", "create", "--name", "till\udcff"), "--name"),
            (("apikey", "create", "--name", "till", "--store", "a\x00b"), "--store"),
            (("admin", "list", "--club-number", "20\ud80020"), "--club-number"),
        ],
    )
    def test_a_flag_that_is_not_text_exits_2_naming_it(
        self, klubb: Any, args: tuple[str, ...], flag: str
    ) -> None:
        result = klubb(*args)
        assert result.code == 2, result.err
        assert result.err.startswith(f"klubb: {flag}: is not text")
        assert result.out == ""


class TestCampaignSend:
    def test_a_dry_run_previews_and_saves_nothing(self, klubb: Any, url: str) -> None:
        result = klubb(
            "campaign",
            "send",
            "--text",
            "Hei {first_name}! Vintersalg i {club}.",
            "--text-en",
            "Hi {first_name}! Winter sale ✓",
            "--dry-run",
        )
        assert result.code == 0, result.err
        preview = result.out
        assert "to every member with consent" in preview
        assert _value(preview, "matching") == str(EVERYONE_NB + EVERYONE_EN + 1)
        assert _value(preview, "without consent") == "1"
        assert _value(preview, "recipients") == str(EVERYONE_NB + EVERYONE_EN)
        rows = {
            line.split()[0]: line.split()[1:]
            for line in preview.splitlines()
            if line.startswith(("  nb ", "  en "))
        }
        assert rows["nb"] == [str(EVERYONE_NB), "GSM-7", "1"]
        assert rows["en"] == [str(EVERYONE_EN), "UCS-2", "1"]
        assert _value(preview, "SMS segments in all") == "8"
        assert _value(preview, "estimated cost").startswith("NOK 4.00")
        assert "(Europe/Oslo)" in _value(preview, "goes out")
        assert preview.rstrip().endswith("klubb: dry run: nothing was saved")
        assert campaigns_in(url) == []

    def test_yes_queues_a_scheduled_campaign(self, klubb: Any, url: str) -> None:
        assert klubb("segment", "save", "english", "--filter", LANGUAGE_EN).code == 0
        when = (dt.datetime.now(OSLO) + dt.timedelta(days=30)).replace(
            hour=11, minute=30, second=0, microsecond=0
        )
        result = klubb(
            "campaign",
            "send",
            "--segment",
            "english",
            "--text",
            "Hi {first_name}, here is {coupon_code}",
            "--text-nb",
            "Hei {first_name}, her er {coupon_code}",
            "--at",
            when.replace(tzinfo=None).isoformat(timespec="minutes"),
            "--control",
            "10",
            "--coupon",
            "welcome",
            "--name",
            "Winter",
            "--yes",
        )
        assert result.code == 0, result.err
        [campaign] = campaigns_in(url)
        assert campaign.status == "scheduled"
        assert campaign.name == "Winter"
        assert campaign.texts == {
            "nb": "Hei {first_name}, her er {coupon_code}",
            "sv": "Hi {first_name}, here is {coupon_code}",
            "en": "Hi {first_name}, here is {coupon_code}",
        }
        assert campaign.control_percent == 10
        assert campaign.filter == json.loads(LANGUAGE_EN)
        assert campaign.send_at == when  # the naive time is the club's own
        template = read(url, lambda s: s.get(CouponTemplate, campaign.coupon_template_id))
        assert template.key == "welcome"
        assert _value(result.out, "coupon").startswith("welcome")
        queued = result.out.splitlines()[-1]
        assert queued.startswith(f"klubb: campaign {campaign.id} 'Winter' queued for ")
        assert queued.endswith(
            ": the running `klubb serve` or `klubb worker` sends it from "
            f"{when:%a} {when.day} {when:%b %Y} 11:30 (Europe/Oslo)"
        )

    def test_a_time_in_quiet_hours_says_when_it_will_go(self, klubb: Any) -> None:
        night = (dt.datetime.now(OSLO) + dt.timedelta(days=10)).replace(
            hour=22, minute=0, second=0, microsecond=0
        )
        result = klubb("campaign", "send", "--text", "Hei", "--at", night.isoformat(), "--dry-run")
        assert result.code == 0, result.err
        morning = night + dt.timedelta(days=1)
        assert _value(result.out, "goes out") == (
            f"{morning:%a} {morning.day} {morning:%b %Y} 09:00 (Europe/Oslo)"
        )
        assert "quiet hours are 20:00-09:00" in result.out

    def test_without_yes_and_no_terminal_it_refuses(self, klubb: Any, url: str) -> None:
        result = klubb("campaign", "send", "--text", "Hei", stdin="y\n")
        assert result.code == 2
        assert "pass --yes" in result.err
        assert _value(result.out, "recipients") == str(EVERYONE_NB + EVERYONE_EN)
        assert campaigns_in(url) == []

    def test_on_a_terminal_it_asks(self, klubb: Any, url: str) -> None:
        declined = klubb("campaign", "send", "--text", "Hei", stdin="n\n", tty=True)
        assert declined.code == 1
        assert "Send to 8 members? [y/N]" in declined.out
        assert "nothing was saved" in declined.out
        assert campaigns_in(url) == []

        accepted = klubb("campaign", "send", "--text", "Hei", stdin="y\n", tty=True)
        assert accepted.code == 0, accepted.err
        assert "queued for 8 members" in accepted.out
        [campaign] = campaigns_in(url)
        assert campaign.status == "scheduled"
        assert campaign.filter == {"all": []}

    @pytest.mark.parametrize(
        ("flags", "message"),
        [
            (("--at", "tomorrow"), "klubb campaign: --at: 'tomorrow' is not an ISO 8601 time"),
            (("--at", "2020-01-01T10:00"), "klubb campaign: --at: Wed 1 Jan 2020 10:00"),
            (("--at", "2020-01-01T10:00+00:00"), "is in the past"),
            (("--control", "51"), "klubb campaign: --control: must be between 0 and 50"),
            (
                ("--segment", "nope"),
                "klubb campaign: --segment: the club has no segment named 'nope'",
            ),
            (("--coupon", "nope"), "klubb campaign: --coupon: the club has no active coupon"),
            (("--text-sv", "Hej {frist_name}"), "klubb campaign: --text-sv: unknown placeholder"),
        ],
    )
    def test_bad_input_is_refused_naming_the_flag(
        self, klubb: Any, url: str, flags: tuple[str, ...], message: str
    ) -> None:
        result = klubb("campaign", "send", "--text", "Hei", *flags, "--yes")
        assert result.code == 2
        assert message in result.err
        assert len(result.err.splitlines()) == 1
        assert campaigns_in(url) == []

    def test_no_text_is_refused(self, klubb: Any) -> None:
        result = klubb("campaign", "send", "--yes")
        assert result.code == 2
        assert "--text" in result.err

    def test_an_unknown_coupon_lists_the_clubs(self, klubb: Any) -> None:
        result = klubb("campaign", "send", "--text", "Hei", "--coupon", "nope", "--dry-run")
        assert "(its coupons: welcome, birthday, " in result.err


class TestCampaignFollowUp:
    def test_list_show_and_cancel(self, klubb: Any, url: str) -> None:
        assert "no campaigns yet" in klubb("campaign", "list").out
        later = (dt.datetime.now(OSLO) + dt.timedelta(days=3)).replace(hour=12, minute=0)
        made = klubb(
            "campaign", "send", "--text", "Hei {first_name}", "--name", "Jul", "--control",
            "20", "--at", later.isoformat(), "--yes",
        )  # fmt: skip
        assert made.code == 0, made.err
        [campaign] = campaigns_in(url)

        listed = klubb("campaign", "list")
        header, row = listed.out.splitlines()
        assert header.split() == [
            "ID",
            "NAME",
            "STATUS",
            "SENDS",
            "AT",
            "(Europe/Oslo)",
            "PLANNED",
            "SENT",
        ]
        assert row.split() == [
            str(campaign.id),
            "Jul",
            "scheduled",
            f"{later:%Y-%m-%d}",
            "12:00",
            "-",
            "-",
        ]

        shown = klubb("campaign", "show", str(campaign.id))
        assert shown.code == 0, shown.err
        assert shown.out.startswith(f"Campaign {campaign.id} 'Jul' (broadcast) of Torshov Sport")
        assert _value(shown.out, "status") == "scheduled"
        assert _value(shown.out, "to") == "every member with consent"
        assert _value(shown.out, "control") == "20% held out"
        assert _value(shown.out, "coupon") == "none"
        assert "    nb: Hei {first_name}" in shown.out
        assert _value(shown.out, "sent") == "0"
        assert _value(shown.out, "skipped") == "0"

        cancelled = klubb("campaign", "cancel", str(campaign.id))
        assert cancelled.code == 0, cancelled.err
        assert f"cancelled campaign {campaign.id} 'Jul'" in cancelled.out
        assert campaigns_in(url)[0].status == "cancelled"
        again = klubb("campaign", "cancel", str(campaign.id))
        assert again.code == 1
        assert "already cancelled" in again.err
        unknown = klubb("campaign", "show", "999")
        assert unknown.code == 1
        assert unknown.err.strip() == (
            "klubb campaign: the club has no campaign 999: see `klubb campaign list`"
        )

    def test_another_clubs_campaign_is_not_found(self, klubb: Any, url: str) -> None:
        assert klubb("campaign", "send", "--text", "Hei", "--yes").code == 0
        [campaign] = campaigns_in(url)
        read(url, _second_club)
        unnamed = klubb("campaign", "show", str(campaign.id))
        assert unnamed.code == 2
        assert "--club-number" in unnamed.err
        other = klubb("campaign", "show", str(campaign.id), "--club-number", "2121")
        assert other.code == 1
        mine = klubb("campaign", "show", str(campaign.id), "--club-number", "2020")
        assert mine.code == 0, mine.err


def _second_club(session: Session) -> None:
    programs.create(
        session,
        name="Kaffebaren",
        numbers=[club_number("2121") or ""],
        country="SE",
        contact="hej@kaffebaren.se",
        privacy_url="https://kaffebaren.se/privacy",
        now=dt.datetime.now(dt.UTC),
    )


def _value(output: str, label: str) -> str:
    """The value printed after `label` in a preview or `campaign show`."""
    for line in output.splitlines():
        if line.startswith(f"  {label}  "):
            return line[len(label) + 2 :].strip()
    raise AssertionError(f"no {label!r} in:\n{output}")


# --- klubb worker -----------------------------------------------------------------------------


async def queue_system_message(url: str) -> None:
    def work(session: Session) -> None:
        program = session.scalar(select(Program))
        assert program is not None
        messages.enqueue(
            session,
            program_id=program.id,
            member_id=None,
            kind="system",
            to_number="+4791234567",
            from_number="2020",
            body="Hei fra Torshov Sport",
            segments=1,
            now=dt.datetime.now(dt.UTC),
        )

    db = open_database(url)
    try:
        await db.run(work)
    finally:
        await db.close()


def test_the_worker_sends_what_is_queued_until_interrupted(
    tmp_path: Path, sqlite_template: Path
) -> None:
    """`klubb worker` alone sends a queued system message and a campaign made by the CLI, and
    stops cleanly on Ctrl-C."""
    shutil.copy(sqlite_template, tmp_path / "k.db")
    command = Klubb(tmp_path, free_port())
    url = command.env["KLUBB_DATABASE_URL"]
    asyncio.run(demo_club_with_members(url, never_quiet=True))
    asyncio.run(queue_system_message(url))
    made = command("campaign", "send", "--text", "Nyhet i {club}", "--yes")
    assert made.returncode == 0, made.stderr
    outbox = tmp_path / "outbox.jsonl"
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [KLUBB, "worker"],
            cwd=tmp_path,
            env={**command.env, "KLUBB_CONSOLE_OUTBOX": str(outbox)},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + WORKER_SECONDS
        while len(_bodies(outbox)) < 1 + EVERYONE_NB + EVERYONE_EN:
            if worker.poll() is not None:
                pytest.fail(f"klubb worker exited with {worker.returncode}:\n{log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"nothing sent in {WORKER_SECONDS} s:\n{log.read_text()}")
            time.sleep(0.1)
        worker.send_signal(signal.SIGINT)
        assert worker.wait(timeout=10) in (0, 130), log.read_text()
    finally:
        stop(worker)
    assert "klubb worker: sending and running jobs; Ctrl-C to stop" in log.read_text()
    assert "Traceback" not in log.read_text()
    bodies = _bodies(outbox)
    assert len(bodies) == 1 + EVERYONE_NB + EVERYONE_EN
    assert "Hei fra Torshov Sport" in bodies
    nyhet = "Torshov Sport: Nyhet i Torshov Sport\n" + campaigns.footer("nb")
    assert bodies.count(nyhet) == EVERYONE_NB
    # Stopped after the batch was recorded: nothing is left in doubt.
    statuses = read(url, lambda s: s.execute(select(OutboxMessage.status)).scalars().all())
    assert set(statuses) == {"sent"}


def _bodies(outbox: Path) -> list[str]:
    if not outbox.exists():
        return []
    return [json.loads(line)["body"] for line in outbox.read_text().splitlines() if line]
