"""Import and export in the admin, through the app on SQLite and PostgreSQL: a member list with
its consent evidence lands (or nothing does), every bad row is named by its line, bad files get
a clear answer, and the exports hold this club's rows only."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import os
import re
import threading
import time
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.admin import transfer
from bot.app import create_app
from store.clubs import programs
from store.database import Database
from store.members import consent, imports, members
from store.models import ConsentEvent, LedgerEntry, Member, OutboxMessage, Purchase
from tests.admin.conftest import OTHER_OWNER, OWNER, STAFF, Admin, create_account, create_member
from tests.conftest import now, replies_in, sign, twilio_form

pytestmark = pytest.mark.usefixtures("cheap_argon2")

HEADER = "Telefon;Fornavn;Språk;Fødselsdato;Samtykkedato;Kilde\r\n"
GOOD = (
    HEADER
    + "912 34 567;Kari;nb;12.03.1990;01.02.2024;papirskjema i kassen\r\n"
    + "+46 70 123 45 67;Åsa;sv;;2024-02-01 10:30;nettbutikk-avkrysning\r\n"
    + "0047 98 76 54 32;Ola;;;2023-12-24;papirskjema i kassen\r\n"
)
# Line 3: not a number; line 5: the same number as line 2.
TWO_BAD = (
    HEADER
    + "912 34 567;Kari;nb;;01.02.2024;skjema\r\n"
    + "ring meg;Per;;;01.02.2024;skjema\r\n"
    + "98 76 54 32;Ola;;;01.02.2024;skjema\r\n"
    + "+47 912 34 567;Kari igjen;;;01.02.2024;skjema\r\n"
    + "41 23 45 67;Liv;;;01.02.2024;skjema\r\n"
)
_TOKEN = re.compile(r'name="token" value="([^"]+)"')
_SELECTED = re.compile(r'<select id="map_(\w+)"[^>]*>(.*?)</select>', re.S)
_VALUE = re.compile(r'<option value="(\d+)" selected>')


async def upload(
    admin: Admin, content: bytes, name: str = "members.csv", *, script: bool = True
) -> Any:
    """Post a file as the upload form does: with transfer.js (the CSRF token in a header) or
    as a plain form (the token in the form)."""
    token = await admin.csrf()
    form = aiohttp.FormData()
    form.add_field("csrf_token", token)
    form.add_field("file", io.BytesIO(content), filename=name, content_type="text/csv")
    headers = {"Accept": "text/html"}
    if script:
        headers["X-CSRF-Token"] = token
    return await admin.client.post(
        "/admin/transfer/import/preview", data=form, headers=headers, allow_redirects=False
    )


def mapping_of(page: str) -> dict[str, str]:
    """The column mapping the preview chose, as its form would post it."""
    chosen = {}
    for field, options in _SELECTED.findall(page):
        found = _VALUE.search(options)
        chosen[f"map_{field}"] = found.group(1) if found else ""
    return chosen


async def run_import(admin: Admin, page: str, mode: str) -> dict[str, Any]:
    """Start the import the preview shows and wait for it to finish (polling, as the page does)."""
    token = _TOKEN.search(page)
    assert token, page
    started = await admin.post(
        "/admin/transfer/import/run", {"token": token.group(1), "mode": mode, **mapping_of(page)}
    )
    assert started.status == 303, await started.text()
    assert started.headers["Location"] == f"/admin/transfer/import/{token.group(1)}"
    for _ in range(200):
        state = await (
            await admin.client.get(f"/admin/api/transfer/import/{token.group(1)}")
        ).json()
        if state["state"] != "running":
            break
        await asyncio.sleep(0.05)
    result = await admin.client.get(started.headers["Location"])
    assert result.status == 200
    return {**state, "page": await result.text(), "token": token.group(1)}


async def club_members(db: Database, program_id: int) -> list[Member]:
    return list(
        await db.run(
            lambda s: s.scalars(
                select(Member).where(Member.program_id == program_id).order_by(Member.id)
            ).all()
        )
    )


async def count(db: Database, model: Any) -> int:
    return await db.run(lambda s: s.scalar(select(func.count()).select_from(model)) or 0)


# --- a good file ------------------------------------------------------------------------------


async def test_a_good_file_lands_as_active_members_with_their_consent(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await admin.signed_in(OWNER)
    preview = await upload(admin, ("\ufeff" + GOOD).encode())
    page = await preview.text()
    assert preview.status == 200, page
    # A Norwegian club's admin speaks Norwegian: the file as read, in its words.
    assert 'data-fact="encoding">UTF-8 med BOM<' in page
    assert 'data-fact="delimiter">semikolon (;)<' in page
    assert "3 rader kan importeres" in page
    assert "0 rader kan ikke" in page
    assert "Åsa" in page
    assert mapping_of(page) == {
        "map_phone": "0",
        "map_first_name": "1",
        "map_language": "2",
        "map_birthday": "3",
        "map_consent_at": "4",
        "map_consent_evidence": "5",
        "map_consent_text": "",
        "map_consented": "",
    }

    result = await run_import(admin, page, "all")
    assert result["state"] == "done"
    assert result["imported"] == 3
    assert "3 medlemmer importert." in result["page"]

    landed = {m.phone: m for m in await club_members(db, club)}
    assert set(landed) == {"+4791234567", "+46701234567", "+4798765432"}
    kari = landed["+4791234567"]
    assert kari.status == members.ACTIVE
    assert kari.first_name == "Kari"
    assert kari.language == "nb"
    assert kari.birthday == dt.date(1990, 3, 12)
    # Joined when they consented (midnight in Oslo), not today.
    assert kari.joined_at == dt.datetime(2024, 1, 31, 23, 0, tzinfo=dt.UTC)
    events = await db.run(lambda s: consent.history(s, kari.id))
    assert [(e.action, e.channel, e.purpose) for e in events] == [
        (consent.GRANT, "import", consent.MARKETING_SMS)
    ]
    assert events[0].evidence == "members.csv, line 2: papirskjema i kassen"
    assert events[0].created_at == kari.joined_at
    # The planner's and the sender's question sees an imported member as one who joined by SMS.
    assert await db.run(lambda s: consent.marketing_since(s, kari)) == kari.joined_at
    asa = landed["+46701234567"]
    assert asa.joined_at == dt.datetime(2024, 2, 1, 9, 30, tzinfo=dt.UTC)


# --- bad rows ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "landed"), [("all", 0), ("good", 3)])
async def test_two_bad_rows_are_named_by_line_and_the_mode_decides_what_lands(
    admin: Admin,
    owner: int,
    db: Database,
    club: int,
    mode: str,
    landed: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In batches of one row, all-or-nothing still lands nothing: the rows are checked first."""
    monkeypatch.setattr(imports, "BATCH", 1)
    await admin.signed_in(OWNER)
    page = await (await upload(admin, TWO_BAD.encode())).text()
    assert "3 rader kan importeres" in page
    assert "2 rader kan ikke" in page
    assert re.search(r'data-line="3"><td>3</td><td>ring meg</td><td>Ikke et telefonnummer<', page)
    assert re.search(
        r'data-line="5"><td>5</td><td>\+47 912 34 567</td><td>Samme nummer som linje 2<', page
    )

    result = await run_import(admin, page, mode)
    assert len(await club_members(db, club)) == landed
    assert await count(db, ConsentEvent) == landed
    if mode == "all":
        assert result["state"] == "refused"
        assert "Ingenting ble importert: 2 rader er feil." in result["page"]
    else:
        assert result["state"] == "done"
        assert (result["imported"], result["skipped"]) == (3, 2)
        assert "2 rader hoppet over." in result["page"]
    report = await admin.client.get(f"/admin/transfer/import/{result['token']}/report.csv")
    assert report.status == 200
    assert "attachment" in report.headers["Content-Disposition"]
    assert (await report.read()).decode("utf-8-sig").splitlines() == [
        "Linje;Nummer slik det står;Hvorfor den ikke kan importeres",
        "3;ring meg;Ikke et telefonnummer",
        "5;'+47 912 34 567;Samme nummer som linje 2",
    ]


