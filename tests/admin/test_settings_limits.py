"""The settings page's hint for the cap says the range of the one table
(store.clubs.programs.LIMITS), in the admin's language."""

from __future__ import annotations

import pytest

from store.clubs import programs
from tests.admin.conftest import OWNER, Admin

pytestmark = pytest.mark.usefixtures("cheap_argon2")


async def test_the_cap_hint_names_the_tables_range(admin: Admin, owner: int) -> None:
    await admin.signed_in(OWNER)
    page = await (await admin.client.get("/admin/settings")).text()
    low, high = programs.LIMITS["marketing_per_month"]
    assert f"{low} til {high} i løpet av 30 dager." in page
    assert "{low}" not in page
