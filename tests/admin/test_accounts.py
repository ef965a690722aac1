"""The Account page through the app on SQLite and PostgreSQL: everyone changes their own password
(which signs out their other devices), owners add staff (a password shown once) and remove
accounts (never the last owner); CSRF, roles and clubs as everywhere in the admin."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.admin.app import COOKIE, fernet_key
from bot.app import create_app
from bot.settings import Settings
from store.clubs import admins
from store.database import Database
from store.models import AdminAccount, AdminSession, AdminSignInFailure
from tests.admin.conftest import (
    OTHER_OWNER,
    OWNER,
    PASSWORD,
    SECRET_KEY,
    STAFF,
    Admin,
    create_account,
)

pytestmark = pytest.mark.usefixtures("cheap_argon2")

NEW = "a brand new password, long enough"
HTML = {"Accept": "text/html"}


async def another_browser(aiohttp_client: Any, settings: Settings) -> Admin:
    """A second device: its own cookie jar, on an app with the same key (a second process)."""
    return Admin(await aiohttp_client(create_app(settings)))


async def password_hash(db: Database, email: str) -> str | None:
    return await db.run(
        lambda s: s.scalar(select(AdminAccount.password_hash).where(AdminAccount.email == email))
    )


async def emails(db: Database) -> list[str]:
    return await db.run(lambda s: list(s.scalars(select(AdminAccount.email).order_by("id"))))


async def failures(db: Database) -> int:
    return await db.run(
        lambda s: s.scalar(select(func.count()).select_from(AdminSignInFailure)) or 0
    )


def change(current: str = PASSWORD, new: str = NEW, again: str | None = None) -> dict[str, str]:
    return {"current": current, "new": new, "again": new if again is None else again}


def field_error(page: str, field: str) -> str:
    """The error shown beside a field of the page's forms, or ""."""
    found = re.search(rf'<p class="field-error" id="{field}-error">([^<]*)</p>', page)
    return found.group(1) if found else ""


# --- the page --------------------------------------------------------------------------------


async def test_staff_have_the_page_with_their_own_password_only(admin: Admin, staff: int) -> None:
    await admin.signed_in(STAFF)
    dashboard = await (await admin.client.get("/admin/")).text()
    assert 'href="/admin/account"' in dashboard
    response = await admin.client.get("/admin/account")
    assert response.status == 200
    page = await response.text()
    assert "Bytt passord" in page
    assert f"Du er logget inn som {STAFF} (Ansatt)." in page
    assert 'autocomplete="current-password"' in page
    assert "Kontoer i klubben" not in page
    assert "/admin/account/staff" not in page


async def test_owners_see_the_clubs_accounts_and_no_other_clubs(
    admin: Admin, owner: int, staff: int, db: Database, other_club: int
) -> None:
    await create_account(db, other_club, OTHER_OWNER)
    await admin.signed_in(OWNER)
    page = await (await admin.client.get("/admin/account")).text()
    assert "Kontoer i klubben" in page
    assert OWNER in page
    assert STAFF in page
    assert "Eier" in page
    assert "Ansatt" in page
    assert OTHER_OWNER not in page
    assert f'href="/admin/account/{staff}/remove"' in page
    for email in (OWNER, STAFF):
        stored = await password_hash(db, email)
        assert stored
        assert stored not in page
        assert "$argon2" not in page


async def test_the_last_owner_is_not_offered_for_removal(
    admin: Admin, owner: int, staff: int, db: Database, club: int
) -> None:
    """The store refuses to remove the club's last owner, so the page offers no "Fjern" for
    it; with a second owner, both can be removed."""
    await admin.signed_in(OWNER)
    page = await (await admin.client.get("/admin/account")).text()
    assert f'href="/admin/account/{owner}/remove"' not in page
    assert f'href="/admin/account/{staff}/remove"' in page
    second = await create_account(db, club, "second@torshov.test")
    page = await (await admin.client.get("/admin/account")).text()
    assert f'href="/admin/account/{owner}/remove"' in page
    assert f'href="/admin/account/{second}/remove"' in page


