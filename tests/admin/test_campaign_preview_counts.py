"""The preview's funnel and its recipients per text language, on SQLite and PostgreSQL, counted
by hand for a small club: members without consent, over the cap, with a language of their own,
with none (their number's), and with one the campaign has no text in (the fallback text)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from store.database import Database
from store.members import members
from tests.admin.conftest import OWNER, Admin, create_member
from tests.admin.test_campaigns import form, over_the_cap, rail

pytestmark = pytest.mark.usefixtures("cheap_argon2")

# (phone, language stored): the language used is the stored one, else the number's.
CONSENTING = [
    ("+4791000001", "nb"),
    ("+4791000002", "nb"),
    ("+4691000003", "nb"),  # a Swede who chose Norwegian
    ("+46701000004", "sv"),
    ("+4791000005", "sv"),  # a Norwegian number, Swedish chosen
    ("+46701000006", None),  # Swedish by the number
    ("+447700000007", "en"),
    ("+447700000008", "en"),
    ("+447700000009", None),  # English by the number
    ("+4791000010", None),  # Norwegian by the number
]


@pytest.fixture
async def signed_in_owner(admin: Admin, owner: int) -> Admin:
    return await admin.signed_in(OWNER)


def languages(html: str) -> dict[str, int]:
    """The preview's recipients per text language, as its table shows them."""
    rows = re.findall(r'data-language="(\w+)">\s*<td>[^<]*</td>\s*<td>([^<]*)</td>', html)
    return {language: int(re.sub(r"\D", "", figure)) for language, figure in rows}


@pytest.fixture
async def club_of_eleven(db: Database, club: int) -> int:
    """The ten consenting members above, one who stopped and one over the monthly cap."""
    for number, (phone, _) in enumerate(CONSENTING):
        await create_member(db, club, phone, f"M{number}")
    await create_member(db, club, "+4791000020", "Stina", status=members.STOPPED)
    capped = await create_member(db, club, "+4791000021", "Nils")
    await over_the_cap(db, club, capped, "+4791000021")

    def set_languages(session: Session) -> None:
        for phone, language in CONSENTING:
            session.execute(
                update(members.Member)
                .where(members.Member.program_id == club, members.Member.phone == phone)
                .values(language=language)
            )

    await db.run(set_languages)
    return club


async def test_each_member_is_counted_once_in_the_funnel_and_under_the_text_they_get(
    signed_in_owner: Admin, club_of_eleven: int
) -> None:
    """nb 4 (three chose it, one by number), sv 3, en 3; the campaign has no English text,
    so the English members get the Norwegian one (the first text): nb 7, sv 3."""
    html = await (
        await signed_in_owner.post(
            "/admin/campaigns/preview", form(text_sv="Hej {first_name}! Vinterrea i {club}.")
        )
    ).text()
    assert rail(html, "matching") == "12"
    assert rail(html, "no_consent") == "-1"
    assert rail(html, "capped") == "-1"
    assert rail(html, "held_out") == "0"
    assert rail(html, "recipients") == "10"
    assert languages(html) == {"nb": 7, "sv": 3}


async def test_with_an_english_text_the_english_members_get_it(
    signed_in_owner: Admin, club_of_eleven: int
) -> None:
    html = await (
        await signed_in_owner.post(
            "/admin/campaigns/preview",
            form(text_sv="Hej {first_name}!", text_en="Hi {first_name}!"),
        )
    ).text()
    assert rail(html, "recipients") == "10"
    assert languages(html) == {"nb": 4, "sv": 3, "en": 3}


async def test_the_control_group_is_taken_from_the_recipients_of_each_language(
    signed_in_owner: Admin, club_of_eleven: int
) -> None:
    html = await (
        await signed_in_owner.post(
            "/admin/campaigns/preview",
            form(text_sv="Hej {first_name}!", text_en="Hi {first_name}!", control="50"),
        )
    ).text()
    held = int(rail(html, "held_out").removeprefix("-"))
    recipients = int(rail(html, "recipients"))
    assert 0 < held < 10
    assert held + recipients == 10
    shown = languages(html)
    assert sum(shown.values()) == recipients
    everyone = {"nb": 4, "sv": 3, "en": 3}
    assert all(0 <= shown.get(language, 0) <= everyone[language] for language in everyone)
