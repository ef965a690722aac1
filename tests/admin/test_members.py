"""The members pages through the app on SQLite and PostgreSQL: search by number in any format or
by name, a member's page, manual points, the GDPR export and erasure, one club's members only."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.admin.members import MAX_PAGE, _page_number
from bot.cli.demo import set_up_loyalty
from store import messages
from store.clubs import programs
from store.database import Database
from store.loyalty import ledger, purchases
from store.loyalty.earning import Line
from store.members import members
from store.models import ConsentEvent, InboundMessage, LedgerEntry, Member
from tests.admin.conftest import OTHER_OWNER, OWNER, STAFF, Admin, create_account, create_member
from tests.admin.members_data import with_history
from tests.conftest import CLUB_NUMBER, now

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


@pytest.mark.parametrize(
    ("query", "cleaned"), [("Kari\x00", "Kari"), ("\x00Ka\x1bri\x7f", "Kari"), ("\x00", "")]
)
async def test_a_search_with_a_control_character_searches_without_it(
    admin: Admin, owner: int, db: Database, club: int, query: str, cleaned: str
) -> None:
    """A NUL (which PostgreSQL refuses as a parameter: a 500 there) or another control
    character in the search: sent on to the same search without it, which finds the member."""
    await create_member(db, club, KARI, "Kari")
    await admin.signed_in(OWNER)
    response = await admin.client.get(
        "/admin/members", params={"q": query, "page": "1"}, allow_redirects=False
    )
    assert response.status == 303
    assert response.headers["Location"] == f"/admin/members?q={cleaned}&page=1"
    found = await admin.client.get("/admin/members", params={"q": query})
    assert found.status == 200
    assert len(links(await found.text())) == 1
    assert f'value="{cleaned}"' in await found.text()


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
    monkeypatch.setattr("store.members.member_search.COUNT_CAP", 3)
    karis = [await create_member(db, club, f"+47912345{i:02d}", "Kari") for i in range(5)]
    await admin.signed_in(OWNER)
    page = await listed(admin, "kari")
    assert "Viser 1–2 av over 3: skriv mer av navnet" in page
    assert links(page) == set(karis[3:])
    assert 'href="/admin/members?q=kari&amp;page=2"' in page


# --- purchases, punch cards and the pages of a member's lists ------------------------------------

BASE = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


async def with_purchases_and_texts(db: Database, member_id: int, bought: int, texts: int) -> None:
    """`bought` purchases an hour apart (SKU-00 first), and `texts` texts a minute apart: the
    member's "melding NN" in, each answered by "svar NN" a minute later."""

    def work(session: Session) -> None:
        program = programs.get(session, club_of(session, member_id))
        assert program is not None
        for n in range(bought):
            at = BASE + dt.timedelta(hours=n)
            purchases.record(
                session,
                program,
                member_id,
                transaction_id=f"T-{n:02d}",
                lines=[Line(sku=f"SKU-{n:02d}", qty=1, amount_minor=10_000)],
                occurred_at=at,
                fingerprint=f"T-{n:02d}",
                now=at,
                store="Torshov",
            )
        for n in range(texts // 2):
            at = BASE + dt.timedelta(minutes=2 * n)
            inbound = messages.record_inbound(
                session,
                program_id=program.id,
                provider_sid=f"SM-{n:02d}",
                member_id=member_id,
                from_number=KARI,
                to_number=CLUB_NUMBER,
                body=f"melding {n:02d} inn",
                intent=None,
                reply=None,
                now=at,
            )
            messages.record_reply(
                session,
                program_id=program.id,
                member_id=member_id,
                inbound_id=inbound,
                to_number=KARI,
                from_number=CLUB_NUMBER,
                body=f"svar {n:02d} ut",
                segments=1,
                now=at + dt.timedelta(minutes=1),
            )

    await db.run(work)


def club_of(session: Session, member_id: int) -> int:
    member = session.get(Member, member_id)
    assert member is not None
    return member.program_id


def skus(page: str) -> list[str]:
    return re.findall(r"SKU-\d\d", page)


def texts_on(page: str) -> list[str]:
    return re.findall(r"(?:melding|svar) \d\d (?:inn|ut)", page)


async def test_purchases_and_texts_come_a_page_at_a_time_newest_first(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    """60 purchases and 80 texts: the newest 10 and 20, and plain links to older ones (the
    points history, 60 entries, 20 a page)."""
    kari = await create_member(db, club, KARI, "Kari")
    await with_purchases_and_texts(db, kari, bought=60, texts=80)
    await admin.signed_in(OWNER)
    first = await (await admin.client.get(f"/admin/members/{kari}")).text()
    assert skus(first) == [f"SKU-{n}" for n in range(59, 49, -1)]
    assert texts_on(first) == [
        text for n in range(39, 29, -1) for text in (f"svar {n} ut", f"melding {n} inn")
    ]
    assert f'href="/admin/members/{kari}?purchases_page=2#purchases"' in first
    assert f'href="/admin/members/{kari}?messages_page=2#texts"' in first
    assert 'rel="prev"' not in first
    # The points history too: 60 purchases, 60 entries, 20 a page.
    assert len(re.findall(r'<td class="num plus">\+100</td>', first)) == 20
    assert f'href="/admin/members/{kari}?ledger_page=2#ledger"' in first
    third = await (await admin.client.get(f"/admin/members/{kari}?ledger_page=3")).text()
    assert len(re.findall(r'<td class="num plus">\+100</td>', third)) == 20
    assert "ledger_page=4" not in third
    assert f'href="/admin/members/{kari}?ledger_page=2#ledger"' in third

    second = await (await admin.client.get(f"/admin/members/{kari}?purchases_page=2")).text()
    assert skus(second) == [f"SKU-{n}" for n in range(49, 39, -1)]
    assert f'href="/admin/members/{kari}#purchases"' in second  # back to the newest
    assert f'href="/admin/members/{kari}?purchases_page=3#purchases"' in second
    assert texts_on(second) == texts_on(first)  # the texts stay on their own first page

    # Each list's links keep the other's page.
    both = await admin.client.get(f"/admin/members/{kari}?purchases_page=6&messages_page=2")
    page = await both.text()
    assert skus(page) == [f"SKU-{n:02d}" for n in range(9, -1, -1)]
    assert "?purchases_page=6&amp;messages_page=3#texts" in page
    assert "?purchases_page=5&amp;messages_page=2#purchases" in page
    assert "purchases_page=7" not in page  # the oldest page has no older link
    assert texts_on(page)[0] == "svar 29 ut"
    last = await (await admin.client.get(f"/admin/members/{kari}?messages_page=4")).text()
    assert texts_on(last)[-1] == "melding 00 inn"
    assert "messages_page=5" not in last


@pytest.mark.parametrize("value", ["abc", "0", "-1", "1.5", "", "%00", "1e9", "²", "١٢", "+2"])
async def test_a_page_that_is_no_page_number_is_the_first(
    admin: Admin, owner: int, db: Database, club: int, value: str
) -> None:
    kari = await create_member(db, club, KARI, "Kari")
    await with_purchases_and_texts(db, kari, bought=12, texts=44)
    await admin.signed_in(OWNER)
    for name in ("purchases_page", "ledger_page", "messages_page"):
        response = await admin.client.get(f"/admin/members/{kari}?{name}={value}")
        assert response.status == 200, (name, value)
        page = await response.text()
        assert skus(page) == [f"SKU-{n:02d}" for n in range(11, 1, -1)], (name, value)
        assert texts_on(page)[0] == "svar 21 ut", (name, value)
    # The search's pages are read the same way ("²" is a digit to Python, but no int).
    assert (await admin.client.get("/admin/members", params={"page": value})).status == 200


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
# Any text, and digits of every script ("²" is a digit to str.isdigit() but no int()).
@given(st.text() | st.text(st.characters(categories=("Nd", "No")), min_size=1))
def test_any_page_parameter_reads_as_a_page(raw: str) -> None:
    assert 1 <= _page_number(raw) <= MAX_PAGE


async def test_a_page_beyond_the_last_shows_none_and_the_way_back(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    kari = await create_member(db, club, KARI, "Kari")
    await with_purchases_and_texts(db, kari, bought=12, texts=0)
    await admin.signed_in(OWNER)
    for asked, back in (("3", "2"), ("9" * 40, "9999")):
        response = await admin.client.get(f"/admin/members/{kari}?purchases_page={asked}")
        assert response.status == 200
        page = await response.text()
        assert skus(page) == []
        assert f'href="/admin/members/{kari}?purchases_page={back}#purchases"' in page


async def test_a_purchase_shows_its_store_total_points_lines_and_refunds(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    kari = await create_member(db, club, KARI, "Kari")

    def work(session: Session) -> None:
        program = programs.get(session, club)
        assert program is not None
        lines = [
            Line(sku="SKI-1", category="skiing", qty=2, amount_minor=200_000),
            Line(category="service", qty=1, amount_minor=50_000),
            Line(qty=1, amount_minor=100),
            Line(sku="SOKK", qty=3, amount_minor=15_000),
            Line(sku="LUE", qty=1, amount_minor=20_000),
        ]
        purchases.record(
            session,
            program,
            kari,
            transaction_id="T-1",
            lines=lines,
            occurred_at=BASE,
            fingerprint="T-1",
            now=BASE,
            store="Majorstuen",
        )
        purchases.refund(
            session,
            program,
            transaction_id="T-1",
            refund_id="R-1",
            lines=[purchases.RefundLineIn(2)],
            fingerprint="R-1",
            now=BASE + dt.timedelta(days=1),
        )

    await db.run(work)
    await admin.signed_in(OWNER)
    page = await (await admin.client.get(f"/admin/members/{kari}")).text()
    row = re.search(r"<tr data-purchase>.*?</tr>", page, re.S)
    assert row, page
    cells = [
        # Spaces and newlines of the markup only: money keeps its no-break spaces.
        re.sub(r"[ \n]+", " ", re.sub(r"<[^>]+>", " ", c)).strip(" ")
        for c in re.findall(r"<td[^>]*>(.*?)</td>", row[0], re.S)
    ]
    assert cells[0] == "02.03.2026 10:00"  # the club's time (Oslo)
    assert cells[1] == "Majorstuen"
    assert cells[2] == "2\u00a0851,00\u00a0kr"
    assert cells[3] == "2 851 poeng"  # the unit shown on a phone, where the heading is not
    assert cells[4].startswith("2 × SKI-1, 1 × service, 1 × – og 2 til")
    assert "Refundert 500,00\u00a0kr 03.03.2026 10:00, 500 poeng tatt tilbake" in cells[4]


async def test_the_punch_cards_show_where_the_member_stands(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    kari = await create_member(db, club, KARI, "Kari")

    def work(session: Session) -> None:
        program = programs.get(session, club)
        assert program is not None
        set_up_loyalty(session, program)
        for n in range(2):
            purchases.record(
                session,
                program,
                kari,
                transaction_id=f"T-{n}",
                lines=[Line(category="Service", qty=1, amount_minor=10_000)],
                occurred_at=BASE,
                fingerprint=f"T-{n}",
                now=BASE,
            )

    await db.run(work)
    await admin.signed_in(OWNER)
    page = await (await admin.client.get(f"/admin/members/{kari}")).text()
    card = re.search(r"<li data-punch-card>(.*?)</li>", page, re.S)
    assert card, page
    assert '<meter min="0" max="5" value="2"' in card[1]
    assert re.sub(r"\s+", " ", card[1]).endswith("2 av 5 til gratis skismøring (service)")
