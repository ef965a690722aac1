"""Fixtures for the admin: accounts of the demo club and of a second club, a signed-in client."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.orm import Session

from bot.settings import Settings
from store.clubs import admins, programs
from store.database import Database
from store.members import members
from tests.conftest import AUTH_TOKEN, create_club, now

PASSWORD = "correct horse battery staple"
OWNER = "owner@torshov.test"
STAFF = "staff@torshov.test"
OTHER_OWNER = "owner@kari.test"
OTHER_NUMBER = "3030"
SECRET_KEY = "a-test-secret-key-of-at-least-32-characters"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """The app on plain http (the test client's), so the session cookie is not Secure-only;
    its data folder (imports) the test's own."""
    return Settings(
        database_url=database_url,
        public_url="http://127.0.0.1:8080",
        twilio_auth_token=AUTH_TOKEN,
        run_scheduler=False,
        secret_key=SECRET_KEY,
        data_dir=tmp_path / "data",
    )


async def create_account(
    db: Database, program_id: int, email: str, role: str = admins.OWNER, password: str = PASSWORD
) -> int:
    password_hash = admins.hash_password(password)

    def work(session: Session) -> int:
        account = admins.create(
            session, program_id, email=email, password_hash=password_hash, role=role, now=now()
        )
        return account.id

    return await db.run(work)


async def create_member(
    db: Database, program_id: int, phone: str, name: str | None, status: str = members.ACTIVE
) -> int:
    def work(session: Session) -> int:
        program = programs.get(session, program_id)
        assert program is not None
        member = members.create(session, program, phone, status=status, now=now())
        member.first_name = name
        if status == members.ACTIVE:
            member.joined_at = now()
        return member.id

    return await db.run(work)


@pytest.fixture
async def other_club(db: Database) -> int:
    return await create_club(db, name="Kafé Kari", numbers=[OTHER_NUMBER], country="SE")


@pytest.fixture
async def owner(db: Database, club: int) -> int:
    return await create_account(db, club, OWNER)


@pytest.fixture
async def staff(db: Database, club: int) -> int:
    return await create_account(db, club, STAFF, role=admins.STAFF)


@dataclass
class Admin:
    """A browser on the admin: its cookies live in the test client's jar."""

    client: TestClient
    # The session's CSRF token, kept while the cookies it was read with are the jar's.
    _token: tuple[str, str] | None = None

    async def csrf(self) -> str:
        """The session's CSRF token, as the sign-in page's form (or, signed in, the members
        page's) carries it."""
        if self._token is not None and self._token[0] == self._cookies():
            return self._token[1]
        response = await self.client.get("/admin/sign-in", allow_redirects=False)
        if response.status == 303:  # signed in already: any page's form has it
            response = await self.client.get("/admin/members")
        found = _CSRF.search(await response.text())
        assert found, "no CSRF token on the page"
        self._token = (self._cookies(), found.group(1))
        return found.group(1)

    def _cookies(self) -> str:
        return ";".join(f"{c.key}={c.value}" for c in self.client.session.cookie_jar)

    async def sign_in(self, email: str, password: str = PASSWORD, **extra: str) -> Any:
        token = await self.csrf()
        return await self.client.post(
            "/admin/sign-in",
            data={"email": email, "password": password, "csrf_token": token, **extra},
            allow_redirects=False,
        )

    async def signed_in(self, email: str) -> Admin:
        response = await self.sign_in(email)
        assert response.status == 303, await response.text()
        return self

    async def post(self, path: str, data: dict[str, str] | None = None, **kwargs: Any) -> Any:
        token = await self.csrf()
        return await self.client.post(
            path, data={"csrf_token": token, **(data or {})}, allow_redirects=False, **kwargs
        )


@pytest.fixture
def admin(client: TestClient) -> Admin:
    return Admin(client)
