"""A coupon given as a gift on a member's page (owner and staff): the coupon in the store naming
who gave it, the code shown after the redirect; a bad choice named; the journeys page lists
the catalogue's later journeys with their settings."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from store.database import Database
from store.loyalty import coupons
from store.models import Coupon, Program
from store.outreach import journeys
from tests.admin.conftest import OWNER, STAFF, Admin, create_member

pytestmark = pytest.mark.usefixtures("cheap_argon2")

KARI = "+4791234567"


async def add_template(db: Database, club: int, key: str = "kaffe") -> int:
    def work(session: Session) -> int:
        return coupons.create_template(
            session,
            session.get(Program, club),
            key=key,
            kind=coupons.CAMPAIGN,
            benefit={"nb": "Gratis kaffe", "sv": "Gratis kaffe", "en": "Free coffee"},
            valid_days=14,
        ).id

    return await db.run(work)


async def coupons_of(db: Database) -> list[Coupon]:
    return await db.run(lambda s: list(s.scalars(select(Coupon).order_by(Coupon.id))))


async def test_staff_give_a_coupon_and_see_its_code(
    admin: Admin, staff: int, db: Database, club: int
) -> None:
    await add_template(db, club)
    kari = await create_member(db, club, KARI, "Kari")
    await admin.signed_in(STAFF)
    page = await (await admin.client.get(f"/admin/members/{kari}")).text()
    assert f'action="/admin/members/{kari}/gift#gift"' in page
    assert '<option value="kaffe">Gratis kaffe</option>' in page
    response = await admin.post(f"/admin/members/{kari}/gift", {"template": "kaffe"})
    assert response.status == 303
    [given] = await coupons_of(db)
    code = coupons.display(given.code)
    assert response.headers["Location"] == f"/admin/members/{kari}?gifted={code}#gift"
    assert coupons.given_by(given) == STAFF
    assert given.member_id == kari
    page = await (await admin.client.get(response.headers["Location"])).text()
    assert f"Kupongen {code} er gitt." in page
    assert code in page.split('id="coupons"')[1]  # in the member's coupons


async def test_a_bad_choice_is_named_and_nothing_is_given(
    admin: Admin, owner: int, db: Database, club: int, other_club: int
) -> None:
    await add_template(db, club)
    await add_template(db, other_club, "theirs")
    kari = await create_member(db, club, KARI, "Kari")
    pending = await create_member(db, club, "+4791234568", None, status="pending")
    await admin.signed_in(OWNER)
    for choice in ("theirs", "", "x" * 500):
        response = await admin.post(f"/admin/members/{kari}/gift", {"template": choice})
        assert response.status == 422, choice
        assert "Velg en av klubbens kuponger i bruk." in await response.text()
    response = await admin.post(f"/admin/members/{pending}/gift", {"template": "kaffe"})
    assert response.status == 422
    assert "Bare et medlem som har blitt med" in await response.text()
    assert await coupons_of(db) == []
    # Another club's member, and one that is not there: 404.
    assert (await admin.post("/admin/members/999999/gift", {"template": "kaffe"})).status == 404


async def test_without_the_csrf_token_403_and_nothing_is_given(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await add_template(db, club)
    kari = await create_member(db, club, KARI, "Kari")
    await admin.signed_in(OWNER)
    response = await admin.client.post(
        f"/admin/members/{kari}/gift", data={"template": "kaffe"}, allow_redirects=False
    )
    assert response.status == 403
    assert await coupons_of(db) == []


async def test_the_journeys_page_offers_the_catalogues_later_journeys(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await admin.signed_in(OWNER)
    page = await (await admin.client.get("/admin/journeys")).text()
    for trigger in (*journeys.MILESTONES, "coming_reward", "member_day", "gift_received"):
        assert f'action="/admin/journeys/{trigger}#journey-{trigger}"' in page
    card = page.split('id="journey-milestone_months"')[1].split("</section>")[0]
    assert "Milepæl: måneder som medlem" in card
    assert 'name="setting_at"' in card
    assert "måneder" in card
    assert "Du har vært medlem i {club} i {milestone} måneder." in card
    # Saved: on, with its own `at`; a month count past a hundred years is named.
    response = await admin.post(
        "/admin/journeys/milestone_months", {"active": "on", "setting_at": "24"}
    )
    assert response.status == 303
    saved = await db.run(
        lambda s: {j.trigger: journeys.settings_of(j) for j in journeys.all_of(s, club)}
    )
    assert saved["milestone_months"]["at"] == 24
    refused = await admin.post(
        "/admin/journeys/milestone_months", {"active": "on", "setting_at": "1201"}
    )
    assert refused.status == 422
    refused_card = (await refused.text()).split('id="journey-milestone_months"')[1]
    assert "Skriv et helt tall fra 2 til 1" in refused_card  # 1 200, the store's own range
    gift = await admin.post("/admin/journeys/gift_received", {"active": "on"})
    assert gift.status == 303
