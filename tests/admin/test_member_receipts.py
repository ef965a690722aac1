"""The member's receipts setting on the admin's member page and in the member's export."""

from __future__ import annotations

import json

from store.database import Database
from store.loyalty import receipts
from store.models import Member
from tests.admin.conftest import OWNER, Admin, create_member
from tests.conftest import now


async def test_the_member_page_and_export_show_receipts(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    kari = await create_member(db, club, "+4791234567", "Kari")
    await admin.signed_in(OWNER)

    async def shown() -> tuple[str, bool]:
        page = await (await admin.client.get(f"/admin/members/{kari}")).text()
        [value] = [line for line in page.splitlines() if "data-receipts" in line]
        export = await admin.client.get(f"/admin/members/{kari}/export.json")
        return value, json.loads(await export.text())["member"]["receipts"]

    value, exported = await shown()
    assert "Kvittering på SMS" in value
    assert "<dd data-receipts>Av</dd>" in value
    assert exported is False
    # As KVITTERING PÅ by SMS sets it (tests/api/test_receipts.py texts it).
    await db.run(lambda s: receipts.set_receipts(s, s.get(Member, kari), True, now()))
    value, exported = await shown()
    assert "<dd data-receipts>På: en SMS etter hvert kjøp</dd>" in value
    assert exported is True