async def test_a_number_that_is_no_ones_mobile_is_named_and_not_imported(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    """12345 is a possible Norwegian number by its length, but no one's mobile; a landline
    gets no SMS; a row without consent evidence or time names both."""
    await admin.signed_in(OWNER)
    content = (
        "Mobil;Fornavn;Språk;Fødselsdato;Samtykkedato;Kilde\r\n"
        "12345;Kari;nb;;01.02.2024;skjema\r\n"
        "22 33 44 55;Per;;;01.02.2024;skjema\r\n"
        "98 76 54 32;Ola;;;;\r\n"
        "41 23 45 67;Liv;;;01.02.2024;skjema\r\n"
    )
    page = await (await upload(admin, content.encode())).text()
    assert "1 rad kan importeres" in page or "1 rader kan importeres" in page, page
    assert re.search(r'data-line="2"><td>2</td><td>12345</td><td>Ikke et telefonnummer<', page)
    assert re.search(
        r'data-line="3"><td>3</td><td>22 33 44 55</td><td>Ikke et mobilnummer: SMS når ikke fram<',
        page,
    )
    assert re.search(
        r'data-line="4"><td>4</td><td>98 76 54 32</td><td>Mangler både bevis for og tidspunkt'
        r" for samtykke: hvordan og når sa de ja\?<",
        page,
    )
    result = await run_import(admin, page, "good")
    assert (result["imported"], result["skipped"]) == (1, 3)
    assert [m.phone for m in await club_members(db, club)] == ["+4741234567"]


async def test_numbers_the_club_knows_or_erased_are_not_imported(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await create_member(db, club, "+4791234567", "Kari")
    erased = await create_member(db, club, "+4798765432", "Ola")

    def erase(session: Session) -> None:
        member = session.get(Member, erased)
        assert member is not None
        members.erase(session, member, now())

    await db.run(erase)
    await admin.signed_in(OWNER)
    page = await (await upload(admin, GOOD.encode())).text()
    assert re.search(r'data-line="2">.*?Allerede kjent i klubben \(Aktiv\)<', page)
    assert re.search(r'data-line="4">.*?Ba om å bli slettet: kan ikke importeres uten nytt', page)

    result = await run_import(admin, page, "good")
    assert (result["imported"], result["skipped"]) == (1, 2)
    phones = [m.phone for m in await club_members(db, club)]
    assert sorted(p for p in phones if p) == ["+46701234567", "+4791234567"]
    program = await db.run(lambda s: programs.get(s, club))
    assert await db.run(lambda s: members.was_erased(s, program, "+4798765432"))


# --- bad files --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "status", "says"),
    [
        (b"", 422, "Filen er tom."),
        (b"Telefon;Samtykkedato;Kilde\r\n", 422, "Filen har en overskriftsrad, men ingen"),
        (GOOD.encode("utf-16-le"), 422, "Dette er ikke en tekstfil."),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 40, 422, "ikke en tekstfil"),
        (None, 413, "Filen er større enn 20 MB."),  # 50 MB of random bytes, made in the test
    ],
    ids=["empty", "header-only", "utf16-without-bom", "binary", "50MB-of-garbage"],
)
async def test_a_bad_file_gets_a_clear_answer_and_changes_nothing(
    admin: Admin, owner: int, db: Database, club: int, content: bytes | None, status: int, says: str
) -> None:
    await admin.signed_in(OWNER)
    garbage = os.urandom(50 * 1024 * 1024) if content is None else content
    response = await upload(admin, garbage)
    assert response.status == status
    page = await response.text()
    assert says in page
    assert 'role="alert"' in page
    assert await count(db, Member) == 0


