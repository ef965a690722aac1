"""Settings, coupon templates: the owner gives a coupon an offer the till computes (percent or
amount off, buy N pay for M; the basket, categories, brands or SKUs; a minimum basket), sees it
as a member reads it, takes it away again; a bad field is named beside it and nothing changes;
the till then prices the basket by it; staff get 403; without the CSRF token nothing changes."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from store.database import Database
from store.loyalty import coupons
from store.models import CouponTemplate, Program
from tests.admin.conftest import OWNER, STAFF, Admin
from tests.api.conftest import Till, create_key
from tests.conftest import now

pytestmark = pytest.mark.usefixtures("cheap_argon2")


async def template(db: Database, club: int) -> int:
    def work(session: Session) -> int:
        made = coupons.create_template(
            session,
            session.get(Program, club),
            key="spring",
            kind=coupons.CAMPAIGN,
            benefit={"nb": "Vårtilbud", "en": "Spring offer"},
            valid_days=30,
        )
        return made.id

    return await db.run(work)


async def offer_of(db: Database, template_id: int) -> Any:
    return await db.run(lambda s: s.get(CouponTemplate, template_id).offer)


FORM = {"benefit_nb": "Vårtilbud", "benefit_en": "Spring offer", "valid_days": "30"}


def article(page: str, template_id: int) -> str:
    return page.split(f'id="coupon-{template_id}"')[1].split("</article>")[0]


def error_beside(page: str, field: str) -> str:
    return page.split(f'id="{field}-error">')[1].split("</p>")[0]


async def test_the_owner_sets_an_offer_and_sees_it_as_a_member_reads_it(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    spring = await template(db, club)
    await admin.signed_in(OWNER)
    response = await admin.post(
        f"/admin/settings/coupons/{spring}",
        {
            **FORM,
            "offer_type": "percent",
            "offer_value": "20",
            "offer_scope": "categories",
            "offer_items": "Sko, sandaler",
            "offer_min": "500",
        },
    )
    assert response.status == 303, await response.text()
    assert await offer_of(db, spring) == {
        "type": "percent",
        "value": 20,
        "scope": "categories",
        "items": ["Sko", "sandaler"],
        "min_basket_minor": 50000,
    }
    page = await (await admin.client.get("/admin/settings")).text()
    shown = article(page, spring)
    assert "20 % rabatt på Sko/sandaler, fra 500 kr" in shown
    # The edit form shows what is saved.
    assert 'name="offer_items" type="text" value="Sko, sandaler"' in shown
    assert 'value="percent" selected' in shown
    assert 'name="offer_min" type="text" value="500,00"' in shown

    response = await admin.post(
        f"/admin/settings/coupons/{spring}",
        {
            **FORM,
            "offer_type": "buy_n_pay_m",
            "offer_buy": "3",
            "offer_pay": "2",
            "offer_scope": "skus",
            "offer_items": "SOCK-1",
        },
    )
    assert response.status == 303, await response.text()
    page = await (await admin.client.get("/admin/settings")).text()
    assert "Kjøp 3 varenr. SOCK-1, betal for 2" in article(page, spring)

    response = await admin.post(
        f"/admin/settings/coupons/{spring}",
        {**FORM, "offer_type": "amount", "offer_value": "100", "offer_scope": "basket"},
    )
    assert response.status == 303
    assert (await offer_of(db, spring))["value"] == 10000
    page = await (await admin.client.get("/admin/settings")).text()
    assert "100 kr rabatt på handelen" in article(page, spring)

    # No offer: the benefit is text for the cashier again.
    response = await admin.post(f"/admin/settings/coupons/{spring}", {**FORM, "offer_type": ""})
    assert response.status == 303
    assert await offer_of(db, spring) is None
    assert "I kassen:" not in article(
        await (await admin.client.get("/admin/settings")).text(), spring
    )


async def test_a_new_coupon_with_an_offer_and_the_till_prices_by_it(
    admin: Admin, owner: int, db: Database, club: int, client: Any
) -> None:
    await admin.signed_in(OWNER)
    response = await admin.post(
        "/admin/settings/coupons",
        {
            **FORM,
            "key": "shoes-20",
            "kind": "campaign",
            "offer_type": "percent",
            "offer_value": "20",
            "offer_scope": "brands",
            "offer_items": "Asics",
        },
    )
    assert response.status == 303, await response.text()
    till = Till(client, await create_key(db, club, name="kasse"))
    member = (await till.enrol()).body

    def give(session: Session) -> str:
        program = session.get(Program, club)
        held = coupons.give(session, program, member["id"], "shoes-20", "owner", now())
        return coupons.display(held.coupon.code)

    code = await db.run(give)
    lines = [
        {"brand": "asics", "qty": 1, "amount_minor": 100000},
        {"brand": "Nike", "qty": 1, "amount_minor": 50000},
    ]
    answer = await till.post("/baskets/evaluate", {"lines": lines, "coupon_codes": [code]})
    assert answer.status == 200, answer.body
    assert [line["coupon_minor"] for line in answer.body["lines"]] == [20000, 0]


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"offer_type": "gift"}, "offer_type", "Velg hva kassen trekker fra"),
        ({"offer_type": "percent", "offer_value": "101"}, "offer_value", "1 til 100"),
        ({"offer_type": "percent", "offer_value": "ti"}, "offer_value", "helt tall"),
        ({"offer_type": "percent"}, "offer_value", "1 til 100"),
        ({"offer_type": "amount", "offer_value": "0"}, "offer_value", "over 0"),
        ({"offer_type": "amount", "offer_value": "1,234"}, "offer_value", "desimal"),
        (
            {"offer_type": "buy_n_pay_m", "offer_buy": "1", "offer_pay": "1"},
            "offer_buy",
            "2 til 100",
        ),
        ({"offer_type": "buy_n_pay_m", "offer_buy": "3", "offer_pay": "3"}, "offer_pay", "færre"),
        (
            {"offer_type": "percent", "offer_value": "5", "offer_scope": "aisle"},
            "offer_scope",
            "Velg",
        ),
        (
            {"offer_type": "percent", "offer_value": "5", "offer_scope": "categories"},
            "offer_items",
            "kategoriene",
        ),
        (
            {"offer_type": "percent", "offer_value": "5", "offer_items": "Sko"},
            "offer_items",
            "tomt",
        ),
        ({"offer_type": "percent", "offer_value": "5", "offer_min": "-3"}, "offer_min", "0"),
    ],
)
async def test_a_bad_offer_field_is_named_beside_it_and_nothing_changes(
    admin: Admin,
    owner: int,
    db: Database,
    club: int,
    changes: dict[str, str],
    field: str,
    message: str,
) -> None:
    spring = await template(db, club)
    await admin.signed_in(OWNER)
    response = await admin.post(f"/admin/settings/coupons/{spring}", {**FORM, **changes})
    assert response.status == 422
    page = await response.text()
    assert message in error_beside(page, f"coupon-{spring}-{field}")
    assert await offer_of(db, spring) is None


async def test_staff_and_forged_forms_change_nothing(
    admin: Admin, owner: int, staff: int, db: Database, club: int
) -> None:
    spring = await template(db, club)
    form = {**FORM, "offer_type": "percent", "offer_value": "20", "offer_scope": "basket"}
    await admin.signed_in(OWNER)
    response = await admin.client.post(
        f"/admin/settings/coupons/{spring}", data=form, allow_redirects=False
    )
    assert response.status == 403
    await admin.signed_in(STAFF)
    assert (await admin.post(f"/admin/settings/coupons/{spring}", form)).status == 403
    assert await offer_of(db, spring) is None