async def test_without_a_session_the_page_redirects_and_actions_are_401(
    admin: Admin, owner: int
) -> None:
    page = await admin.client.get("/admin/account", allow_redirects=False)
    assert page.status == 303
    assert page.headers["Location"] == "/admin/sign-in?next=/admin/account"
    for path in (
        "/admin/account/password",
        "/admin/account/staff",
        f"/admin/account/{owner}/remove",
    ):
        assert (await admin.client.post(path, allow_redirects=False)).status == 401


# --- changing one's own password --------------------------------------------------------------


async def test_a_new_password_signs_out_the_other_devices_and_keeps_this_one(
    admin: Admin, owner: int, db: Database, aiohttp_client: Any, settings: Settings
) -> None:
    phone = await (await another_browser(aiohttp_client, settings)).signed_in(OWNER)
    assert (await phone.client.get("/admin/", allow_redirects=False)).status == 200
    await admin.signed_in(OWNER)
    response = await admin.post("/admin/account/password", change())
    assert response.status == 303
    assert response.headers["Location"] == "/admin/account?saved=password#password"
    page = await admin.client.get(response.headers["Location"], allow_redirects=False)
    assert page.status == 200
    assert "Passordet er byttet." in await page.text()
    # The other device is signed out at its next request: a page sends it to sign in, an
    # action is 401.
    out = await phone.client.get("/admin/members", allow_redirects=False)
    assert out.status == 303
    assert out.headers["Location"].startswith("/admin/sign-in")
    assert (await phone.client.get("/admin/api/summary")).status == 401
    # The new password signs in, the old one no longer does.
    assert (await phone.sign_in(OWNER, PASSWORD)).status == 401
    assert (await phone.sign_in(OWNER, NEW)).status == 303


async def test_a_new_password_ends_the_other_sessions_on_the_server(
    admin: Admin, owner: int, db: Database, aiohttp_client: Any, settings: Settings
) -> None:
    """The other device's cookie, copied anywhere, is worth nothing once the password changed;
    this browser's session row stays, and it carries on."""
    phone = await another_browser(aiohttp_client, settings)
    signed = await phone.sign_in(OWNER)
    copied = {"Cookie": f"{COOKIE}={signed.cookies[COOKIE].value}"}
    await admin.signed_in(OWNER)
    assert await live_sessions(db, owner) == 2
    assert (await admin.post("/admin/account/password", change())).status == 303
    assert await live_sessions(db, owner) == 1
    elsewhere = await another_browser(aiohttp_client, settings)
    out = await elsewhere.client.get("/admin/", headers=copied, allow_redirects=False)
    assert out.status == 303
    assert (await admin.client.get("/admin/", allow_redirects=False)).status == 200
    # CSRF still guards this session's forms after the change.
    assert (await admin.post("/admin/account/password", change(NEW, PASSWORD))).status == 303
    refused = await admin.client.post(
        "/admin/account/password", data=change(PASSWORD, NEW), allow_redirects=False
    )
    assert refused.status == 403


async def live_sessions(db: Database, account_id: int) -> int:
    return await db.run(
        lambda s: (
            s.scalar(
                select(func.count())
                .select_from(AdminSession)
                .where(AdminSession.account_id == account_id)
            )
            or 0
        )
    )


async def test_sign_out_everywhere_ends_every_session_of_the_account_only(
    admin: Admin,
    owner: int,
    staff: int,
    db: Database,
    aiohttp_client: Any,
    settings: Settings,
) -> None:
    phone = await (await another_browser(aiohttp_client, settings)).signed_in(OWNER)
    shop = await (await another_browser(aiohttp_client, settings)).signed_in(STAFF)
    await admin.signed_in(OWNER)
    page = await (await admin.client.get("/admin/account")).text()
    assert 'action="/admin/account/sign-out-everywhere"' in page
    assert "Logg ut overalt" in page
    assert "logget inn på kontoen din nå, denne medregnet: 2." in page
    response = await admin.post("/admin/account/sign-out-everywhere")
    assert response.status == 303
    assert response.headers["Location"] == "/admin/sign-in"
    for device in (admin, phone):
        out = await device.client.get("/admin/", allow_redirects=False)
        assert out.status == 303
    assert await live_sessions(db, owner) == 0
    # Another account's session is its own.
    assert (await shop.client.get("/admin/", allow_redirects=False)).status == 200
    # The owner signs in again as ever.
    assert (await admin.sign_in(OWNER)).status == 303


