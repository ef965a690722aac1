"""`klubb club show|set`: the owner turns the page link in the welcome and reward SMS on and
off from the terminal; a bad value names the flag."""

from __future__ import annotations

import asyncio

import pytest

from bot.cli.main import main
from store.database import Database, open_database
from store.models import Program
from tests.cli.test_club_limits import klubb_env  # noqa: F401  (a fixture)
from tests.conftest import create_club


async def _is_on(url: str) -> list[bool]:
    db = open_database(url)
    try:
        return await db.read(lambda s: [p.page_link_in_sms for p in s.query(Program).all()])
    finally:
        await db.close()


@pytest.fixture
def one_club(klubb_env: str) -> str:  # noqa: F811
    async def make() -> None:
        db: Database = open_database(klubb_env)
        try:
            await create_club(db)
        finally:
            await db.close()

    asyncio.run(make())
    return klubb_env


def test_set_turns_the_link_on_and_off_and_show_says_so(
    one_club: str, capsys: pytest.CaptureFixture
) -> None:
    assert main(["club", "show"]) == 0
    assert "page link in SMS" in capsys.readouterr().out
    assert asyncio.run(_is_on(one_club)) == [False]

    assert main(["club", "set", "--page-link-in-sms", "on"]) == 0
    out = capsys.readouterr().out
    assert "page link in SMS        on" in out
    assert asyncio.run(_is_on(one_club)) == [True]

    assert main(["club", "set", "--page-link-in-sms", "off", "--club-number", "2020"]) == 0
    assert asyncio.run(_is_on(one_club)) == [False]


def test_a_bad_value_or_no_flag_is_refused_and_nothing_changes(
    one_club: str, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as refused:  # argparse's own refusal of a choice
        main(["club", "set", "--page-link-in-sms", "yes"])
    assert refused.value.code == 2
    assert "--page-link-in-sms" in capsys.readouterr().err
    assert main(["club", "set"]) == 2
    assert "nothing to change" in capsys.readouterr().err
    assert asyncio.run(_is_on(one_club)) == [False]
