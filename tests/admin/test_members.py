"""The members pages through the app on SQLite and PostgreSQL: search by number in any format or
by name, a member's page, manual points, the GDPR export and erasure, one club's members only."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store import ledger, members, programs
from store.database import Database
from store.models import ConsentEvent, InboundMessage, LedgerEntry, Member
from tests.admin.conftest import OTHER_OWNER, OWNER, STAFF, Admin, create_account, create_member
from tests.admin.members_data import with_history
from tests.conftest import now

pytestmark = pytest.mark.usefixtures("cheap_argon2")

KARI = "+4791234567"
HTML = {"Accept": "text/html"}


async def give_points(db: Database, member_id: int, points: int) -> None:
    def work(session: Session) -> None:
        member = session.get(Member, member_id)
        assert member is not None
        program = programs.get(session, member.program_id)
        assert program is not None
        ledger.credit(session, program, member_id, points, ledger.EARN, now())

    await db.run(work)


async def balance(db: Database, member_id: int) -> int:
    return await db.run(lambda s: ledger.balance(s, member_id, now()))


async def entries(db: Database, member_id: int) -> list[LedgerEntry]:
    return await db.run(
        lambda s: list(s.scalars(select(LedgerEntry).where(LedgerEntry.member_id == member_id)))
    )


async def member_row(db: Database, member_id: int) -> Member:
    row = await db.run(lambda s: s.get(Member, member_id))
    assert row is not None
    return row


async def listed(admin: Admin, query: str) -> str:
    response = await admin.client.get("/admin/members", params={"q": query})
    assert response.status == 200
    return await response.text()


def links(page: str) -> set[int]:
    return {int(m) for m in re.findall(r'href="/admin/members/(\d+)"', page)}


# --- search ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed", ["912 34 567", "+47 912 34 567", "004791234567", "91234567", KARI, "912-34-567"]
)
async def test_a_member_is_found_by_the_number_however_it_is_typed(
    admin: Admin, owner: int, db: Database, club: int, typed: str
) -> None:
    kari = await create_member(db, club, KARI, "Kari")
    await create_member(db, club, "+4791234568", "Kari Nordmann")
    await admin.signed_in(OWNER)
    page = await listed(admin, typed)
    assert links(page) == {kari}
    assert "Viser 1–1 av 1" in page


async def test_a_member_is_found_by_the_start_of_the_first_name_in_any_case(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    kari = await create_member(db, club, KARI, "Kari")
    karianne = await create_member(db, club, "+4791234568", "Karianne")
    await create_member(db, club, "+4791234569", "Ola")
    oystein = await create_member(db, club, "+4791234570", "Øystein")
    await create_member(db, club, "+4791234571", "Anne-Kari")
    await admin.signed_in(OWNER)
    assert links(await listed(admin, "kar")) == {kari, karianne}
    assert links(await listed(admin, "KARI")) == {kari, karianne}
    assert links(await listed(admin, "øys")) == {oystein}
    assert links(await listed(admin, "ØYSTEIN")) == {oystein}
    # LIKE's wildcards are letters like any other here.
    assert links(await listed(admin, "%")) == set()
    assert links(await listed(admin, "_ari")) == set()
    assert "Ingen medlemmer passer søket." in await listed(admin, "zz")


async def test_another_clubs_member_is_never_found_nor_shown(
    admin: Admin, owner: int, db: Database, club: int, other_club: int
) -> None:
    ours = await create_member(db, club, KARI, "Kari")
    theirs = await create_member(db, other_club, "+46701234567", "Karin")
    theirs_same_number = await create_member(db, other_club, KARI, "Kari")
    await admin.signed_in(OWNER)
    for query in ("+46 70 123 45 67", "0046701234567", "karin", "", KARI):
        page = await listed(admin, query)
        assert theirs not in links(page), query
        assert theirs_same_number not in links(page), query
        assert "+46701234567" not in page
    assert links(await listed(admin, "912 34 567")) == {ours}
    for member_id in (theirs, theirs_same_number):
        for path in ("", "/export.json", "/erase"):
            response = await admin.client.get(f"/admin/members/{member_id}{path}")
            assert response.status == 404, path
        response = await admin.post(
            f"/admin/members/{member_id}/adjust", {"points": "10", "reason": "x"}
        )
        assert response.status == 404
        response = await admin.post(f"/admin/members/{member_id}/erase", {"confirm": "4567"})
        assert response.status == 404
    assert (await member_row(db, theirs_same_number)).status == members.ACTIVE
    assert await entries(db, theirs) == []


async def test_an_empty_search_lists_the_newest_a_page_at_a_time_and_never_the_erased(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    ids = [await create_member(db, club, f"+47912340{i:02d}", f"Medlem{i}") for i in range(30)]
    gone = await create_member(db, club, "+4799999999", "Borte")

    def erase(session: Session) -> None:
        member = session.get(Member, gone)
        assert member is not None
        members.erase(session, member, now())

    await db.run(erase)
    await admin.signed_in(OWNER)
    first = await listed(admin, "")
    assert "Nyeste medlemmer" in first
    assert "Viser 1–25 av 30" in first
    assert links(first) == set(ids[5:])
    assert gone not in links(first)
    second = await (await admin.client.get("/admin/members?q=&page=2")).text()
    assert "Viser 26–30 av 30" in second
    assert links(second) == set(ids[:5])
    # A page that is not a number is the first; one past the end lists nothing, never a 500.
    assert links(await (await admin.client.get("/admin/members?page=abc")).text()) == set(ids[5:])
    past = await admin.client.get("/admin/members?page=99999999999999999999")
    assert past.status == 200
    assert links(await past.text()) == set()
    # The erased member is not found by name nor number either.
    assert links(await listed(admin, "Borte")) == set()
    assert links(await listed(admin, "99999999")) == set()
    assert (await admin.client.get(f"/admin/members/{gone}")).status == 404


async def test_a_number_that_is_not_one_says_so(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await create_member(db, club, KARI, "Kari")
    await admin.signed_in(OWNER)
    page = await listed(admin, "12")
    assert "ikke et helt nummer" in page
    assert links(page) == set()
    assert (await admin.client.get("/admin/members", params={"q": "9" * 500})).status == 200


# --- a member's page ---------------------------------------------------------------------------


async def test_the_member_page_shows_points_coupons_consent_and_texts(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    kari = await create_member(db, club, KARI, "Kari")
    await with_history(db, kari)
    await admin.signed_in(OWNER)
    page = await (await admin.client.get(f"/admin/members/{kari}")).text()
    assert re.search(r"<strong data-balance>120</strong>", page)
    assert "120 poeng utløper" in page
    assert "Kjøp" in page  # the ledger line's kind
    assert "10% rabatt" in page
    assert "Gyldig" in page
    assert "Samtykke gitt" in page
    assert "Velkommen til Torshov Sport! Svar STOPP for å melde deg av." in page
    assert "SM-evidence-1" in page
    assert "ja takk" in page
    assert "Fra medlemmet" in page
    # No language chosen: the number's, marked as such.
    assert 'Norsk <span class="muted">(ut fra nummeret, ikke valgt)</span>' in page
    # The owner sees the export and erasure; staff don't.
    assert f"/admin/members/{kari}/export.json" in page


# --- points ------------------------------------------------------------------------------------


async def test_staff_adjust_points_with_a_reason_and_are_named_in_the_ledger(
    admin: Admin, staff: int, db: Database, club: int
) -> None:
    kari = await create_member(db, club, KARI, "Kari")
    await admin.signed_in(STAFF)
    page = await (await admin.client.get(f"/admin/members/{kari}")).text()
    assert "export.json" not in page
    assert "/erase" not in page
    response = await admin.post(
        f"/admin/members/{kari}/adjust", {"points": "+75", "reason": "Glemte kortet"}
    )
    assert response.status == 303
    assert response.headers["Location"] == f"/admin/members/{kari}?adjusted=1#points"
    response = await admin.post(
        f"/admin/members/{kari}/adjust", {"points": "-25", "reason": "Feil kasse"}
    )
    assert response.status == 303
    assert await balance(db, kari) == 50
    added, taken = sorted(await entries(db, kari), key=lambda e: e.id)
    assert (added.kind, added.points, added.reason, added.actor) == (
        "adjust",
        75,
        "Glemte kortet",
        STAFF,
    )
    assert (taken.points, taken.reason, taken.actor) == (-25, "Feil kasse", STAFF)
    page = await (await admin.client.get(f"/admin/members/{kari}?adjusted=1")).text()
    assert "Lagret. Ny saldo: 50 poeng." in page
    assert "Glemte kortet" in page
    assert STAFF in page


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"points": "50", "reason": ""}, "Skriv hvorfor poengene endres."),
        ({"points": "50", "reason": "   "}, "Skriv hvorfor poengene endres."),
        ({"points": "50"}, "Skriv hvorfor poengene endres."),
        ({"points": "femti", "reason": "x"}, "Skriv et helt tall"),
        ({"points": "", "reason": "x"}, "Skriv et helt tall"),
        ({"points": "1.5", "reason": "x"}, "Skriv et helt tall"),
        ({"points": "0", "reason": "x"}, "Skriv et tall som ikke er 0."),
        ({"points": "-80", "reason": "x"}, "Medlemmet har bare 50 poeng"),
        ({"points": "99999999999", "reason": "x"}, "Høyst 10 000 000 poeng om gangen."),
        ({"points": "5", "reason": "x" * 201}, "Begrunnelsen kan være høyst 200 tegn."),
    ],
)
async def test_a_bad_adjustment_gives_the_form_back_and_changes_nothing(
    admin: Admin, owner: int, db: Database, club: int, form: dict[str, str], message: str
) -> None:
    kari = await create_member(db, club, KARI, "Kari")
    await give_points(db, kari, 50)
    await admin.signed_in(OWNER)
    response = await admin.post(f"/admin/members/{kari}/adjust", form)
    assert response.status == 422
    # Numbers are grouped with the locale's (no-break) space.
    page = (await response.text()).replace("\u00a0", " ").replace("\u202f", " ")
    assert message in page
    assert "Poengene ble ikke endret." in page
    assert 'aria-invalid="true"' in page
    if form.get("points"):  # what was typed is kept
        assert f'value="{form["points"]}"' in page
    assert await balance(db, kari) == 50
    assert len(await entries(db, kari)) == 1


async def test_a_number_that_has_not_joined_gets_no_points(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    pending = await create_member(db, club, KARI, None, status=members.PENDING)
    await admin.signed_in(OWNER)
    response = await admin.post(f"/admin/members/{pending}/adjust", {"points": "5", "reason": "x"})
    assert response.status == 422
    assert "ikke blitt medlem ennå" in await response.text()
    assert await entries(db, pending) == []


async def test_without_the_csrf_token_nothing_changes(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    kari = await create_member(db, club, KARI, "Kari")
    await admin.signed_in(OWNER)
    for path, data in (
        (f"/admin/members/{kari}/adjust", {"points": "50", "reason": "x"}),
        (f"/admin/members/{kari}/erase", {"confirm": "4567"}),
    ):
        for token in ({}, {"csrf_token": "forged"}):
            response = await admin.client.post(
                path, data={**data, **token}, headers=HTML, allow_redirects=False
            )
            assert response.status == 403, (path, token)
            assert "Skjemaet var utløpt" in await response.text()
    assert await entries(db, kari) == []
    assert (await member_row(db, kari)).status == members.ACTIVE


# --- export and erasure ------------------------------------------------------------------------


async def test_staff_may_not_export_nor_erase(
    admin: Admin, staff: int, db: Database, club: int
) -> None:
    kari = await create_member(db, club, KARI, "Kari")
    await admin.signed_in(STAFF)
    assert (await admin.client.get(f"/admin/members/{kari}/export.json")).status == 403
    assert (await admin.client.get(f"/admin/members/{kari}/erase")).status == 403
    response = await admin.post(f"/admin/members/{kari}/erase", {"confirm": "4567"})
    assert response.status == 403
    row = await member_row(db, kari)
    assert (row.status, row.phone) == (members.ACTIVE, KARI)


async def test_the_export_downloads_everything_held(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    kari = await create_member(db, club, KARI, "Kari")
    await with_history(db, kari)
    await admin.signed_in(OWNER)
    await admin.post(f"/admin/members/{kari}/adjust", {"points": "-20", "reason": "Retting"})
    response = await admin.client.get(f"/admin/members/{kari}/export.json")
    assert response.status == 200
    assert response.headers["Content-Disposition"] == f'attachment; filename="member-{kari}.json"'
    assert response.content_type == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    data: dict[str, Any] = json.loads(await response.text())
    assert data["member"]["phone"] == KARI
    assert data["member"]["first_name"] == "Kari"
    assert data["points"]["balance"] == 100
    assert [(e["kind"], e["points"], e["reason"], e["actor"]) for e in data["ledger"]] == [
        ("earn", 120, None, None),
        ("adjust", -20, "Retting", OWNER),
    ]
    assert [(c["action"], c["channel"], c["evidence"]) for c in data["consent"]] == [
        ("grant", "sms", "SM-evidence-1")
    ]
    assert data["consent"][0]["wording_text"].startswith("Velkommen til Torshov Sport!")
    assert [c["state"] for c in data["coupons"]] == ["valid"]
    assert [m["text"] for m in data["messages"]["inbound"]] == ["ja takk"]
    assert data["purchases"] == []
    dt.datetime.fromisoformat(data["exported_at"])


async def test_erasure_needs_the_last_four_digits(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    kari = await create_member(db, club, KARI, "Kari")
    await with_history(db, kari)
    await admin.signed_in(OWNER)
    confirm = await admin.client.get(f"/admin/members/{kari}/erase")
    assert confirm.status == 200
    assert "Skriv de fire siste sifrene i +4791234567" in await confirm.text()
    for typed, message in (("", "Skriv de fire siste sifrene"), ("1234", "stemmer ikke")):
        response = await admin.post(f"/admin/members/{kari}/erase", {"confirm": typed})
        assert response.status == 422
        assert message in await response.text()
        row = await member_row(db, kari)
        assert (row.status, row.phone, row.first_name) == (members.ACTIVE, KARI, "Kari")

    response = await admin.post(f"/admin/members/{kari}/erase", {"confirm": " 45 67 "})
    assert response.status == 303
    assert response.headers["Location"] == "/admin/members?erased=1"
    row = await member_row(db, kari)
    assert (row.status, row.phone, row.first_name, row.language) == (
        members.ERASED,
        None,
        None,
        None,
    )
    assert (await admin.client.get(f"/admin/members/{kari}")).status == 404
    assert (await admin.client.get(f"/admin/members/{kari}/export.json")).status == 404
    notice = await (await admin.client.get("/admin/members?erased=1")).text()
    assert "Medlemmet er slettet." in notice
    assert kari not in links(notice)
    # The consent still held is withdrawn by the admin, logged; the texts are blanked.
    events = await db.run(
        lambda s: [
            (e.action, e.channel, e.evidence)
            for e in s.scalars(select(ConsentEvent).order_by(ConsentEvent.id))
        ]
    )
    assert events == [("grant", "sms", "SM-evidence-1"), ("withdraw", "admin", f"admin {OWNER}")]
    bodies = await db.run(lambda s: list(s.scalars(select(InboundMessage.body))))
    assert bodies == [None]
    # Figures stay: the points are still counted, anonymously.
    assert await db.run(lambda s: s.scalar(select(func.count()).select_from(LedgerEntry))) == 1


async def test_another_clubs_owner_cannot_reach_our_member(
    admin: Admin, db: Database, club: int, other_club: int
) -> None:
    kari = await create_member(db, club, KARI, "Kari")
    await create_account(db, other_club, OTHER_OWNER)
    await admin.signed_in(OTHER_OWNER)
    assert (await admin.client.get(f"/admin/members/{kari}/export.json")).status == 404
    assert (await admin.post(f"/admin/members/{kari}/erase", {"confirm": "4567"})).status == 404
    assert links(await listed(admin, "+47 912 34 567")) == set()
    assert (await member_row(db, kari)).status == members.ACTIVE


async def test_a_common_name_is_counted_up_to_a_cap(
    admin: Admin, owner: int, db: Database, club: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.admin.members.PAGE_SIZE", 2)
    monkeypatch.setattr("store.member_search.COUNT_CAP", 3)
    karis = [await create_member(db, club, f"+47912345{i:02d}", "Kari") for i in range(5)]
    await admin.signed_in(OWNER)
    page = await listed(admin, "kari")
    assert "Viser 1–2 av over 3: skriv mer av navnet" in page
    assert links(page) == set(karis[3:])
    assert 'href="/admin/members?q=kari&amp;page=2"' in page
