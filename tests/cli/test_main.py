"""The `klubb` command end to end, in subprocesses: migrate, init, serve and simulate."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.cli.demo import DEMO_CLUB, DEMO_QUESTIONS
from store import migrate, reports
from store.clubs import programs
from store.database import open_database
from store.models import (
    ConsentEvent,
    LedgerEntry,
    Member,
    OutboxMessage,
    ProfileAnswer,
    Program,
    Purchase,
)

KLUBB = str(Path(sys.executable).with_name("klubb"))
COMMAND_TIMEOUT = 30
STARTUP_SECONDS = 10


async def create_demo_club(url: str) -> None:
    def work(session: Session) -> None:
        program = programs.create(session, **DEMO_CLUB, now=dt.datetime.now(dt.UTC))
        for question in DEMO_QUESTIONS:
            programs.add_question(session, program, **question)

    db = open_database(url)
    try:
        await db.run(work)
    finally:
        await db.close()


async def demo_counts(url: str) -> dict[str, Any]:
    """What `klubb init --demo` left in the database."""

    def work(session: Session) -> dict[str, Any]:
        def count(table: Any, *where: Any) -> int:
            return int(session.scalar(select(func.count()).select_from(table).where(*where)) or 0)

        program = session.scalars(select(Program)).one()
        now = dt.datetime.now(dt.UTC)
        today = now.date()
        year = reports.period(program, today - dt.timedelta(days=400), today + dt.timedelta(days=2))
        results = reports.campaign_results(session, program, year, now)
        (campaign,) = results
        return {
            "members": count(Member),
            "languages": sorted(
                set(session.scalars(select(Member.language).where(Member.language.is_not(None))))
            ),
            "birthdays": count(Member, Member.birthday.is_not(None)),
            "answers": count(ProfileAnswer),
            "consent_events": count(ConsentEvent),
            "purchases": count(Purchase),
            "earned": count(LedgerEntry, LedgerEntry.kind == "earn"),
            "outbox": count(OutboxMessage),
            "campaign": campaign,
        }

    db = open_database(url)
    try:
        return await db.run(work)
    finally:
        await db.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Klubb:
    """The `klubb` command run in its own directory against its own SQLite file and port."""

    directory: Path
    port: int

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KLUBB_", "TWILIO_"))}
        env["KLUBB_DATABASE_URL"] = f"sqlite:///{self.directory / 'k.db'}"
        env["KLUBB_PORT"] = str(self.port)
        return env

    def __call__(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [KLUBB, *args],
            cwd=self.directory,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )

    def serve(self, log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            return subprocess.Popen(
                [KLUBB, "serve"],
                cwd=self.directory,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )


@pytest.fixture
def klubb(tmp_path: Path) -> Klubb:
    return Klubb(tmp_path, free_port())


@pytest.fixture
def migrated(klubb: Klubb, sqlite_template: Path) -> Klubb:
    """`klubb` on an already migrated database (a copy of the template, to save a subprocess)."""
    shutil.copy(sqlite_template, klubb.directory / "k.db")
    return klubb


def wait_until_healthy(port: int, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"klubb serve exited with {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    pytest.fail(f"klubb serve did not answer /healthz in {STARTUP_SECONDS} s:\n{log.read_text()}")


def stop(server: subprocess.Popen[bytes]) -> int:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
    return server.returncode


@pytest.fixture
def demo_server(migrated: Klubb, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A migrated database with the demo club, and `klubb serve` answering on its port."""
    asyncio.run(create_demo_club(migrated.env["KLUBB_DATABASE_URL"]))
    log = tmp_path / "serve.log"
    server = migrated.serve(log)
    try:
        wait_until_healthy(migrated.port, server, log)
        yield server
    finally:
        stop(server)


