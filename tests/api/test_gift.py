"""POST /members/{id}/coupons: a till gives a member a coupon as a gift (coupons:give), and the
gift_received journey tells the member by SMS once; what can't be given is named."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from scheduler import journeys as job
from scheduler import sender
from store.database import Database
from store.loyalty import coupons
from store.models import Member, Program
from store.outreach import journeys
from tests.api.conftest import Till, create_key
from tests.conftest import now
from tests.scheduler.campaign_helpers import RecordingGateway


async def add_template(db: Database, club: int, key: str = "kaffe") -> None:
    def work(session: Session) -> None:
        coupons.create_template(
            session,
            session.get(Program, club),
            key=key,
            kind=coupons.CAMPAIGN,
            benefit={"nb": "Gratis kaffe", "en": "Free coffee"},
            valid_days=14,
        )

    await db.run(work)


async def test_a_gift_is_given_by_the_key_and_announced_once(
    till: Till, db: Database, club: int, member: dict[str, Any]
) -> None:
    await add_template(db, club)

    def switch_on(session: Session) -> None:
        program = session.get(Program, club)
        journeys.create(session, program, trigger="gift_received", now=now())

    await db.run(switch_on)
    answer = await till.post(f"/members/{member['id']}/coupons", {"template": "kaffe"})
    assert answer.status == 201, answer.body
    assert answer.body["member_id"] == member["id"]
    assert answer.body["benefit"] == "Gratis kaffe"
    assert answer.body["state"] == "valid"
    given = answer.body["code"]
    held = await db.run(lambda s: coupons.find(s, club, given))
    assert coupons.given_by(held.coupon) == "till-1"
    # The journeys job plans it (quiet hours may hold it: the sender is asked a day on, at noon).
    moment = dt.datetime.now(dt.UTC)
    assert (await job.run(db, lambda: moment)).get(club) == {"gift_received": 1}
    assert (await job.run(db, lambda: moment)).get(club) == {"gift_received": 0}
    noon = moment.replace(hour=11, minute=0) + dt.timedelta(days=1)
    gateway = RecordingGateway()
    await sender.drain(db, gateway, lambda: noon)
    # Beside the enrolment's own texts (the consent confirmation, the profile's questions).
    [body] = [text for text in gateway.to(member["phone"]) if "gave" in text]
    assert f"har gitt deg en gave: Gratis kaffe. Kode {given}," in body


async def test_what_cannot_be_given_is_named(
    till: Till, db: Database, club: int, member: dict[str, Any], other_club: int
) -> None:
    await add_template(db, club)
    path = f"/members/{member['id']}/coupons"
    unknown = await till.post(path, {"template": "nothing"})
    assert unknown.status == 404
    assert "nothing" in unknown.body["error"]
    await db.run(lambda s: setattr(s.get(Member, member["id"]), "status", "pending"))
    pending = await till.post(path, {"template": "kaffe"})
    assert pending.status == 422, pending.body
    assert pending.body["field"] == "member"
    assert (await till.post(path, {})).body["field"] == "template"
    assert (await till.post(path, {"template": ""})).status == 422
    assert (await till.post("/members/999999/coupons", {"template": "kaffe"})).status == 404
    # Another club's key does not reach this club's member.
    theirs = Till(till.client, await create_key(db, other_club))
    assert (await theirs.post(path, {"template": "kaffe"})).status == 404


async def test_a_key_without_the_scope_is_403(
    till: Till, db: Database, club: int, member: dict[str, Any]
) -> None:
    await add_template(db, club)
    narrow = Till(till.client, await create_key(db, club, name="reader", scopes=["coupons:read"]))
    answer = await narrow.post(f"/members/{member['id']}/coupons", {"template": "kaffe"})
    assert answer.status == 403
    assert answer.body["scope"] == "coupons:give"
