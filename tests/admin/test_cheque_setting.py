"""Settings, coupon templates: the owner makes a reward a bonus cheque (issued by itself when a
balance covers it) and back; the page says what it gives; anything but a reward for points is
refused by name; staff get 403; without the CSRF token nothing changes."""

from __future__ import annotations

from sqlalchemy.orm import Session

from store.database import Database
from store.loyalty import coupons
from store.models import CouponTemplate, Program
from tests.admin.conftest import OWNER, STAFF, Admin


async def template(db: Database, club: int, kind: str = coupons.REWARD) -> int:
    def work(session: Session) -> int:
        made = coupons.create_template(
            session,
            session.get(Program, club),
            key=f"{kind}-50",
            kind=kind,
            benefit={"nb": "{amount} rabatt", "en": "{amount} off"},
            discount_minor=5000,
            points_cost=2500 if kind == coupons.REWARD else None,
            valid_days=60,
        )
        return made.id

    return await db.run(work)


async def automatic(db: Database, template_id: int) -> bool:
    return await db.run(lambda s: s.get(CouponTemplate, template_id).automatic)


async def test_the_owner_makes_a_reward_a_bonus_cheque_and_back(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    reward = await template(db, club)
    await admin.signed_in(OWNER)
    action = f"/admin/settings/coupons/{reward}/automatic"
    page = await (await admin.client.get("/admin/settings")).text()
    assert f'action="{action}#coupon-{reward}"' in page
    assert "Gjør til bonussjekk" in page
    assert "Bonussjekk: for hver" not in page

    response = await admin.post(action, {"automatic": "on"})
    assert response.status == 303
    assert response.headers["Location"] == f"/admin/settings?saved=coupon-{reward}#coupon-{reward}"
    assert await automatic(db, reward) is True
    page = await (await admin.client.get("/admin/settings")).text()
    assert "Bonussjekk: for hver 2\xa0500 poeng får medlemmet 50\xa0kr rabatt" in page
    assert "Ikke bonussjekk" in page

    assert (await admin.post(action, {"automatic": "off"})).status == 303
    assert await automatic(db, reward) is False


async def test_what_cannot_be_a_cheque_is_named(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    welcome = await template(db, club, coupons.WELCOME)
    reward = await template(db, club)
    await admin.signed_in(OWNER)
    refused = await admin.post(f"/admin/settings/coupons/{welcome}/automatic", {"automatic": "on"})
    assert refused.status == 422
    page = await refused.text()
    assert f'id="coupon-{welcome}-automatic-automatic-error"' in page
    assert "Bare en belønning for poeng kan være bonussjekk." in page
    assert await automatic(db, welcome) is False
    bad = await admin.post(f"/admin/settings/coupons/{reward}/automatic", {"automatic": "yes"})
    assert bad.status == 422
    assert "Velg på eller av." in await bad.text()
    assert await automatic(db, reward) is False
    missing = await admin.post("/admin/settings/coupons/999999/automatic", {"automatic": "on"})
    assert missing.status == 404


async def test_staff_and_a_missing_token_change_nothing(
    admin: Admin, staff: int, db: Database, club: int
) -> None:
    reward = await template(db, club)
    action = f"/admin/settings/coupons/{reward}/automatic"
    await admin.signed_in(STAFF)
    assert (await admin.post(action, {"automatic": "on"})).status == 403
    response = await admin.client.post(action, data={"automatic": "on"}, allow_redirects=False)
    assert response.status == 403
    assert await automatic(db, reward) is False
