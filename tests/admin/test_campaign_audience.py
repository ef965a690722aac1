"""The compose form's audience count, before any preview: who the audience selects and who of
them a broadcast could reach now (consent, not stopped, under the monthly cap), on the page
for the audience it opens with and from the API its script asks when another is chosen."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy.orm import Session

from store.database import Database
from store.members import members
from store.models import Program
from store.outreach import segments
from tests.admin.conftest import OWNER, STAFF, Admin, create_member
from tests.admin.test_campaigns import over_the_cap
from tests.conftest import now

pytestmark = pytest.mark.usefixtures("cheap_argon2")

AUDIENCE = "/admin/api/campaigns/audience"


@pytest.fixture
async def signed_in(admin: Admin, owner: int) -> Admin:
    return await admin.signed_in(OWNER)


async def five_members(db: Database, club: int) -> dict[str, int]:
    """Kari, Ola and Per may get marketing; Stina said STOP; Nils has had the month's two."""
    ids = {
        name: await create_member(db, club, f"+479100000{i}", name)
        for i, name in enumerate(["Kari", "Ola", "Per"])
    }
    ids["Stina"] = await create_member(db, club, "+4791000009", "Stina", status=members.STOPPED)
    ids["Nils"] = await create_member(db, club, "+4791000008", "Nils")
    await over_the_cap(db, club, ids["Nils"], "+4791000008")
    return ids


async def save_segment(db: Database, club: int, name: str, filter: dict[str, object]) -> None:
    def work(session: Session) -> None:
        segments.save(session, session.get(Program, club), name, filter, now())

    await db.run(work)


def reach_of(html: str) -> list[str]:
    found = re.search(r'<p class="reach" id="audience-reach"[^>]*>(.*?)</p>', html, re.S)
    assert found, "no audience count on the form"
    return re.findall(r'<span class="reach-line">([^<]*)</span>', found.group(1))


async def ask(admin: Admin, body: object) -> tuple[int, dict[str, object]]:
    response = await admin.client.post(
        AUDIENCE,
        data=json.dumps(body),
        headers={"X-CSRF-Token": await admin.csrf(), "Content-Type": "application/json"},
    )
    return response.status, await response.json()


async def test_the_form_opens_with_its_audience_counted(
    signed_in: Admin, db: Database, club: int
) -> None:
    await five_members(db, club)
    html = await (await signed_in.client.get("/admin/campaigns/new")).text()
    assert reach_of(html) == [
        "5 medlemmer i målgruppen · 3 kan få meldingen nå",
        "1 har fått månedens meldinger allerede",
    ]
    picker = re.search(r'<select id="audience"[^>]*>', html)
    assert picker
    assert 'aria-describedby="audience-reach"' in picker.group(0)


async def test_a_segment_chosen_in_the_address_is_counted_without_a_script(
    signed_in: Admin, db: Database, club: int
) -> None:
    ids = await five_members(db, club)
    chosen = {"field": "member", "op": "in", "value": [ids["Kari"], ids["Stina"], ids["Nils"]]}
    await save_segment(db, club, "Tre", chosen)
    html = await (await signed_in.client.get("/admin/campaigns/new?segment=Tre")).text()
    assert '<option value="segment:Tre" selected>' in html
    assert reach_of(html) == [
        "3 medlemmer i målgruppen · 1 kan få meldingen nå",
        "1 har fått månedens meldinger allerede",
    ]


async def test_the_api_counts_the_audience_chosen(
    signed_in: Admin, db: Database, club: int
) -> None:
    ids = await five_members(db, club)
    status, body = await ask(signed_in, {"audience": "everyone"})
    assert status == 200
    assert (body["matching"], body["reachable"], body["under_cap"]) == (5, 4, 3)
    chosen = f"{ids['Kari']},{ids['Stina']}"
    status, body = await ask(signed_in, {"audience": "members", "members": chosen})
    assert status == 200
    assert body["texts"] == ["2 medlemmer i målgruppen · 1 kan få meldingen nå"]


async def test_an_audience_that_cant_be_counted_is_named(signed_in: Admin) -> None:
    assert (await ask(signed_in, {"audience": "segment:nobody"}))[0] == 422
    assert (await ask(signed_in, {"audience": "members", "members": ""}))[0] == 422
    assert (await ask(signed_in, {"audience": "members", "members": "1,x"}))[0] == 422
    assert (await ask(signed_in, {"audience": 5}))[0] == 422
    assert (await ask(signed_in, {"audience": "segment:\ud800"}))[0] == 422  # no text
    assert (await ask(signed_in, ["everyone"]))[0] == 422
    response = await signed_in.client.post(
        AUDIENCE, data=b"{nope", headers={"X-CSRF-Token": await signed_in.csrf()}
    )
    assert response.status == 400


async def test_staff_and_strangers_get_no_count(admin: Admin, staff: int, owner: int) -> None:
    assert (await admin.client.post(AUDIENCE, json={"audience": "everyone"})).status == 401
    await admin.signed_in(STAFF)
    assert (await ask(admin, {"audience": "everyone"}))[0] == 403
