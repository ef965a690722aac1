"""The join poster download: owner and staff get their own club's PDF (A4 or A6) as an
attachment; a size that is not a4 or a6 is a 400 naming it; no one signed in gets no poster."""

from __future__ import annotations

import io

import pypdf
import pytest

from store.database import Database
from tests.admin.conftest import OTHER_OWNER, OWNER, STAFF, Admin, create_account
from tests.conftest import create_club

PAGE_SIZES = {"a4": (595, 842), "a6": (298, 420)}


def page(body: bytes) -> tuple[tuple[int, int], str]:
    assert body.startswith(b"%PDF-")
    reader = pypdf.PdfReader(io.BytesIO(body))
    box = reader.pages[0].mediabox
    return (round(float(box.width)), round(float(box.height))), reader.pages[0].extract_text()


@pytest.mark.parametrize("size", ["a4", "a6"])
async def test_the_owner_downloads_the_poster_of_each_size(
    admin: Admin, owner: int, size: str
) -> None:
    await admin.signed_in(OWNER)
    response = await admin.client.get("/admin/poster", params={"size": size})
    assert response.status == 200
    assert response.content_type == "application/pdf"
    assert response.headers["Content-Disposition"] == f'attachment; filename="poster-{size}.pdf"'
    dimensions, text = page(await response.read())
    assert dimensions == PAGE_SIZES[size]
    assert "Torshov Sport" in text
    assert "Send BLI MED til 2020" in text


async def test_staff_can_download_the_poster_and_a4_is_the_default(
    admin: Admin, staff: int
) -> None:
    await admin.signed_in(STAFF)
    response = await admin.client.get("/admin/poster")
    assert response.status == 200
    assert page(await response.read())[0] == PAGE_SIZES["a4"]


async def test_another_club_gets_its_own_poster_in_its_language(
    admin: Admin, owner: int, other_club: int, db: Database
) -> None:
    await create_account(db, other_club, OTHER_OWNER)
    await admin.signed_in(OTHER_OWNER)
    response = await admin.client.get("/admin/poster", params={"size": "a6"})
    text = page(await response.read())[1]
    assert "Kafé Kari" in text
    assert "Skicka GÅ MED till" in text
    assert "Torshov Sport" not in text


@pytest.mark.parametrize("size", ["A3", "", "a4 ", "<b>"])
async def test_a_size_that_is_not_a4_or_a6_is_a_400_naming_it(
    admin: Admin, owner: int, size: str
) -> None:
    await admin.signed_in(OWNER)
    response = await admin.client.get(
        "/admin/poster", params={"size": size}, headers={"Accept": "application/json"}
    )
    assert response.status == 400
    assert "size" in await response.text()


async def test_no_poster_without_signing_in(admin: Admin, owner: int) -> None:
    response = await admin.client.get("/admin/poster", allow_redirects=False)
    assert response.status in (302, 303, 401)
    assert response.content_type != "application/pdf"


async def test_the_settings_page_links_both_sizes(admin: Admin, owner: int) -> None:
    await admin.signed_in(OWNER)
    response = await admin.client.get("/admin/settings")
    page = await response.text()
    for size in ("a4", "a6"):
        assert f'href="/admin/poster?size={size}"' in page
        download = await admin.client.get(f"/admin/poster?size={size}")
        assert download.status == 200
        assert (await download.read()).startswith(b"%PDF-")


async def test_a_greek_club_name_with_an_emoji_is_printed_in_the_embedded_font(
    admin: Admin, db: Database
) -> None:
    # No profile questions: their SMS would have to fit in UCS-2 with this name.
    club = await create_club(db, name="Καφενείο ☕ Αθήνα", numbers=["4040"], questions=[])
    await create_account(db, club, OTHER_OWNER)
    await admin.signed_in(OTHER_OWNER)
    response = await admin.client.get("/admin/poster", params={"size": "a4"})
    assert response.status == 200
    body = await response.read()
    text = page(body)[1]
    assert text.splitlines()[0] == "Καφενείο Αθήνα"  # the emoji, in no font, is left out
    resources = pypdf.PdfReader(io.BytesIO(body)).pages[0]["/Resources"]
    for font in (f.get_object() for f in resources["/Font"].values()):
        assert font["/BaseFont"].endswith(("+NotoSans-Regular", "+NotoSans-Bold"))
        assert "/FontFile2" in font["/FontDescriptor"]
    # The same poster is the same bytes (no time or random id), embedded font and all.
    again = await admin.client.get("/admin/poster", params={"size": "a4"})
    assert await again.read() == body