async def test_sign_out_everywhere_needs_the_csrf_token(
    admin: Admin, owner: int, db: Database
) -> None:
    await admin.signed_in(OWNER)
    response = await admin.client.post(
        "/admin/account/sign-out-everywhere", data={}, allow_redirects=False
    )
    assert response.status == 403
    assert await live_sessions(db, owner) == 1
    assert (await admin.client.get("/admin/", allow_redirects=False)).status == 200


async def test_a_new_password_set_by_the_operator_ends_every_session(
    admin: Admin, owner: int, db: Database
) -> None:
    await admin.signed_in(OWNER)
    new_hash = admins.hash_password(NEW)
    await db.run(lambda s: admins.set_password(s, OWNER, new_hash))
    assert (await admin.client.get("/admin/", allow_redirects=False)).status == 303


async def test_a_wrong_current_password_is_named_beside_it_and_nothing_changes(
    admin: Admin, owner: int, db: Database, aiohttp_client: Any, settings: Settings
) -> None:
    phone = await (await another_browser(aiohttp_client, settings)).signed_in(OWNER)
    await admin.signed_in(OWNER)
    before = await password_hash(db, OWNER)
    response = await admin.post("/admin/account/password", change(current="not my password"))
    assert response.status == 422
    page = await response.text()
    assert field_error(page, "password-current") == "Det er ikke passordet du har nå."
    assert 'aria-invalid="true"' in page
    assert "not my password" not in page
    assert NEW not in page
    assert await password_hash(db, OWNER) == before
    assert (await phone.client.get("/admin/", allow_redirects=False)).status == 200
    # It counts as a failed sign-in.
    assert await failures(db) == 1


async def test_wrong_current_passwords_are_slowed_like_sign_ins(
    admin: Admin, owner: int, db: Database
) -> None:
    await admin.signed_in(OWNER)
    before = await password_hash(db, OWNER)
    for _ in range(admins.FAILURES_PER_EMAIL):
        response = await admin.post("/admin/account/password", change(current="guess guess"))
        assert response.status == 422
    refused = await admin.post("/admin/account/password", change())
    assert refused.status == 429
    assert field_error(await refused.text(), "password-current") == (
        "For mange mislykkede forsøk. Prøv igjen om 15 minutter."
    )
    assert await password_hash(db, OWNER) == before
    assert (await admin.sign_in(OWNER)).status == 429  # and the sign-in is refused too


@pytest.mark.parametrize(
    ("form", "field", "says"),
    [
        (change(new="short"), "password-new", "Passordet må ha minst 10 og høyst 1\xa0024 tegn."),
        (
            change(new="x" * 1025),
            "password-new",
            "Passordet må ha minst 10 og høyst 1\xa0024 tegn.",
        ),
        (change(again=NEW + "!"), "password-again", "Passordene er ikke like."),
        (change(current=""), "password-current", "Skriv inn passordet du har nå."),
    ],
)
async def test_a_bad_form_says_what_is_wrong_beside_the_field_and_counts_nothing(
    admin: Admin, owner: int, db: Database, form: dict[str, str], field: str, says: str
) -> None:
    await admin.signed_in(OWNER)
    before = await password_hash(db, OWNER)
    response = await admin.post("/admin/account/password", form)
    assert response.status == 422
    page = await response.text()
    assert field_error(page, field).startswith(says)
    assert "Ingenting ble lagret." in page
    assert await password_hash(db, OWNER) == before
    assert await failures(db) == 0


async def test_staff_change_their_own_password(admin: Admin, staff: int, db: Database) -> None:
    await admin.signed_in(STAFF)
    assert (await admin.post("/admin/account/password", change())).status == 303
    assert (await admin.client.get("/admin/", allow_redirects=False)).status == 200
    assert (await admin.sign_in(STAFF, NEW)).status == 303


async def test_a_cookie_from_before_server_side_sessions_is_signed_out(
    admin: Admin, owner: int
) -> None:
    """A cookie naming its account (as before sessions were kept on the server) signs nobody
    in: its owner signs in again once."""
    data = {"created": int(time.time()), "session": {"account": owner, "csrf": "x" * 43}}
    cookie = fernet_key(SECRET_KEY).encrypt(json.dumps(data).encode()).decode()
    response = await admin.client.get(
        "/admin/", headers={"Cookie": f"{COOKIE}={cookie}"}, allow_redirects=False
    )
    assert response.status == 303
    assert response.headers["Location"] == "/admin/sign-in"