async def test_a_large_file_works_as_a_plain_form_too(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    """Without transfer.js the whole form is read before the CSRF check: the upload's route
    takes a body as large as the import allows, far beyond the app's small request limit."""
    await admin.signed_in(OWNER)
    rows = "".join(f"4{n:07d};Navn {n};nb;;01.02.2024;papirskjema\r\n" for n in range(40_000))
    content = (HEADER + rows).encode()
    assert len(content) > 1024 * 1024
    response = await upload(admin, content, script=False)
    assert response.status == 200, await response.text()
    assert _TOKEN.search(await response.text())
    assert await count(db, Member) == 0  # a preview lands nothing


async def test_a_plain_form_beyond_the_import_limit_is_refused_not_crashed(
    admin: Admin, owner: int, db: Database
) -> None:
    await admin.signed_in(OWNER)
    response = await upload(admin, os.urandom(21 * 1024 * 1024), script=False)
    assert response.status == 413
    assert "Det du sendte er for stort." in await response.text()
    assert await count(db, Member) == 0


async def test_a_plain_form_post_of_a_small_file_works_without_script(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await admin.signed_in(OWNER)
    response = await upload(admin, GOOD.encode("cp1252"), script=False)
    page = await response.text()
    assert response.status == 200
    assert 'data-fact="encoding">Windows-1252 (eldre Excel)<' in page
    result = await run_import(admin, page, "all")
    assert result["imported"] == 3
    assert "Åsa" in [m.first_name for m in await club_members(db, club)]


async def test_a_missing_required_column_is_named_and_can_be_mapped(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    content = "Mobil,Navn,Når,Hvordan\r\n91234567,Kari,2024-02-01,skjema\r\n"
    await admin.signed_in(OWNER)
    page = await (await upload(admin, content.encode())).text()
    assert 'data-fact="delimiter">komma (,)<' in page
    assert "Velg en kolonne for: consent_at, consent_evidence." in page
    assert 'name="mode"' not in page  # no import until the columns are chosen
    token = _TOKEN.search(page)
    assert token
    refused = await admin.post(
        "/admin/transfer/import/run", {"token": token.group(1), "mode": "all", **mapping_of(page)}
    )
    assert refused.status == 422
    assert await count(db, Member) == 0

    chosen = {**mapping_of(page), "map_consent_at": "2", "map_consent_evidence": "3"}
    again = await admin.post("/admin/transfer/import/preview", {"token": token.group(1), **chosen})
    page = await again.text()
    assert again.status == 200
    assert "1 rad kan importeres" in page
    result = await run_import(admin, page, "all")
    assert result["imported"] == 1


# --- files as Nordic Excel writes them --------------------------------------------------------


async def test_a_consent_column_imports_only_a_clear_yes(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    """A file with a yes/no consent column: "nei", "0", an unticked (empty) box or a "kanskje"
    is no consent, named by line with what it said; before, the column was not read and every
    row landed as consented."""
    content = (
        "Telefon;Fornavn;Samtykke;Samtykkedato;Kilde\r\n"
        "912 34 567;Kari;ja;01.02.2024;skjema\r\n"
        "98 76 54 32;Ola;nei;01.02.2024;skjema\r\n"
        "41 23 45 67;Liv;X;01.02.2024;skjema\r\n"
        "47 11 22 33;Per;;01.02.2024;skjema\r\n"
        "48 11 22 33;Pål;0;01.02.2024;skjema\r\n"
        "+46 70 123 45 67;Åsa;Yes;01.02.2024;skjema\r\n"
        "93 11 22 33;Siv;kanskje;01.02.2024;skjema\r\n"
    )
    await admin.signed_in(OWNER)
    page = await (await upload(admin, content.encode("cp1252"))).text()
    assert mapping_of(page)["map_consented"] == "2"
    assert "3 rader kan importeres" in page
    for line, said in ((3, "nei"), (5, ""), (6, "0"), (8, "kanskje")):
        assert re.search(
            rf'data-line="{line}">.*?<td>Sa ikke ja til SMS: «{said}» \(bare ja, yes, x eller 1',
            page,
        ), line
    result = await run_import(admin, page, "good")
    assert (result["imported"], result["skipped"]) == (3, 4)
    assert sorted(m.phone for m in await club_members(db, club)) == [
        "+46701234567",
        "+4741234567",
        "+4791234567",
    ]


async def test_a_stray_quote_that_swallows_rows_refuses_the_file_naming_its_line(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    """`"Kari` never closes: the csv reader took line 3's row into line 2's name, and line 3
    was lost without a word. A quoted cell over two lines of a real cell still reads."""
    content = (
        HEADER
        + '912 34 567;"Kari;nb;;01.02.2024;skjema\r\n'
        + "98 76 54 32;Ola;;;01.02.2024;skjema\r\n"
        + "41 23 45 67;Liv;;;01.02.2024;skjema\r\n"
    )
    await admin.signed_in(OWNER)
    response = await upload(admin, content.encode())
    assert response.status == 422
    assert "Filen kan ikke leses som CSV fra linje 2" in await response.text()
    assert await count(db, Member) == 0

    two_lines = HEADER + '912 34 567;"Kari\r\nNordmann";nb;;01.02.2024;skjema\r\n'
    two_lines += "98 76 54 32;Ola;;;01.02.2024;skjema\r\n"
    page = await (await upload(admin, two_lines.encode())).text()
    assert "2 rader kan importeres" in page
    result = await run_import(admin, page, "all")
    assert result["imported"] == 2
    # One line of text in a greeting SMS, not a line break.
    names = {m.phone: m.first_name for m in await club_members(db, club)}
    assert names == {"+4791234567": "Kari Nordmann", "+4798765432": "Ola"}


async def test_excels_sep_line_and_its_scientific_numbers(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    """Excel's "sep=;" first line names the separator (it was read as the header: no column
    found); a number Excel showed as 4.79123E+10 has lost its digits and is named as such."""
    content = "sep=;\r\n" + HEADER + "912 34 567;Kari;;;01.02.2024;skjema\r\n"
    content += "4,79123E+10;Ola;;;01.02.2024;skjema\r\n"
    await admin.signed_in(OWNER)
    page = await (await upload(admin, content.encode())).text()
    assert mapping_of(page)["map_phone"] == "0"
    assert "1 rad kan importeres" in page or "1 rader kan importeres" in page, page
    assert re.search(
        r'data-line="4"><td>4</td><td>4,79123E\+10</td><td>Excel har gjort nummeret om', page
    )
    result = await run_import(admin, page, "good")
    assert (result["imported"], result["skipped"]) == (1, 1)
    events = await db.run(lambda s: s.scalars(select(ConsentEvent)).all())
    assert [e.evidence for e in events] == ["members.csv, line 3: skjema"]


async def test_a_windows_1252_excel_file_lands_once_and_a_second_upload_lands_nothing(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    """The file shop owners have: Windows-1252, CRLF, headers in capitals, trailing empty
    columns, blank lines, numbers written every way, the same number twice."""
    content = (
        "TELEFON;FORNAVN;FØDSELSDATO;SAMTYKKEDATO;KILDE;;\r\n"
        "912 34 567;Bjørn;12.03.1990;01.02.2024;skjema;;\r\n"
        "\r\n"
        "0047 98765432;Åse;;01.02.2024;skjema;;\r\n"
        "004741234567;Øyvind;;01.02.2024;skjema;;\r\n"
        "+47 912 34 567;Bjørn igjen;;01.02.2024;skjema;;\r\n"
        ";;;;;;\r\n"
    )
    await admin.signed_in(OWNER)
    page = await (await upload(admin, content.encode("cp1252"))).text()
    assert "3 rader kan importeres" in page
    assert re.search(r'data-line="6">.*?Samme nummer som linje 2<', page)
    result = await run_import(admin, page, "good")
    assert (result["imported"], result["skipped"]) == (3, 1)
    names = sorted(m.first_name or "" for m in await club_members(db, club))
    assert names == ["Bjørn", "Åse", "Øyvind"]

    again = await (await upload(admin, content.encode("cp1252"))).text()
    assert "0 rader kan importeres" in again
    result = await run_import(admin, again, "good")
    assert result["imported"] == 0
    assert len(await club_members(db, club)) == 3
    assert await count(db, ConsentEvent) == 3


# --- who may ----------------------------------------------------------------------------------

OWNER_ONLY = [
    ("GET", "/admin/transfer"),
    ("GET", "/admin/transfer/export/members.csv"),
    ("GET", "/admin/transfer/export/messages.csv"),
    ("POST", "/admin/transfer/import/preview"),
    ("POST", "/admin/transfer/import/run"),
    ("GET", "/admin/api/transfer/import/abcdefghijklmnopqrstuvwxyz"),
]


@pytest.mark.parametrize(("method", "path"), OWNER_ONLY)
async def test_staff_get_403(admin: Admin, staff: int, method: str, path: str) -> None:
    await admin.signed_in(STAFF)
    if method == "GET":
        response = await admin.client.get(path, allow_redirects=False)
    else:
        response = await admin.post(path, {"token": "x"})
    assert response.status == 403


async def test_without_the_csrf_token_nothing_is_read_or_imported(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await admin.signed_in(OWNER)
    page = await (await upload(admin, GOOD.encode())).text()
    token = _TOKEN.search(page)
    assert token
    form = aiohttp.FormData()
    form.add_field("file", GOOD.encode(), filename="members.csv")
    forged = await admin.client.post("/admin/transfer/import/preview", data=form)
    assert forged.status == 403
    run = await admin.client.post(
        "/admin/transfer/import/run",
        data={"token": token.group(1), "mode": "good", **mapping_of(page)},
        headers={"X-CSRF-Token": "wrong"},
    )
    assert run.status == 403
    await asyncio.sleep(0.1)
    assert await count(db, Member) == 0


async def test_another_admins_upload_is_not_found(
    admin: Admin, owner: int, db: Database, club: int, other_club: int
) -> None:
    """An upload belongs to the session that made it: another club's owner (signed in on the
    same browser, even) can't look at it or run it."""
    await admin.signed_in(OWNER)
    page = await (await upload(admin, GOOD.encode())).text()
    token = _TOKEN.search(page)
    assert token
    await create_account(db, other_club, OTHER_OWNER)
    assert (await admin.post("/admin/sign-out")).status == 303
    other = await admin.signed_in(OTHER_OWNER)
    response = await other.post(
        "/admin/transfer/import/run", {"token": token.group(1), "mode": "good", **mapping_of(page)}
    )
    assert response.status == 404
    assert (await other.client.get(f"/admin/api/transfer/import/{token.group(1)}")).status == 404
    await asyncio.sleep(0.1)
    assert await count(db, Member) == 0


# --- exports ----------------------------------------------------------------------------------


async def fill(db: Database, club: int, other_club: int) -> dict[str, int]:
    """Two members here (one then erased), one in the other club, a purchase, points and a
    text each."""
    ids = {
        "kari": await create_member(db, club, "+4791234567", "=cmd|' /C calc'!A0"),
        "ola": await create_member(db, club, "+4798765432", "Ola"),
        "theirs": await create_member(db, other_club, "+46701234567", "Sven"),
    }

    def work(session: Session) -> None:
        at = now()
        for name, member_id in ids.items():
            program_id = other_club if name == "theirs" else club
            purchase = Purchase(
                program_id=program_id,
                member_id=member_id,
                transaction_id=f"T-{name}",
                currency="NOK",
                total_minor=12_345,
                points=123,
                fingerprint="f",
                occurred_at=at,
                created_at=at,
            )
            session.add(purchase)
            session.flush()
            session.add(
                LedgerEntry(
                    program_id=program_id,
                    member_id=member_id,
                    kind="earn",
                    points=123,
                    purchase_id=purchase.id,
                    created_at=at,
                )
            )
            session.add(
                OutboxMessage(
                    program_id=program_id,
                    member_id=member_id,
                    kind="reply",
                    status="sent_inline",
                    to_number="+4700000000",
                    from_number="2020",
                    body=f"Hei {name}",
                    segments=1,
                    created_at=at,
                )
            )
        ola = session.get(Member, ids["ola"])
        assert ola is not None
        members.erase(session, ola, at)

    await db.run(work)
    return ids


async def export(admin: Admin, kind: str) -> tuple[Any, list[list[str]]]:
    response = await admin.client.get(f"/admin/transfer/export/{kind}.csv")
    assert response.status == 200
    body = await response.read()
    assert body.startswith(b"\xef\xbb\xbf")
    rows = [line.split(";") for line in body.decode("utf-8-sig").splitlines()]
    return response, rows


async def test_the_members_export_holds_this_clubs_members_and_not_the_erased(
    admin: Admin, owner: int, db: Database, club: int, other_club: int
) -> None:
    ids = await fill(db, club, other_club)
    await admin.signed_in(OWNER)
    response, rows = await export(admin, "members")
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"].startswith(
        'attachment; filename="torshov-sport-members-'
    )
    assert today[:7] in response.headers["Content-Disposition"]
    assert rows[0][:3] == ["member_id", "phone", "first_name"]
    assert [r[:3] for r in rows[1:]] == [[str(ids["kari"]), "+4791234567", "'=cmd|' /C calc'!A0"]]


@pytest.mark.parametrize("kind", ["purchases", "ledger", "messages"])
async def test_the_other_exports_hold_this_clubs_rows_with_erased_members_anonymous(
    admin: Admin, owner: int, db: Database, club: int, other_club: int, kind: str
) -> None:
    ids = await fill(db, club, other_club)
    await admin.signed_in(OWNER)
    _, rows = await export(admin, kind)
    member_ids = [row[rows[0].index("member_id")] for row in rows[1:]]
    if kind == "messages":  # an erased member's texts are left out
        assert member_ids == [str(ids["kari"])]
        assert rows[1][rows[0].index("body")] == "Hei kari"
    else:  # figures stay, without whose they were
        assert member_ids == [str(ids["kari"]), ""]
    assert str(ids["theirs"]) not in member_ids


async def test_an_export_of_an_unknown_table_is_not_found(admin: Admin, owner: int) -> None:
    await admin.signed_in(OWNER)
    assert (await admin.client.get("/admin/transfer/export/accounts.csv")).status == 404


async def test_the_transfer_page_offers_the_upload_and_every_export(
    admin: Admin, owner: int
) -> None:
    await admin.signed_in(OWNER)
    response = await admin.client.get("/admin/transfer")
    page = await response.text()
    assert response.status == 200
    assert 'enctype="multipart/form-data"' in page
    for kind in ("members", "purchases", "ledger", "messages"):
        assert f'href="/admin/transfer/export/{kind}.csv"' in page


async def test_an_import_stopped_by_a_shutdown_says_so_after_the_restart(
    admin: Admin, owner: int, db: Database, settings: Any, aiohttp_client: Any, monkeypatch: Any
) -> None:
    """A server shut down while an import runs gives it a while, then stops it: nothing lands,
    and after the restart its page says the server stopped it (not "running" for ever)."""
    await admin.signed_in(OWNER)
    preview = await upload(admin, GOOD.encode())
    assert preview.status == 200
    release = threading.Event()
    real_check = imports.check

    def slow_check(*args: Any, **kwargs: Any) -> Any:
        release.wait(10)
        return real_check(*args, **kwargs)

    monkeypatch.setattr(imports, "check", slow_check)
    monkeypatch.setattr(transfer, "FINISH_SECONDS", 0.2)
    page = await preview.text()
    token = _TOKEN.search(page)
    assert token
    started = await admin.post(
        "/admin/transfer/import/run", {"token": token.group(1), "mode": "all", **mapping_of(page)}
    )
    assert started.status == 303
    try:
        await admin.client.close()  # the server shuts down
    finally:
        release.set()
    assert await count(db, Member) == 0

    restarted = await aiohttp_client(create_app(settings))
    for cookie in admin.client.session.cookie_jar:
        restarted.session.cookie_jar.update_cookies(
            {cookie.key: cookie.value}, response_url=restarted.make_url("/")
        )
    state = await (await restarted.get(f"/admin/api/transfer/import/{token.group(1)}")).json()
    assert (state["state"], state.get("error")) == ("failed", "stopped")
    shown = await (await restarted.get(started.headers["Location"])).text()
    assert "Serveren ble stoppet mens importen pågikk" in shown
    assert await count(db, Member) == 0


async def test_an_import_that_fails_unexpectedly_says_so_and_lands_nothing(
    admin: Admin, owner: int, db: Database, monkeypatch: Any
) -> None:
    await admin.signed_in(OWNER)
    preview = await upload(admin, GOOD.encode())

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug, not the file")

    monkeypatch.setattr(imports, "check", broken)
    result = await run_import(admin, await preview.text(), "all")
    assert (result["state"], result["error"]) == ("failed", "other")
    assert "Importen stoppet på en feil." in result["page"]
    assert 'data-landed="0">0 rader var importert da den stoppet.' in result["page"]
    assert f'action="/admin/transfer/import/{result["token"]}/resume"' in result["page"]
    assert await count(db, Member) == 0


# --- batches ----------------------------------------------------------------------------------


def many(rows: int) -> bytes:
    lines = "".join(f"4{1000000 + i};Medlem {i};nb;;01.02.2024;skjema\r\n" for i in range(rows))
    return (HEADER + lines).encode()


def slow_batches(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """One row a batch, each taking a while: an import that is long enough to act during."""
    monkeypatch.setattr(imports, "BATCH", 1)
    real = imports.land_batch

    def slow(*args: Any, **kwargs: Any) -> imports.Step:
        time.sleep(seconds)
        return real(*args, **kwargs)

    monkeypatch.setattr(imports, "land_batch", slow)


async def start_import(admin: Admin, content: bytes, mode: str = "all") -> str:
    page = await (await upload(admin, content)).text()
    token = _TOKEN.search(page)
    assert token, page
    started = await admin.post(
        "/admin/transfer/import/run", {"token": token.group(1), "mode": mode, **mapping_of(page)}
    )
    assert started.status == 303
    return token.group(1)


async def state_of(client: Any, token: str) -> dict[str, Any]:
    return await (await client.get(f"/admin/api/transfer/import/{token}")).json()


async def until(client: Any, token: str, done: Any) -> dict[str, Any]:
    for _ in range(400):
        state = await state_of(client, token)
        if done(state):
            return state
        await asyncio.sleep(0.02)
    raise AssertionError(f"the import never got there: {state}")


async def test_a_members_text_is_answered_between_the_batches_of_an_import(
    admin: Admin, owner: int, db: Database, club: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A POINTS text sent once the first batch has landed is answered while the import still
    runs (it waited behind one batch, not behind the file)."""
    await create_member(db, club, "+4798765432", "Kari")
    slow_batches(monkeypatch, 0.1)
    await admin.signed_in(OWNER)
    token = await start_import(admin, many(20))
    await until(admin.client, token, lambda s: s.get("landed", 0) >= 1)

    form = twilio_form("+4798765432", "POENG")
    answered = await admin.client.post(
        "/sms/twilio",
        data=form,
        headers={"X-Twilio-Signature": sign("http://127.0.0.1:8080/sms/twilio", form)},
    )
    assert answered.status == 200
    reply = " ".join(replies_in(await answered.text()))

    during = await state_of(admin.client, token)
    assert "0 poeng" in reply, reply
    assert during["state"] == "running"
    assert during["landed"] < 20
    finished = await until(admin.client, token, lambda s: s["state"] != "running")
    assert (finished["state"], finished["imported"]) == ("done", 20)
    assert await count(db, ConsentEvent) == 20


@pytest.mark.parametrize("how", ["shutdown", "crash"])
async def test_an_import_stopped_mid_landing_is_resumed_from_its_page_and_lands_every_row_once(
    how: str,
    admin: Admin,
    owner: int,
    db: Database,
    club: int,
    settings: Any,
    aiohttp_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A shutdown (or a crash, which leaves the state as the last batch wrote it) stops an
    import after a few batches; after the restart its page says how many rows had landed and
    offers to resume; resumed, it lands the rest: every row once, with one consent event each."""
    slow_batches(monkeypatch, 0.05)
    monkeypatch.setattr(transfer, "FINISH_SECONDS", 0.01)
    await admin.signed_in(OWNER)
    token = await start_import(admin, many(12))
    await until(admin.client, token, lambda s: s.get("landed", 0) >= 2)
    await admin.client.close()  # the server shuts down
    stopped = len(await club_members(db, club))
    assert 2 <= stopped < 12
    if how == "crash":
        # What a killed server leaves: "running", written a while ago by a batch.
        state_file = transfer._Job(settings.imports_dir, token).folder / "state.json"
        state = json.loads(state_file.read_text())
        state.update(state="running")
        state.pop("error")
        state_file.write_text(json.dumps(state))
        long_ago = time.time() - transfer.SILENT_SECONDS - 1
        os.utime(state_file, (long_ago, long_ago))

    restarted = await aiohttp_client(create_app(settings))
    for cookie in admin.client.session.cookie_jar:
        restarted.session.cookie_jar.update_cookies(
            {cookie.key: cookie.value}, response_url=restarted.make_url("/")
        )
    state = await state_of(restarted, token)
    assert (state["state"], state["error"]) == ("failed", "stopped")
    # The progress kept is the last batch whose commit it heard of: at most one batch behind.
    assert stopped - 1 <= state["landed"] <= stopped
    shown = await (await restarted.get(f"/admin/transfer/import/{token}")).text()
    assert "Serveren ble stoppet mens importen pågikk." in shown
    assert f'data-landed="{state["landed"]}">' in shown
    assert "Fortsett importen" in shown

    again = Admin(restarted)
    resumed = await again.post(f"/admin/transfer/import/{token}/resume")
    assert resumed.status == 303
    assert resumed.headers["Location"] == f"/admin/transfer/import/{token}"
    finished = await until(restarted, token, lambda s: s["state"] != "running")
    assert (finished["state"], finished["imported"], finished["skipped"]) == ("done", 12, 0)
    landed = await club_members(db, club)
    assert len(landed) == len({m.phone for m in landed}) == 12
    assert await count(db, ConsentEvent) == 12
    # Resuming a finished import starts nothing.
    assert (await again.post(f"/admin/transfer/import/{token}/resume")).status == 303
    assert (await state_of(restarted, token))["state"] == "done"


# --- two servers ------------------------------------------------------------------------------


async def same_browser(admin: Admin, server: Any) -> Admin:
    """The admin's browser on another server (its session cookie, which any server with the
    same KLUBB_SECRET_KEY reads)."""
    for cookie in admin.client.session.cookie_jar:
        server.session.cookie_jar.update_cookies(
            {cookie.key: cookie.value}, response_url=server.make_url("/")
        )
    return Admin(server)


async def test_an_import_previewed_on_one_server_runs_on_another_sharing_the_data_dir(
    admin: Admin,
    owner: int,
    db: Database,
    club: int,
    settings: Any,
    aiohttp_client: Any,
    tmp_path: Any,
) -> None:
    """Two `klubb serve` behind one proxy, sharing KLUBB_DATA_DIR: the file previewed on one is
    run from the other, whose progress and report the first shows. A server with a data folder
    of its own knows nothing of the upload (404), as two servers each on its own /tmp did."""
    await admin.signed_in(OWNER)
    page = await (await upload(admin, TWO_BAD.encode())).text()
    token = _TOKEN.search(page)
    assert token
    second = await same_browser(admin, await aiohttp_client(create_app(settings)))
    started = await second.post(
        "/admin/transfer/import/run", {"token": token.group(1), "mode": "good", **mapping_of(page)}
    )
    assert started.status == 303, await started.text()
    finished = await until(admin.client, token.group(1), lambda s: s["state"] != "running")
    assert (finished["state"], finished["imported"], finished["skipped"]) == ("done", 3, 2)
    assert len(await club_members(db, club)) == 3
    report = await admin.client.get(f"/admin/transfer/import/{token.group(1)}/report.csv")
    assert report.status == 200
    assert [line.split(";")[0] for line in (await report.text()).splitlines()[1:]] == ["3", "5"]

    apart = settings.with_(data_dir=tmp_path / "elsewhere")
    elsewhere = await same_browser(admin, await aiohttp_client(create_app(apart)))
    unknown = await elsewhere.client.get(f"/admin/api/transfer/import/{token.group(1)}")
    assert unknown.status == 404
    again = await elsewhere.post(
        "/admin/transfer/import/run", {"token": token.group(1), "mode": "good", **mapping_of(page)}
    )
    assert again.status == 404
