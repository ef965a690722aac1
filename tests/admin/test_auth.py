"""The admin's security rules, through the app on SQLite and PostgreSQL: sessions, CSRF, slowed
sign-in failures, roles, one club's data only, and passwords in no log and no page."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bot.app import create_app
from bot.keys import DB
from bot.settings import Settings
from store.clubs import admins
from store.database import Database
from store.models import AdminAccount, AdminSession, AdminSignInFailure
from store.text import REASON
from tests.admin.conftest import (
    OTHER_OWNER,
    OWNER,
    PASSWORD,
    STAFF,
    Admin,
    create_account,
    create_member,
)
from tests.conftest import AUTH_TOKEN, now, raw_request

pytestmark = pytest.mark.usefixtures("cheap_argon2")

PAGES = ["/admin/", "/admin/members/1", "/admin/settings", "/admin/no-such-page"]


async def failures(db: Database) -> int:
    return await db.run(
        lambda s: s.scalar(select(func.count()).select_from(AdminSignInFailure)) or 0
    )


async def last_sign_in(db: Database, email: str) -> dt.datetime | None:
    return await db.run(
        lambda s: s.scalar(select(AdminAccount.last_sign_in_at).where(AdminAccount.email == email))
    )


# --- without a session -------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
async def test_a_page_without_a_session_redirects_to_sign_in(client: TestClient, path: str) -> None:
    response = await client.get(path, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/admin/sign-in")


async def test_the_redirect_brings_the_admin_back_to_the_page_asked_for(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    member = await create_member(db, club, "+4791234567", "Kari")
    response = await admin.client.get(f"/admin/members/{member}", allow_redirects=False)
    assert response.headers["Location"] == f"/admin/sign-in?next=/admin/members/{member}"
    signed_in = await admin.sign_in(OWNER, next=f"/admin/members/{member}")
    assert signed_in.headers["Location"] == f"/admin/members/{member}"


@pytest.mark.parametrize(
    "target", ["//evil.example/", "https://evil.example/", "/admin//evil.example", "/elsewhere"]
)
async def test_sign_in_never_sends_the_admin_to_another_site(
    admin: Admin, owner: int, target: str
) -> None:
    response = await admin.sign_in(OWNER, next=target)
    assert response.status == 303
    assert response.headers["Location"] == "/admin/"


async def test_admin_without_a_slash_goes_to_the_dashboard(client: TestClient) -> None:
    response = await client.get("/admin", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "/admin/"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/admin/sign-out"),
        ("POST", "/admin/members/1"),
        ("POST", "/admin/settings"),
        ("GET", "/admin/api/summary"),
        ("DELETE", "/admin/members/1"),
    ],
)
async def test_an_action_without_a_session_is_401_json(
    client: TestClient, method: str, path: str
) -> None:
    response = await client.request(method, path, allow_redirects=False)
    assert response.status == 401
    assert await response.json() == {"error": "sign in first"}


# --- bodies that can't be read ------------------------------------------------------------

UNREADABLE = [
    ("application/x-www-form-urlencoded", b"email=\xff\xfe&password=x"),
    ("application/x-www-form-urlencoded; charset=klingon", b"email=a&password=b"),
    ("application/x-www-form-urlencoded; charset=utf-16", b"email=\x00\xd8"),
    (
        "multipart/form-data; boundary=XX",
        b'--XX\r\nContent-Disposition: form-data; name="email"\r\n\r\n\xff\xfe\r\n--XX--\r\n',
    ),
    (
        "multipart/form-data; boundary=XX",
        b'--XX\r\nContent-Disposition: form-data; name="email"\r\n'
        b"Content-Type: text/plain; charset=klingon\r\n\r\nx\r\n--XX--\r\n",
    ),
]


@pytest.mark.parametrize(("content_type", "body"), UNREADABLE)
@pytest.mark.parametrize("path", ["/admin/sign-in", "/admin/sign-out", "/admin/account/password"])
async def test_a_form_that_cant_be_decoded_is_400_without_a_traceback(
    admin: Admin,
    owner: int,
    caplog: pytest.LogCaptureFixture,
    path: str,
    content_type: str,
    body: bytes,
) -> None:
    """Before sign-in (the sign-in form; other actions are 401 before their body is read) and
    after, as a page and as JSON: a clear 400, no ERROR in the log."""
    caplog.set_level(logging.INFO)
    for signed in (False, True) if path == "/admin/sign-in" else (True,):
        if signed:
            await admin.signed_in(OWNER)
        for accept in ("text/html", "application/json"):
            response = await admin.client.post(
                path,
                data=body,
                headers={"Content-Type": content_type, "Accept": accept},
                allow_redirects=False,
            )
            assert response.status == 400, (signed, accept, await response.text())
            if accept == "text/html":
                assert "Skjemaet kunne ikke leses" in await response.text() or (
                    "The form could not be read" in await response.text()
                )
            else:
                assert (await response.json())["error"].startswith("the form could not be read")
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    # Still signed in: nothing was done.
    assert (await admin.client.get("/admin/", allow_redirects=False)).status == 200


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b'{"field": "store", "op": "in", "value": ["\\ud800"]}', "value[0]"),
        (
            b'{"all": [{"field": "category", "op": "in", "value": ["ski\\udfff"]}]}',
            "all[0].value[0]",
        ),
        (b'{"field": "store", "op": "in", "value": ["a\\u0000b"]}', "value[0]"),
    ],
)
async def test_a_filter_value_that_is_not_text_is_422_naming_its_path(
    admin: Admin, owner: int, caplog: pytest.LogCaptureFixture, body: bytes, path: str
) -> None:
    """A JSON escape of half a character (or a NUL) in a segment's value: refused by the store's
    one rule for text, never a 500."""
    await admin.signed_in(OWNER)
    response = await admin.client.post(
        "/admin/api/segments/count",
        data=body,
        headers={"X-CSRF-Token": await admin.csrf(), "Content-Type": "application/json"},
    )
    assert response.status == 422
    answer = await response.json()
    assert answer["path"] == path
    assert answer["error"].startswith("is not text")
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("value", ["a\x00b", "tab\x0bbed", "bell\x07"])
@pytest.mark.parametrize(
    ("path", "field"),
    [("/admin/account/staff", "email"), ("/admin/segments/new", "name")],
)
async def test_a_form_field_that_is_not_text_is_422_naming_it(
    admin: Admin, owner: int, path: str, field: str, value: str
) -> None:
    """Every admin form is checked by the same rule before its handler: a control character
    (a NUL, which PostgreSQL can't keep) is named, as a page and as JSON."""
    await admin.signed_in(OWNER)
    page = await admin.post(path, {field: value}, headers={"Accept": "text/html"})
    assert page.status == 422
    assert f"«{field}»" in await page.text()
    answer = await admin.post(path, {field: value}, headers={"Accept": "application/json"})
    assert answer.status == 422
    assert (await answer.json())["error"] == f"{field}: {REASON}"


async def test_line_breaks_and_tabs_are_text(admin: Admin, owner: int) -> None:
    await admin.signed_in(OWNER)
    response = await admin.post("/admin/account/staff", {"email": "a\tb\r\nc"})
    assert response.status == 422  # not an email, said beside the field: the form was read
    assert "field-error" in await response.text()


# --- CSRF ------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "forged-token"])
async def test_sign_in_without_the_csrf_token_is_403_and_signs_nobody_in(
    admin: Admin, owner: int, db: Database, token: str | None
) -> None:
    await admin.csrf()  # the session exists, with its token
    form = {"email": OWNER, "password": PASSWORD}
    if token is not None:
        form["csrf_token"] = token
    response = await admin.client.post("/admin/sign-in", data=form, allow_redirects=False)
    assert response.status == 403
    assert await last_sign_in(db, OWNER) is None
    assert await failures(db) == 0
    still_out = await admin.client.get("/admin/", allow_redirects=False)
    assert still_out.status == 303


@pytest.mark.parametrize("token", [None, "forged-token"])
async def test_sign_out_without_the_csrf_token_is_403_and_the_session_stays(
    admin: Admin, owner: int, token: str | None
) -> None:
    await admin.signed_in(OWNER)
    data = {} if token is None else {"csrf_token": token}
    response = await admin.client.post(
        "/admin/sign-out", data=data, headers={"Accept": "text/html"}, allow_redirects=False
    )
    assert response.status == 403
    # The admin's own page (in the club's language), not JSON.
    assert "Skjemaet var utløpt" in await response.text()
    assert (await admin.client.get("/admin/", allow_redirects=False)).status == 200


async def test_a_token_from_another_session_is_refused(
    admin: Admin, client: TestClient, owner: int, aiohttp_client: Any, settings: Settings
) -> None:
    other = Admin(await aiohttp_client(create_app(settings)))
    stolen = await other.csrf()
    await admin.signed_in(OWNER)
    response = await admin.client.post(
        "/admin/sign-out", data={"csrf_token": stolen}, allow_redirects=False
    )
    assert response.status == 403


async def test_the_csrf_header_serves_scripts(admin: Admin, owner: int) -> None:
    await admin.signed_in(OWNER)
    token = await admin.csrf()
    response = await admin.client.post(
        "/admin/sign-out", headers={"X-CSRF-Token": token}, allow_redirects=False
    )
    assert response.status == 303


@pytest.mark.parametrize("token", [b"\xe9", b"\xc3\xa9t\xc3\xa9"])
async def test_a_csrf_header_of_bytes_that_are_not_ascii_is_a_wrong_token(
    client: TestClient, owner: int, token: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """No sign-in needed: a Latin-1 byte or UTF-8 that is not ASCII in X-CSRF-Token is refused
    like a forged token, as the page and as JSON (was a 500 and a traceback)."""
    for accept, refusal in ((b"text/html", "Skjemaet var utløpt"), (b"*/*", "CSRF token")):
        answer = await raw_request(
            client.host,
            client.port,
            "POST",
            b"/admin/sign-in",
            {"X-CSRF-Token": token, "Accept": accept, "Accept-Language": b"nb"},
        )
        assert answer.status == 403
        assert refusal in answer.body.decode()
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_sign_out_ends_the_session(admin: Admin, owner: int) -> None:
    await admin.signed_in(OWNER)
    response = await admin.post("/admin/sign-out")
    assert response.status == 303
    assert response.headers["Location"] == "/admin/sign-in"
    assert (await admin.client.get("/admin/", allow_redirects=False)).status == 303


async def test_a_copied_cookie_is_worth_nothing_after_sign_out(
    admin: Admin, owner: int, aiohttp_client: Any, settings: Settings
) -> None:
    """Sign-out ends the session on the server: someone who copied the cookie (another
    browser, another process with the same key) is signed out too."""
    response = await admin.sign_in(OWNER)
    cookie = {"Cookie": f"klubb_admin={response.cookies['klubb_admin'].value}"}
    thief = await aiohttp_client(create_app(settings))
    assert (await thief.get("/admin/", headers=cookie, allow_redirects=False)).status == 200
    assert (await admin.post("/admin/sign-out")).status == 303
    page = await thief.get("/admin/", headers=cookie, allow_redirects=False)
    assert page.status == 303
    assert page.headers["Location"] == "/admin/sign-in"
    action = await thief.get("/admin/api/summary", headers=cookie)
    assert action.status == 401
    assert await sessions(admin.client.app, owner) == 0


async def sessions(app: Any, account_id: int) -> int:
    db = app[DB]
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


class Clock:
    """The admin's clock (bot.admin.auth.utc_now), moved by the test."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = now()
        monkeypatch.setattr("bot.admin.auth.utc_now", lambda: self.now)

    def __iadd__(self, step: dt.timedelta) -> Clock:
        self.now += step
        return self


async def test_a_session_ends_after_its_idle_time(
    admin: Admin, owner: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch)
    await admin.signed_in(OWNER)
    # Requests keep it alive, past the idle time counted from sign-in...
    for _ in range(3):
        clock += admins.IDLE - dt.timedelta(minutes=5)
        assert (await admin.client.get("/admin/", allow_redirects=False)).status == 200
    # ...until nothing comes for longer than the idle time.
    clock += admins.IDLE + admins.SEEN_EVERY
    assert (await admin.client.get("/admin/", allow_redirects=False)).status == 303


async def test_a_session_ends_after_its_lifetime_however_busy(
    admin: Admin, owner: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch)
    await admin.signed_in(OWNER)
    step = admins.IDLE / 2
    steps = int(admins.LIFETIME / step)
    for _ in range(steps - 1):
        clock += step
        assert (await admin.client.get("/admin/", allow_redirects=False)).status == 200
    clock += step
    assert (await admin.client.get("/admin/", allow_redirects=False)).status == 303


async def test_a_sessions_last_request_is_written_at_most_once_a_minute(
    admin: Admin, owner: int, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch)
    await admin.signed_in(OWNER)
    signed_in_at = clock.now

    async def last_seen() -> dt.datetime:
        return await db.run(lambda s: s.scalar(select(AdminSession.last_seen_at)))

    assert await last_seen() == signed_in_at
    clock += dt.timedelta(seconds=59)
    await admin.client.get("/admin/")
    assert await last_seen() == signed_in_at
    clock += dt.timedelta(seconds=2)
    await admin.client.get("/admin/")
    assert await last_seen() == clock.now


async def test_ended_sessions_are_pruned_at_the_next_sign_in(
    admin: Admin, owner: int, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch)
    for _ in range(3):
        await admin.signed_in(OWNER)
        admin.client.session.cookie_jar.clear()
    assert await sessions(admin.client.app, owner) == 3
    clock += admins.IDLE + dt.timedelta(seconds=1)
    await admin.signed_in(OWNER)
    assert await sessions(admin.client.app, owner) == 1


async def test_the_session_row_keeps_only_the_tokens_hash(
    admin: Admin, owner: int, db: Database
) -> None:
    token = await admin.csrf()
    response = await admin.client.post(
        "/admin/sign-in",
        data={"email": OWNER, "password": PASSWORD, "csrf_token": token},
        headers={"User-Agent": "Till browser " + "x" * 300},
        allow_redirects=False,
    )
    assert response.status == 303
    row = await db.run(lambda s: s.scalars(select(AdminSession)).one())
    assert len(row.id) == 64
    assert row.id not in response.cookies["klubb_admin"].value
    assert row.address == "127.0.0.1"
    assert row.user_agent == ("Till browser " + "x" * 300)[:200]


async def test_signing_in_gives_a_new_csrf_token(admin: Admin, owner: int) -> None:
    before = await admin.csrf()
    await admin.signed_in(OWNER)
    assert await admin.csrf() != before


# --- sign-in failures --------------------------------------------------------------------------


async def test_unknown_email_and_wrong_password_get_the_same_answer(
    admin: Admin, owner: int
) -> None:
    wrong = await admin.sign_in(OWNER, "not the password at all")
    unknown = await admin.sign_in("nobody@torshov.test", PASSWORD)
    assert wrong.status == unknown.status == 401
    wrong_page = (await wrong.text()).replace(OWNER, "EMAIL")
    unknown_page = (await unknown.text()).replace("nobody@torshov.test", "EMAIL")
    assert wrong_page == unknown_page
    assert "Wrong email or password." in wrong_page


async def test_five_failures_refuse_the_account_even_the_right_password(
    admin: Admin, owner: int, db: Database, club: int
) -> None:
    for _ in range(admins.FAILURES_PER_EMAIL):
        assert (await admin.sign_in(OWNER, "guess guess guess")).status == 401
    refused = await admin.sign_in(OWNER)
    assert refused.status == 429
    assert "Too many failed attempts. Try again in 15 minutes." in await refused.text()
    assert await last_sign_in(db, OWNER) is None
    # The address has not used up its own allowance: another account still signs in.
    await create_account(db, club, "other@torshov.test")
    assert (await admin.sign_in("other@torshov.test")).status == 303


async def test_an_unknown_email_is_refused_like_a_real_one(admin: Admin, owner: int) -> None:
    """Refusals count per email whether or not it has an account: they tell nothing."""
    for _ in range(admins.FAILURES_PER_EMAIL):
        await admin.sign_in("nobody@torshov.test", "guess guess guess")
        await admin.sign_in(OWNER, "guess guess guess")
    unknown = await admin.sign_in("nobody@torshov.test", PASSWORD)
    known = await admin.sign_in(OWNER)
    assert unknown.status == known.status == 429
    assert (await unknown.text()).replace("nobody@torshov.test", OWNER) == await known.text()


async def test_many_failures_from_one_address_refuse_it_for_every_email(
    admin: Admin, owner: int, db: Database
) -> None:
    def fail_from_here(session: Session) -> None:
        for n in range(admins.FAILURES_PER_ADDRESS):
            session.add(
                AdminSignInFailure(email=f"guess{n}@x.test", address="127.0.0.1", created_at=now())
            )

    await db.run(fail_from_here)
    assert (await admin.sign_in(OWNER)).status == 429


async def test_the_refusal_lifts_when_the_failures_leave_the_window(
    db: Database, owner: int
) -> None:
    start = now()
    for _ in range(admins.FAILURES_PER_EMAIL):
        result = await admins.verify(db, OWNER, "guess guess guess", address="10.0.0.1", now=start)
        assert result.outcome is admins.Outcome.WRONG
    refused = await admins.verify(db, OWNER, PASSWORD, address="10.0.0.2", now=start)
    assert refused.outcome is admins.Outcome.REFUSED
    later = start + admins.WINDOW + dt.timedelta(seconds=1)
    signed_in = await admins.verify(db, OWNER, PASSWORD, address="10.0.0.2", now=later)
    assert signed_in.outcome is admins.Outcome.SIGNED_IN
    # A success wipes the email's failures.
    assert await failures(db) == 0
    await admins.verify(db, OWNER, "guess guess guess", address="10.0.0.1", now=later)
    assert await failures(db) == 1


async def test_failures_older_than_the_window_are_forgotten(db: Database) -> None:
    start = now()
    for n in range(3):
        await admins.verify(db, f"a{n}@x.test", "guess guess guess", address="10.0.0.1", now=start)
    assert await failures(db) == 3
    later = start + admins.WINDOW
    await admins.verify(db, "b@x.test", "guess guess guess", address="10.0.0.1", now=later)
    assert await failures(db) == 1


@pytest.mark.parametrize("email", ["", "not an email", "x" * 5000 + "@x.test", "ø@ø.ø"])
async def test_a_malformed_email_is_a_wrong_sign_in_never_a_500(
    admin: Admin, owner: int, db: Database, email: str
) -> None:
    response = await admin.sign_in(email)
    assert response.status == 401
    assert "Wrong email or password." in await response.text()
    assert await failures(db) == 1


async def test_an_email_with_a_nul_is_refused_as_not_text(
    admin: Admin, owner: int, db: Database
) -> None:
    """No account's email holds a control character: the form is refused naming the field
    (store.text's rule, as every admin form), and no guess is counted or checked."""
    response = await admin.sign_in("owner\x00@torshov.test")
    assert response.status == 422
    assert (await response.json())["error"] == f"email: {REASON}"
    assert await failures(db) == 0
    assert await last_sign_in(db, OWNER) is None


async def test_an_email_is_found_in_any_case(admin: Admin, owner: int) -> None:
    assert (await admin.sign_in("  Owner@TORSHOV.test ")).status == 303


# --- roles and clubs -------------------------------------------------------------------------


async def test_staff_get_403_on_owner_actions_and_no_link_to_them(admin: Admin, staff: int) -> None:
    await admin.signed_in(STAFF)
    dashboard = await admin.client.get("/admin/")
    assert dashboard.status == 200
    assert 'href="/admin/settings"' not in await dashboard.text()
    settings = await admin.client.get("/admin/settings", headers={"Accept": "text/html"})
    assert settings.status == 403
    assert "Kontoen din har ikke tilgang til dette." in await settings.text()


async def test_owners_reach_owner_actions(admin: Admin, owner: int) -> None:
    await admin.signed_in(OWNER)
    dashboard = await admin.client.get("/admin/")
    assert 'href="/admin/settings"' in await dashboard.text()
    assert (await admin.client.get("/admin/settings")).status == 200


async def test_another_clubs_member_is_404_like_no_member_at_all(
    admin: Admin, owner: int, db: Database, club: int, other_club: int
) -> None:
    ours = await create_member(db, club, "+4791234567", "Kari")
    theirs = await create_member(db, other_club, "+46701234567", "Karin")
    await create_account(db, other_club, OTHER_OWNER)
    await admin.signed_in(OWNER)
    page = await admin.client.get(f"/admin/members/{ours}")
    assert page.status == 200
    text = await page.text()
    assert "+4791234567" in text
    assert "Kari" in text
    assert "Aktiv" in text
    for member_id in (theirs, 999_999, 2**63, 10**30):
        response = await admin.client.get(
            f"/admin/members/{member_id}", headers={"Accept": "text/html"}
        )
        assert response.status == 404, member_id
        body = await response.text()
        assert "Finnes ikke." in body
        assert "Karin" not in body
        assert "+46701234567" not in body


async def test_the_dashboard_counts_only_the_clubs_own_members(
    admin: Admin, owner: int, db: Database, club: int, other_club: int
) -> None:
    await create_member(db, club, "+4791234567", "Kari")
    await create_member(db, club, "+4791234568", None, status="stopped")
    await create_member(db, other_club, "+46701234567", "Karin")
    await admin.signed_in(OWNER)
    page = await (await admin.client.get("/admin/")).text()
    assert "Torshov Sport" in page
    assert '<span class="kpi-value" data-kpi="active">1</span>' in page
    assert '<span class="kpi-value" data-kpi="stopped">1</span>' in page
    assert "Karin" not in page
    summary = await (await admin.client.get("/admin/api/summary")).json()
    assert summary == {
        "club": "Torshov Sport",
        "members": {"active": 1, "erased": 0, "pending": 0, "stopped": 1},
    }


async def test_a_deleted_account_loses_its_session(admin: Admin, owner: int, db: Database) -> None:
    await admin.signed_in(OWNER)
    await db.run(lambda s: s.execute(delete(AdminAccount).where(AdminAccount.id == owner)))
    assert (await admin.client.get("/admin/", allow_redirects=False)).status == 303


# --- secrets stay secret -----------------------------------------------------------------------


async def test_the_password_is_in_no_log_and_no_page(
    admin: Admin, owner: int, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bodies = []
    for password in ("a wrong password here", PASSWORD):
        response = await admin.sign_in(OWNER, password)
        bodies.append(await response.text())
    for path in ("/admin/", "/admin/settings", "/admin/api/summary"):
        bodies.append(await (await admin.client.get(path)).text())
    stored = await db.run(lambda s: s.scalar(select(AdminAccount.password_hash)))
    for secret in (PASSWORD, "a wrong password here", stored):
        assert secret not in caplog.text
        for body in bodies:
            assert secret not in body


async def test_the_session_cookie_is_encrypted_http_only_and_same_site(
    admin: Admin, owner: int
) -> None:
    response = await admin.sign_in(OWNER)
    cookie = response.cookies["klubb_admin"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/admin"
    assert cookie.value.startswith("gAAAAA")  # a Fernet token: encrypted, not readable JSON
    assert OWNER not in cookie.value
    assert "account" not in cookie.value


async def test_the_cookie_is_secure_when_klubb_is_served_over_https(
    aiohttp_client: Any, database_url: str
) -> None:
    settings = Settings(
        database_url=database_url,
        public_url="https://klubb.example.com",
        twilio_auth_token=AUTH_TOKEN,
        run_scheduler=False,
    )
    client = await aiohttp_client(create_app(settings))
    response = await client.get("/admin/sign-in")
    assert response.cookies["klubb_admin"]["secure"]


async def test_pages_are_not_cached_framed_or_sniffed(admin: Admin, owner: int) -> None:
    await admin.signed_in(OWNER)
    response = await admin.client.get("/admin/")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    css = await admin.client.get("/admin/static/admin.css")
    assert css.status == 200
    assert css.content_type == "text/css"


# Every kind of answer the app gives, signed out: (method, path, form or None, status).
ANSWERS = [
    ("GET", "/admin", None, 302),  # a redirect
    ("GET", "/admin/members", None, 303),  # the redirect to sign-in
    ("GET", "/admin/sign-in", None, 200),  # a page
    ("GET", "/admin/static/admin.css", None, 200),  # a static file
    ("GET", "/admin/static/nonexistent.css", None, 404),  # a static file that is not there
    ("GET", "/admin/api/summary", None, 401),  # the admin's JSON
    ("GET", "/admin/no-such-page", None, 303),
    ("POST", "/admin/sign-in", b"email=\xff", 400),  # an unreadable form
    ("GET", "/no-such-path", None, 404),
    ("GET", "/api/v1/openapi.json", None, 200),  # the API
    ("GET", "/api/v1/members/1", None, 401),
    ("POST", "/sms/twilio", b"From=%2B4791234567", 403),  # a webhook, unsigned
    ("GET", "/sms/twilio", None, 405),
    ("GET", "/healthz", None, 200),
]


@pytest.mark.parametrize(("method", "path", "form", "status"), ANSWERS)
async def test_every_answer_carries_the_security_headers(
    client: TestClient, method: str, path: str, form: bytes | None, status: int
) -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if form else {}
    response = await client.request(method, path, data=form, headers=headers, allow_redirects=False)
    assert response.status == status
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    # Served over plain http (a laptop): no HSTS, which would pin the browser to https.
    assert "Strict-Transport-Security" not in response.headers
    if not path.startswith("/admin/static/") or status != 200:
        assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "path", ["/admin/static/nonexistent.css", "/admin/static/", "/admin/static/a/admin.css"]
)
async def test_a_static_file_that_is_not_there_is_the_404_of_any_missing_page(
    client: TestClient, path: str
) -> None:
    """Not an empty application/octet-stream that a browser or proxy may keep: the admin's
    404 page for a browser, the JSON error for anything else, never cached."""
    page = await client.get(path, headers={"Accept": "text/html"})
    assert page.status == 404
    assert page.content_type == "text/html"
    assert "<h1>Not found.</h1>" in await page.text()
    assert page.headers["Cache-Control"] == "no-store"
    other = await client.get(path, headers={"Accept": "text/css,*/*;q=0.1"})
    assert other.status == 404
    assert await other.json() == {"error": "Not Found"}
    assert other.headers["Cache-Control"] == "no-store"
    css = await client.get("/admin/static/admin.css")
    assert (css.status, css.content_type) == (200, "text/css")


@pytest.mark.parametrize(("method", "path", "form", "status"), ANSWERS)
async def test_hsts_when_klubb_is_served_over_https(
    aiohttp_client: Any, settings: Settings, method: str, path: str, form: bytes | None, status: int
) -> None:
    client = await aiohttp_client(
        create_app(settings.with_(public_url="https://klubb.example.com"))
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if form else {}
    response = await client.request(method, path, data=form, headers=headers, allow_redirects=False)
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


async def test_pages_allow_their_own_assets_and_json_allows_nothing(client: TestClient) -> None:
    page = await client.get("/admin/sign-in")
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    api = await client.get("/api/v1/members/1")
    assert api.headers["Content-Security-Policy"].startswith("default-src 'none'")


# --- language ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("sv-SE,sv;q=0.9,en;q=0.8", "Logga in"),
        ("nb-NO", "Logg inn"),
        ("no", "Logg inn"),
        ("de-DE,en;q=0.5,nb;q=0.9", "Logg inn"),
        ("fr", "Sign in"),
        ("", "Sign in"),
        ("sv;q=bad, en", "Sign in"),
    ],
)
async def test_the_sign_in_page_speaks_the_browsers_language(
    client: TestClient, accept: str, expected: str
) -> None:
    response = await client.get("/admin/sign-in", headers={"Accept-Language": accept})
    assert f"<h1>{expected}</h1>" in await response.text()


async def test_signed_in_pages_speak_the_clubs_language(
    admin: Admin, other_club: int, db: Database
) -> None:
    await create_account(db, other_club, OTHER_OWNER)
    await admin.signed_in(OTHER_OWNER)
    response = await admin.client.get("/admin/", headers={"Accept-Language": "en"})
    text = await response.text()
    assert '<html lang="sv">' in text
    assert "Aktiva medlemmar" in text
    assert "Kafé Kari" in text


def test_real_hashes_cost_what_rfc_9106_recommends() -> None:
    """The tests hash cheaply (cheap_argon2); the app hashes at RFC 9106's cost."""
    assert admins.PARAMETERS.type.name == "ID"
    assert admins.PARAMETERS.memory_cost >= 64 * 1024
    assert admins.PARAMETERS.time_cost >= 3


async def test_a_session_outlives_a_restart_with_the_same_key_only(
    aiohttp_client: Any, settings: Settings, owner: int
) -> None:
    first = Admin(await aiohttp_client(create_app(settings)))
    response = await first.sign_in(OWNER)
    cookie = f"klubb_admin={response.cookies['klubb_admin'].value}"
    other_key = "another secret key, also 32 characters or more"
    for key, status in ((settings.secret_key, 200), (other_key, 303)):
        restarted = await aiohttp_client(create_app(settings.with_(secret_key=key)))
        page = await restarted.get("/admin/", headers={"Cookie": cookie}, allow_redirects=False)
        assert page.status == status


def test_without_a_key_the_app_makes_one_and_warns(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    create_app(settings.with_(secret_key=None))
    assert "KLUBB_SECRET_KEY is not set" in caplog.text
    assert "end when it restarts" in caplog.text


async def test_failures_from_elsewhere_dont_lock_the_account_out_where_it_signs_in(
    db: Database, owner: int
) -> None:
    """Someone guessing the owner's password from another address refuses the email
    everywhere but at the address the owner last signed in from; there only its own failures
    count."""
    start = now()
    shop = await admins.verify(db, OWNER, PASSWORD, address="10.0.0.2", now=start)
    assert shop.outcome is admins.Outcome.SIGNED_IN
    for _ in range(admins.FAILURES_PER_EMAIL):
        guess = await admins.verify(db, OWNER, "guess guess guess", address="10.6.6.6", now=start)
        assert guess.outcome is admins.Outcome.WRONG
    for elsewhere in ("10.6.6.6", "10.0.0.3"):
        refused = await admins.verify(db, OWNER, PASSWORD, address=elsewhere, now=start)
        assert refused.outcome is admins.Outcome.REFUSED, elsewhere
    again = await admins.verify(db, OWNER, PASSWORD, address="10.0.0.2", now=start)
    assert again.outcome is admins.Outcome.SIGNED_IN
    # That success gives the guesser no fresh allowance.
    still = await admins.verify(db, OWNER, PASSWORD, address="10.6.6.6", now=start)
    assert still.outcome is admins.Outcome.REFUSED
    # At the shop its own failures still count.
    for _ in range(admins.FAILURES_PER_EMAIL):
        await admins.verify(db, OWNER, "typo typo typo", address="10.0.0.2", now=start)
    locked = await admins.verify(db, OWNER, PASSWORD, address="10.0.0.2", now=start)
    assert locked.outcome is admins.Outcome.REFUSED