# --- adding staff ------------------------------------------------------------------------------


async def test_an_owner_adds_staff_whose_password_is_shown_once(
    admin: Admin,
    owner: int,
    db: Database,
    aiohttp_client: Any,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    await admin.signed_in(OWNER)
    response = await admin.post("/admin/account/staff", {"email": " Ola@Torshov.test"})
    assert response.status == 200
    page = await response.text()
    assert "Kopier passordet nå." in page
    found = re.search(r'id="secret" type="text" value="([^"]+)"', page)
    assert found
    password = found.group(1)
    assert len(password) >= admins.MIN_PASSWORD
    assert await emails(db) == [OWNER, "ola@torshov.test"]
    role = await db.run(
        lambda s: s.scalar(
            select(AdminAccount.role).where(AdminAccount.email == "ola@torshov.test")
        )
    )
    assert role == admins.STAFF
    # Never again: not on the page, not in the log.
    again = await (await admin.client.get("/admin/account")).text()
    assert "ola@torshov.test" in again
    assert password not in again
    assert password not in caplog.text
    ola = await another_browser(aiohttp_client, settings)
    assert (await ola.sign_in("ola@torshov.test", password)).status == 303


@pytest.mark.parametrize(
    ("email", "says"),
    [
        ("not an email", "Det er ikke en e-postadresse."),
        ("", "Det er ikke en e-postadresse."),
        (STAFF.upper(), "Denne e-postadressen har allerede en konto."),
        (OTHER_OWNER, "Denne e-postadressen har allerede en konto."),
    ],
)
async def test_a_bad_or_taken_email_is_named_beside_the_field(
    admin: Admin,
    owner: int,
    staff: int,
    other_club: int,
    db: Database,
    email: str,
    says: str,
) -> None:
    await create_account(db, other_club, OTHER_OWNER)
    await admin.signed_in(OWNER)
    response = await admin.post("/admin/account/staff", {"email": email})
    assert response.status == 422
    page = await response.text()
    assert field_error(page, "staff-email") == says
    assert "Kopier passordet nå." not in page
    assert sorted(await emails(db)) == sorted([OWNER, STAFF, OTHER_OWNER])


# --- removing ------------------------------------------------------------------------------


async def test_a_removed_staff_member_is_signed_out_at_their_next_request(
    admin: Admin, owner: int, staff: int, db: Database, aiohttp_client: Any, settings: Settings
) -> None:
    shop = await (await another_browser(aiohttp_client, settings)).signed_in(STAFF)
    token = await shop.csrf()
    await admin.signed_in(OWNER)
    confirm = await admin.client.get(f"/admin/account/{staff}/remove")
    assert confirm.status == 200
    text = await confirm.text()
    assert f"Fjerne kontoen {STAFF}?" in text
    assert f'action="/admin/account/{staff}/remove"' in text
    assert await emails(db) == [OWNER, STAFF]  # the confirmation changes nothing
    response = await admin.post(f"/admin/account/{staff}/remove")
    assert response.status == 303
    assert response.headers["Location"] == "/admin/account?saved=removed#accounts"
    assert await emails(db) == [OWNER]
    assert (
        "Kontoen er fjernet" in await (await admin.client.get(response.headers["Location"])).text()
    )
    out = await shop.client.get("/admin/members", allow_redirects=False)
    assert out.status == 303
    action = await shop.client.post(
        "/admin/account/password",
        data={"csrf_token": token, **change(new=NEW)},
        allow_redirects=False,
    )
    assert action.status == 401
    assert (await shop.sign_in(STAFF)).status == 401


async def test_the_last_owner_is_not_removable(admin: Admin, owner: int, db: Database) -> None:
    await admin.signed_in(OWNER)
    confirm = await (await admin.client.get(f"/admin/account/{owner}/remove")).text()
    assert "er klubbens eneste eier og kan ikke fjernes" in confirm
    assert f'action="/admin/account/{owner}/remove"' not in confirm
    response = await admin.post(f"/admin/account/{owner}/remove", headers=HTML)
    assert response.status == 409
    assert "er klubbens eneste eier og kan ikke fjernes" in await response.text()
    assert await emails(db) == [OWNER]
    assert (await admin.client.get("/admin/", allow_redirects=False)).status == 200


async def test_an_owner_removes_another_owner_then_is_the_last(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    second = await create_account(db, club, "second@torshov.test")
    await admin.signed_in(OWNER)
    assert (await admin.post(f"/admin/account/{second}/remove")).status == 303
    assert (await admin.post(f"/admin/account/{owner}/remove")).status == 409
    assert await emails(db) == [OWNER]


async def test_an_owner_who_removes_themselves_is_signed_out(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    await create_account(db, club, "second@torshov.test")
    await admin.signed_in(OWNER)
    confirm = await (await admin.client.get(f"/admin/account/{owner}/remove")).text()
    assert "Dette er din egen konto" in confirm
    assert (await admin.post(f"/admin/account/{owner}/remove")).status == 303
    assert (await admin.client.get("/admin/account", allow_redirects=False)).status == 303
    assert await emails(db) == ["second@torshov.test"]


# --- roles, clubs and CSRF -------------------------------------------------------------------


async def test_staff_get_403_on_owner_actions(
    admin: Admin, owner: int, staff: int, db: Database
) -> None:
    await admin.signed_in(STAFF)
    responses = [
        await admin.post("/admin/account/staff", {"email": "new@torshov.test"}, headers=HTML),
        await admin.client.get(f"/admin/account/{owner}/remove", headers=HTML),
        await admin.post(f"/admin/account/{owner}/remove", headers=HTML),
        await admin.post(f"/admin/account/{staff}/remove", headers=HTML),
    ]
    for response in responses:
        assert response.status == 403
        assert "Kontoen din har ikke tilgang til dette." in await response.text()
    assert await emails(db) == [OWNER, STAFF]


async def test_another_clubs_account_is_404_like_no_account_at_all(
    admin: Admin, owner: int, db: Database, other_club: int
) -> None:
    theirs = await create_account(db, other_club, OTHER_OWNER, role=admins.STAFF)
    await admin.signed_in(OWNER)
    for account_id in (theirs, 999_999, 2**63, 10**30):
        page = await admin.client.get(f"/admin/account/{account_id}/remove", headers=HTML)
        assert page.status == 404, account_id
        body = await page.text()
        assert "Finnes ikke." in body
        assert OTHER_OWNER not in body
        action = await admin.post(f"/admin/account/{account_id}/remove")
        assert action.status == 404, account_id
    assert OTHER_OWNER in await emails(db)


@pytest.mark.parametrize("token", [None, "forged-token"])
async def test_every_post_without_the_csrf_token_is_403_and_changes_nothing(
    admin: Admin, owner: int, staff: int, db: Database, token: str | None
) -> None:
    await admin.signed_in(OWNER)
    before = await password_hash(db, OWNER)
    extra = {} if token is None else {"csrf_token": token}
    for path, form in (
        ("/admin/account/password", change()),
        ("/admin/account/staff", {"email": "new@torshov.test"}),
        (f"/admin/account/{staff}/remove", {}),
    ):
        response = await admin.client.post(
            path, data={**form, **extra}, headers=HTML, allow_redirects=False
        )
        assert response.status == 403, path
    assert await password_hash(db, OWNER) == before
    assert await emails(db) == [OWNER, STAFF]
    assert (await admin.client.get("/admin/", allow_redirects=False)).status == 200


async def test_passwords_are_in_no_log_and_no_page(
    admin: Admin, owner: int, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await admin.signed_in(OWNER)
    bodies = []
    for form in (change(current="wrong one here"), change(again="other new one")):
        bodies.append(await (await admin.post("/admin/account/password", form)).text())
    assert (await admin.post("/admin/account/password", change())).status == 303
    bodies.append(await (await admin.client.get("/admin/account")).text())
    stored = await password_hash(db, OWNER)
    for secret in (PASSWORD, NEW, "wrong one here", "other new one", stored):
        assert secret
        assert secret not in caplog.text
        for body in bodies:
            assert secret not in body
