"""The club's settings have one table of bounds (store.clubs.programs.LIMITS): `klubb init`
refuses a cap or a minimum age outside it, names the range the table gives, and --help says it."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.cli.main import main
from store.clubs import programs
from store.database import Database, open_database
from store.models import Program
from tests.conftest import create_club

CLUB = (
    "init",
    "--name",
    "Kaffebaren",
    "--number",
    "+47 912 34 000",
    "--country",
    "NO",
    "--contact",
    "post@kaffebaren.no",
    "--privacy-url",
    "https://kaffebaren.no/personvern",
)


@pytest.fixture
def klubb_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ("KLUBB_GATEWAY", "KLUBB_CONSOLE_OUTBOX", "KLUBB_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KLUBB_DATABASE_URL", database_url)
    return database_url


def _edges(setting: str) -> list[tuple[str, int, bool]]:
    low, high = programs.LIMITS[setting]
    edges = ((low - 1, False), (low, True), (high, True), (high + 1, False))
    return [(setting, value, taken) for value, taken in edges]


FLAGS = {"marketing_per_month": "--per-month", "min_age": "--min-age"}


@pytest.mark.parametrize(
    ("setting", "value", "taken"), _edges("marketing_per_month") + _edges("min_age")
)
def test_init_takes_exactly_the_values_the_table_allows(
    klubb_env: str, capsys: pytest.CaptureFixture, setting: str, value: int, taken: bool
) -> None:
    code = main([*CLUB, FLAGS[setting], str(value)])
    out, err = capsys.readouterr()
    stored = asyncio.run(_stored(klubb_env, setting))
    if taken:
        assert code == 0, err
        assert "created club 'Kaffebaren'" in out
        assert stored == [value]
    else:
        # One line naming the flag given (not the stored setting's name), exit 2 as for
        # every other flag of init.
        low, high = programs.LIMITS[setting]
        assert code == 2
        assert (
            err == f"klubb init: {FLAGS[setting]} {value!r}: a whole number from {low} to {high}\n"
        )
        assert stored == []


def test_a_number_another_club_answers_on_is_named_with_its_flag(
    klubb_env: str, capsys: pytest.CaptureFixture
) -> None:
    assert main(list(CLUB)) == 0
    capsys.readouterr()
    other = [*CLUB]
    other[other.index("Kaffebaren")] = "Tebaren"
    code = main(other)
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err == "klubb init: --number +4791234000: another club answers on it\n"
    assert asyncio.run(_stored(klubb_env, "min_age")) == [13]


async def _stored(url: str, setting: str) -> list[int]:
    """The setting of every club in the database."""
    db = open_database(url)
    try:
        return await db.read(lambda s: [getattr(p, setting) for p in s.scalars(select(Program))])
    finally:
        await db.close()


def test_help_names_the_tables_ranges(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["init", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    cap_low, cap_high = programs.LIMITS["marketing_per_month"]
    age_low, age_high = programs.LIMITS["min_age"]
    assert f"marketing SMS cap ({cap_low}-{cap_high})" in help_text
    assert f"minimum age to join ({age_low}-{age_high})" in help_text


async def test_the_minimum_age_changes_within_the_table_only(db: Database) -> None:
    club = await create_club(db)

    def change(session: Session, age: int) -> int:
        program = programs.get(session, club)
        assert program is not None
        programs.update_numbers(session, program, min_age=age)
        return program.min_age

    assert await db.run(lambda s: change(s, 15)) == 15
    with pytest.raises(programs.InvalidSettings) as refused:
        await db.run(lambda s: change(s, 12))
    assert refused.value.problems == {"min_age": "a whole number from 13 to 18"}