class TestSetup:
    def test_serve_before_migrate_says_to_migrate(self, klubb: Klubb) -> None:
        """`klubb serve` on an unmigrated database exits 1 and tells you to run `klubb migrate`."""
        result = klubb("serve")
        assert result.returncode == 1
        assert "klubb migrate" in result.stderr

    def test_simulate_on_a_database_never_migrated_says_so(self, klubb: Klubb) -> None:
        """`klubb simulate` reads the club's number first: without a schema it names
        `klubb migrate` and exits 1, no traceback."""
        result = klubb("simulate", "--from", "+4791234567", stdin="hei\n")
        assert result.returncode == 1
        assert "klubb migrate" in result.stderr
        assert "Traceback" not in result.stderr

    def test_serve_on_a_taken_port_says_so(self, migrated: Klubb) -> None:
        """`klubb serve` on a port another program holds exits 1 naming the port, no traceback."""
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", migrated.port))
            holder.listen()
            result = migrated("serve")
        assert result.returncode == 1
        assert f"127.0.0.1:{migrated.port}" in result.stderr
        assert "KLUBB_PORT" in result.stderr
        assert "Traceback" not in result.stderr

    def test_migrate_brings_the_database_to_the_current_schema(self, klubb: Klubb) -> None:
        """`klubb migrate` on a new database says it is up to date, and it is."""
        result = klubb("migrate")
        assert result.returncode == 0, result.stderr
        assert "up to date" in result.stdout
        url = klubb.env["KLUBB_DATABASE_URL"]
        assert asyncio.run(migrate.is_current(url)) is True

    def test_alembic_is_quiet_unless_verbose(self, migrated: Klubb) -> None:
        """A command's answer comes alone; Alembic's INFO lines only with --verbose."""
        quiet = migrated("apikey", "list")
        assert "alembic" not in quiet.stderr + quiet.stdout
        migrate_ = migrated("migrate")
        assert migrate_.returncode == 0, migrate_.stderr
        assert migrate_.stderr == ""
        assert migrate_.stdout == "klubb: database is up to date\n"
        loud = migrated("--verbose", "migrate")
        assert "INFO alembic.runtime.migration: Context impl SQLiteImpl." in loud.stderr

    def test_the_package_names_its_license_as_spdx(self) -> None:
        """setuptools warns at every install about `license = { text = ... }`: the SPDX string
        it wants needs setuptools 77 to build."""
        project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
        assert project["project"]["license"] == "MIT"
        assert "setuptools>=77" in project["build-system"]["requires"]

    def test_init_without_flags_names_every_missing_one(self, klubb: Klubb) -> None:
        """`klubb init` without --demo exits 2 naming each missing flag, and only those."""
        result = klubb("init", "--name", "Kaffebaren", "--country", "NO")
        assert result.returncode == 2
        assert "missing --number, --contact, --privacy-url" in result.stderr
        assert "--name" not in result.stderr
        assert "--country" not in result.stderr
        assert "--demo" in result.stderr

    def test_init_with_a_bad_number_exits_2_naming_it(self, migrated: Klubb) -> None:
        """A club number that is neither a short code nor a phone number is refused with exit 2."""
        result = migrated(
            "init",
            "--name",
            "Kaffebaren",
            "--number",
            "12",
            "--number",
            "+47 912 34 000",
            "--country",
            "NO",
            "--contact",
            "post@kaffebaren.no",
            "--privacy-url",
            "https://kaffebaren.no/personvern",
        )
        assert result.returncode == 2
        assert "not a phone number or short code: 12\n" in result.stderr
        assert "created" not in result.stdout

    def test_init_before_migrate_says_to_migrate(self, klubb: Klubb) -> None:
        """`klubb init --demo` on a new database says to run `klubb migrate`, with no traceback."""
        result = klubb("init", "--demo")
        assert result.returncode != 0
        assert "Traceback" not in result.stderr
        assert "klubb migrate" in result.stderr

    def test_init_demo_twice_creates_one_club(self, migrated: Klubb) -> None:
        """`klubb init --demo` creates the demo club; a second run says it exists and exits 0."""
        first = migrated("init", "--demo")
        assert first.returncode == 0, first.stderr
        assert "created club 'Torshov Sport'" in first.stdout
        assert "2020" in first.stdout
        second = migrated("init", "--demo")
        assert second.returncode == 0, second.stderr
        assert "already" in second.stdout
        assert "created" not in second.stdout

    def test_init_demo_fills_the_club_once(self, migrated: Klubb) -> None:
        """The demo club has members, purchases with their points, and a finished campaign
        with a control group whose results the report counts; a second run adds nothing, and
        `klubb report` prints them."""
        assert migrated("init", "--demo").returncode == 0
        first = asyncio.run(demo_counts(migrated.env["KLUBB_DATABASE_URL"]))
        assert first["members"] >= 250
        assert set(first["languages"]) == {"nb", "sv", "en"}
        assert first["birthdays"] > 0
        assert first["answers"] > 0
        assert first["consent_events"] >= first["members"] - 20  # pending never consented
        assert first["purchases"] > 300
        assert first["earned"] == first["purchases"]  # each purchase earned its points
        campaign = first["campaign"]
        assert campaign.status == "done"
        assert campaign.sent > 0
        assert campaign.delivered > 0
        assert campaign.held_out > 0
        assert campaign.recipients.buyers > 0
        assert migrated("init", "--demo").returncode == 0
        second = asyncio.run(demo_counts(migrated.env["KLUBB_DATABASE_URL"]))
        assert {k: v for k, v in second.items() if k != "campaign"} == {
            k: v for k, v in first.items() if k != "campaign"
        }
        report = migrated("report", "--from", "2020-01-01")
        assert report.returncode == 0, report.stderr
        assert "Vintersalg" in report.stdout


class TestServeAndSimulate:
    def test_a_conversation_through_the_running_server(
        self, klubb: Klubb, demo_server: subprocess.Popen[bytes]
    ) -> None:
        """Texts piped into `klubb simulate` go through the live webhook and get replies in nb."""
        result = klubb(
            "simulate",
            "--from",
            "+4791234567",
            stdin="JOIN\nja\nKari\n12.03.1990\n1 3\nSTOP\nhei\n",
        )
        assert result.returncode == 0, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        assert not [line for line in lines if line.startswith("! ")], result.stdout  # no HTTP error
        replies = [line for line in lines if line.startswith("< ")]
        assert "svar JA" in replies[0]
        assert any("Kari" in reply for reply in replies)

        stop_at, hei_at = lines.index("> STOP"), lines.index("> hei")
        assert [line for line in lines[stop_at:hei_at] if line.startswith("< ")]  # STOP confirmed
        assert lines[hei_at + 1 :] == ["  (no reply)"]
        assert result.stdout.count("(no reply)") == 1

        assert stop(demo_server) == 0  # SIGTERM is a clean shutdown
