"""What an operator gets wrong is said in a line or two naming it and what to do, with the exit
code the CLI uses for it (2: what was given is wrong; 1: the database can't be used), and no
traceback: a database URL that is none or names another database, a database that can't be
reached, a schema a newer Klubb migrated, an id out of range, a port taken, a setting that is
not what it looks like, a club's country or privacy page, a SQLite file not made yet."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot.cli.common import MAX_ID
from bot.cli.main import main
from store import migrate
from tests.conftest import POSTGRES_URL, migrated_by_a_newer_klubb

# A port nothing listens on (as tests/cli/test_serve_schema.py), the password to be masked.
CLOSED = "postgresql+asyncpg://postgres:hunter2@127.0.0.1:1/klubb"
REFUSED = "connection refused: is the database server running, on that host and port?"


def klubb(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *argv: str,
    **env: str,
) -> tuple[int, str]:
    """`klubb ARGV` run through its main function with only `env`'s KLUBB_* variables: the
    exit code (argparse's too) and what it said on stderr."""
    for name in os.environ:
        if name.startswith(("KLUBB_", "TWILIO_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated SQLite database of the test's own."""
    path = tmp_path / "k.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


# --- 1, 4: a database URL -----------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [["migrate"], ["serve"], ["worker"], ["restore", "x.db"], ["club", "show"], ["report"]],
)
@pytest.mark.parametrize("url", ["not a url", "postgresql://u:hunter2@db:port/klubb"])
def test_a_url_that_is_none_is_said_by_every_command(
    argv: list[str], url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = klubb(monkeypatch, capsys, *argv, KLUBB_DATABASE_URL=url)
    assert code == 2
    assert err.startswith("klubb: KLUBB_DATABASE_URL is not a database URL: ")
    assert "(sqlite:///FILE or postgresql://USER@HOST/NAME)" in err
    assert "hunter2" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [["migrate"], ["club", "show"], ["backup", "--out", "x"]])
def test_a_database_klubb_does_not_run_on_is_refused_naming_the_supported_ones(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`klubb migrate` took mysql:// for PostgreSQL."""
    code, err = klubb(monkeypatch, capsys, *argv, KLUBB_DATABASE_URL="mysql://u@localhost/db")
    assert code == 2
    assert "KLUBB_DATABASE_URL mysql://u@localhost/db names mysql" in err
    assert "the supported schemes are sqlite and postgresql" in err


def test_postgres_is_postgresql_for_every_command(
    postgres_schema: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`klubb club show` raised ValueError on postgres:// where `klubb migrate` accepted it."""
    url = make_url(postgres_schema).set(drivername="postgres").render_as_string(False)
    assert url.startswith("postgres://")
    assert klubb(monkeypatch, capsys, "migrate", KLUBB_DATABASE_URL=url)[0] == 0
    # An id no club has, whatever earlier tests left in this run's database.
    none = str(2**62)
    code, err = klubb(monkeypatch, capsys, "apikey", "list", "--club", none, KLUBB_DATABASE_URL=url)
    assert (code, err.strip()) == (2, f"klubb apikey: no club with id {none}")


# --- 2: a database that can't be reached --------------------------------------------------

EVERY_COMMAND_ON_THE_DATABASE = [
    ["migrate"],
    ["init", "--demo"],
    ["club", "show"],
    ["apikey", "list"],
    ["report"],
    ["segment", "list"],
    ["campaign", "list"],
    ["journey", "list"],
    ["admin", "list"],
    ["inbox", "list"],
    ["poster", "--out", "poster.pdf"],
    ["simulate"],
    ["serve"],
    ["worker"],
]


@pytest.mark.parametrize("argv", EVERY_COMMAND_ON_THE_DATABASE, ids=" ".join)
def test_a_closed_port_is_one_line_for_every_command(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As `klubb serve` said it already, and `klubb migrate` in 170 lines of traceback."""
    code, err = klubb(monkeypatch, capsys, *argv, KLUBB_DATABASE_URL=CLOSED)
    assert code == 1
    assert err == (
        f"klubb {argv[0]}: can't read the database at "
        f"postgresql+asyncpg://postgres:***@127.0.0.1:1/klubb: {REFUSED}\n"
    )


@pytest.mark.parametrize("argv", [["migrate"], ["init", "--demo"], ["club", "show"]])
@pytest.mark.parametrize("wrong", ["database", "role"])
def test_a_database_or_role_that_does_not_exist_is_named(
    argv: list[str],
    wrong: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = f"fixb_{uuid.uuid4().hex[:8]}"
    url = make_url(POSTGRES_URL).set(**{"database" if wrong == "database" else "username": name})
    code, err = klubb(
        monkeypatch, capsys, *argv, KLUBB_DATABASE_URL=url.render_as_string(hide_password=False)
    )
    assert code == 1
    assert f"klubb {argv[0]}: can't read the database at " in err
    assert err.strip().endswith(f'{wrong} "{name}" does not exist')


def test_a_sqlite_file_that_cant_be_opened_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'no-such-directory' / 'k.db'}"
    code, err = klubb(monkeypatch, capsys, "migrate", KLUBB_DATABASE_URL=url)
    assert code == 1
    assert err.strip() == f"klubb migrate: can't read the database at {url}: unable to open " + (
        "database file"
    )


def test_in_a_subprocess_neither_says_a_traceback(tmp_path: Path) -> None:
    """The command as run: a URL that is none (exit 2), then a closed port (exit 1)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KLUBB_", "TWILIO_"))}
    for url, code in (("not a url", 2), (CLOSED, 1)):
        done = subprocess.run(
            [sys.executable, "-m", "bot.cli.main", "migrate"],
            cwd=tmp_path,
            env={**env, "KLUBB_DATABASE_URL": url},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == code
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


# --- 3: a schema a newer Klubb migrated -----------------------------------------------------


def test_migrate_on_a_newer_klubbs_schema_says_upgrade_klubb(
    tmp_path: Path,
    sqlite_template: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Alembic's "Can't locate revision" traceback before; now what `klubb serve` says, and
    the database left at its revision."""
    path = tmp_path / "ahead.db"
    migrated_by_a_newer_klubb(sqlite_template, path)
    code, err = klubb(monkeypatch, capsys, "migrate", KLUBB_DATABASE_URL=f"sqlite:///{path}")
    assert code == 1
    assert err.strip() == (
        f"klubb migrate: the database at sqlite:///{path} is at migration 0099, which this "
        f"Klubb (newest {migrate.head()}) does not know: a newer Klubb migrated it; upgrade "
        "Klubb, then run `klubb migrate`"
    )
    assert asyncio.run(migrate.state(f"sqlite:///{path}")).found == "0099"


# --- 5: ids ---------------------------------------------------------------------------------

TOO_BIG = "99999999999999999999999"


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["campaign", "show", TOO_BIG, "--club", "1"], "argument ID"),
        (["campaign", "cancel", "0"], "argument ID"),
        (["apikey", "list", "--club", TOO_BIG], "argument --club"),
        (["club", "show", "--club", "-1"], "argument --club"),
        (["inbox", "reply", TOO_BIG, "--text", "Hei", "--as", "a@b.no"], "argument ID"),
    ],
)
def test_an_id_out_of_range_is_a_usage_error(
    argv: list[str],
    named: str,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An overflow traceback in the driver before."""
    code, err = klubb(monkeypatch, capsys, *argv, KLUBB_DATABASE_URL=sqlite_url)
    assert code == 2
    assert f"error: {named}: " in err
    assert f"is not an id (ids run from 1 to {MAX_ID})" in err


def test_the_largest_id_reaches_the_database(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """MAX_ID fits SQLite's INTEGER and PostgreSQL's BIGINT: an answer, not an overflow."""
    code, err = klubb(
        monkeypatch,
        capsys,
        "apikey",
        "list",
        "--club",
        str(MAX_ID),
        KLUBB_DATABASE_URL=database_url,
    )
    assert (code, err.strip()) == (2, f"klubb apikey: no club with id {MAX_ID}")


# --- 6: the worker's metrics port ---------------------------------------------------------


def test_the_workers_metrics_port_taken_is_one_line(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = klubb(
            monkeypatch,
            capsys,
            "worker",
            KLUBB_DATABASE_URL=sqlite_url,
            KLUBB_METRICS_PORT=str(port),
        )
    assert code == 1
    assert err.startswith(f"klubb worker: can't listen on 127.0.0.1:{port}: ")
    assert err.strip().endswith("(is another `klubb worker` running? set KLUBB_METRICS_PORT)")
    assert len(err.strip().splitlines()) == 1


# --- 7: settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        (
            "KLUBB_PUBLIC_URL",
            "https://klubb.example.no   # what Twilio signs",
            "klubb: KLUBB_PUBLIC_URL contains a space: a comment on the same line? systemd "
            "keeps it as part of the value",
        ),
        ("KLUBB_PUBLIC_URL", "ftp://x", "klubb: KLUBB_PUBLIC_URL must be an absolute http://"),
        ("KLUBB_SCHEDULER", "maybe", "klubb: KLUBB_SCHEDULER must be on or off"),
    ],
)
def test_a_setting_that_is_not_what_it_looks_like_stops_every_command(
    variable: str,
    value: str,
    said: str,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for command in ("serve", "worker"):
        code, err = klubb(
            monkeypatch, capsys, command, KLUBB_DATABASE_URL=sqlite_url, **{variable: value}
        )
        assert code == 2
        assert err.startswith(said)


# --- 8: klubb init's country and privacy page ---------------------------------------------

A_CLUB = ["init", "--name", "Kafé", "--number", "+4790000001", "--contact", "post@kafe.no"]


def test_init_refuses_an_unknown_country_and_a_privacy_url_that_is_no_https_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Said before the database is opened (its file is not made), each flag on its line."""
    path = tmp_path / "k.db"
    code, err = klubb(
        monkeypatch,
        capsys,
        *A_CLUB,
        "--country",
        "ZZ",
        "--privacy-url",
        "notaurl",
        KLUBB_DATABASE_URL=f"sqlite:///{path}",
    )
    assert code == 2
    assert err.splitlines() == [
        "klubb init: --privacy-url 'notaurl': an https:// address of at most 300 characters",
        "klubb init: --country 'ZZ': one of NO, SE, DK, FI, IS",
    ]
    assert not path.exists()


@pytest.mark.parametrize("url", ["http://kafe.no/personvern", "https://kafe", "kafe.no/p"])
def test_init_applies_the_admins_rule_to_the_privacy_url(
    url: str, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The admin's settings page refuses these (store.clubs.programs.check_club): so does init."""
    argv = [*A_CLUB, "--country", "NO", "--privacy-url", url]
    code, err = klubb(monkeypatch, capsys, *argv, KLUBB_DATABASE_URL=sqlite_url)
    assert code == 2
    assert err.startswith(f"klubb init: --privacy-url {url!r}: an https:// address")


def test_init_takes_a_country_in_lower_case(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*A_CLUB, "--country", "se", "--privacy-url", "https://kafe.se/integritet"]
    code, err = klubb(monkeypatch, capsys, *argv, KLUBB_DATABASE_URL=sqlite_url)
    assert (code, err) == (0, "")
    engine = create_engine(sqlite_url)
    with engine.connect() as conn:
        found = conn.execute(text("SELECT country, timezone, currency FROM programs")).one()
    engine.dispose()
    assert tuple(found) == ("SE", "Europe/Stockholm", "SEK")


# --- 9: a SQLite file not made yet ----------------------------------------------------------


def test_serve_refuses_a_sqlite_file_not_there_without_making_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty file was left behind the refusal; `klubb migrate` is the one that makes it."""
    path = tmp_path / "k.db"
    url = f"sqlite:///{path}"
    for argv in (["serve"], ["worker"], ["club", "show"]):
        code, err = klubb(monkeypatch, capsys, *argv, KLUBB_DATABASE_URL=url)
        assert code == 1
        assert f"the SQLite file {path} does not exist: run `klubb migrate` first" in err
        assert not path.exists()
    code, _ = klubb(monkeypatch, capsys, "migrate", KLUBB_DATABASE_URL=url)
    assert code == 0
    assert asyncio.run(migrate.state(url)).status == "current"
