"""The store's admin accounts beyond signing in: a new password (set by the operator or changed
by its owner after the current one is checked), an account removed (never the club's last
owner), and the server-side sessions that a new password ends."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.clubs import admins
from store.database import Database
from store.errors import InvalidSetting, NotFound
from store.models import AdminAccount, AdminSignInFailure
from tests.conftest import create_club

pytestmark = pytest.mark.usefixtures("cheap_argon2")

NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
PASSWORD = "the first password here"
NEW = "a brand new password"


async def make(db: Database, club: int, email: str, role: str = admins.OWNER) -> int:
    password_hash = admins.hash_password(PASSWORD)

    def work(session: Session) -> int:
        account = admins.create(
            session, club, email=email, password_hash=password_hash, role=role, now=NOW
        )
        return account.id

    return await db.run(work)


async def stored_hash(db: Database, account_id: int) -> str | None:
    return await db.run(
        lambda s: s.scalar(select(AdminAccount.password_hash).where(AdminAccount.id == account_id))
    )


async def failures(db: Database) -> int:
    return await db.run(
        lambda s: s.scalar(select(func.count()).select_from(AdminSignInFailure)) or 0
    )


async def signs_in(db: Database, email: str, password: str) -> bool:
    result = await admins.verify(db, email, password, address="10.0.0.1", now=NOW)
    return result.outcome is admins.Outcome.SIGNED_IN


class TestSetPassword:
    async def test_by_email_in_any_case_the_new_password_signs_in_and_the_old_does_not(
        self, db: Database
    ) -> None:
        club = await create_club(db)
        await make(db, club, "kari@x.test")
        new_hash = admins.hash_password(NEW)
        await db.run(lambda s: admins.set_password(s, " KARI@x.test", new_hash))
        assert await signs_in(db, "kari@x.test", NEW)
        assert not await signs_in(db, "kari@x.test", PASSWORD)

    async def test_by_id_ends_every_session_of_the_account(self, db: Database) -> None:
        club = await create_club(db)
        account = await make(db, club, "kari@x.test")
        other = await make(db, club, "ola@x.test")
        tokens = [await db.run(lambda s: admins.start_session(s, account, now=NOW)) for _ in "ab"]
        kept = await db.run(lambda s: admins.start_session(s, other, now=NOW))
        await db.run(lambda s: admins.set_password(s, account, admins.hash_password(NEW)))
        for token in tokens:
            assert await db.run(lambda s, t=token: admins.signed_in(s, t, NOW)) is None
        assert await db.run(lambda s: admins.signed_in(s, kept, NOW)) is not None

    async def test_the_emails_failed_sign_ins_are_forgotten(self, db: Database) -> None:
        club = await create_club(db)
        await make(db, club, "kari@x.test")
        for _ in range(admins.FAILURES_PER_EMAIL):
            await admins.verify(db, "kari@x.test", "guess guess", address="10.0.0.9", now=NOW)
        assert not await signs_in(db, "kari@x.test", PASSWORD)  # refused
        await db.run(lambda s: admins.set_password(s, "kari@x.test", admins.hash_password(NEW)))
        assert await signs_in(db, "kari@x.test", NEW)

    @pytest.mark.parametrize("account", ["nobody@x.test", 999_999])
    async def test_no_such_account_is_not_found(self, db: Database, account: Any) -> None:
        await create_club(db)
        with pytest.raises(NotFound):
            await db.run(lambda s: admins.set_password(s, account, "$argon2id$whatever"))

    @pytest.mark.parametrize(("password", "reason"), [("short", "at least"), ("x" * 1025, "most")])
    def test_a_new_password_has_the_rules_of_hash_password(
        self, password: str, reason: str
    ) -> None:
        with pytest.raises(InvalidSetting) as refused:
            admins.check_password(password)
        assert refused.value.field == "password"
        assert reason in refused.value.reason


class TestChangePassword:
    async def test_the_right_current_password_keeps_the_new_one(self, db: Database) -> None:
        club = await create_club(db)
        account = await make(db, club, "kari@x.test")
        here = await db.run(lambda s: admins.start_session(s, account, now=NOW))
        there = await db.run(lambda s: admins.start_session(s, account, now=NOW))
        result = await admins.change_password(
            db, account, PASSWORD, NEW, address="10.0.0.1", now=NOW, keep=here
        )
        assert result.outcome is admins.Outcome.CHANGED
        assert await signs_in(db, "kari@x.test", NEW)
        # The browser that changed it stays signed in; every other one is signed out.
        assert await db.run(lambda s: admins.signed_in(s, here, NOW)) is not None
        assert await db.run(lambda s: admins.signed_in(s, there, NOW)) is None

    async def test_a_wrong_current_password_changes_nothing_and_counts_as_a_failure(
        self, db: Database
    ) -> None:
        club = await create_club(db)
        account = await make(db, club, "kari@x.test")
        before = await stored_hash(db, account)
        result = await admins.change_password(
            db, account, "not my password", NEW, address="10.0.0.1", now=NOW
        )
        assert result.outcome is admins.Outcome.WRONG
        assert result.token is None
        assert await stored_hash(db, account) == before
        assert await failures(db) == 1

    async def test_refused_like_a_sign_in_after_too_many_failures(self, db: Database) -> None:
        club = await create_club(db)
        account = await make(db, club, "kari@x.test")
        for _ in range(admins.FAILURES_PER_EMAIL):
            await admins.change_password(db, account, "wrong", NEW, address="10.0.0.1", now=NOW)
        result = await admins.change_password(
            db, account, PASSWORD, NEW, address="10.0.0.2", now=NOW
        )
        assert result.outcome is admins.Outcome.REFUSED
        assert not await signs_in(db, "kari@x.test", PASSWORD)  # the sign-in is refused too

    async def test_a_bad_new_password_is_refused_before_anything_is_checked(
        self, db: Database
    ) -> None:
        club = await create_club(db)
        account = await make(db, club, "kari@x.test")
        with pytest.raises(InvalidSetting):
            await admins.change_password(db, account, "wrong", "short", address="x", now=NOW)
        assert await failures(db) == 0


class TestRemove:
    async def test_a_staff_account_is_removed(self, db: Database) -> None:
        club = await create_club(db)
        await make(db, club, "owner@x.test")
        staff = await make(db, club, "staff@x.test", admins.STAFF)
        removed = await db.run(lambda s: admins.remove(s, club, staff).email)
        assert removed == "staff@x.test"
        assert await db.run(lambda s: admins.get(s, staff)) is None

    async def test_the_last_owner_is_refused_with_a_named_error(self, db: Database) -> None:
        club = await create_club(db)
        owner = await make(db, club, "owner@x.test")
        await make(db, club, "staff@x.test", admins.STAFF)
        with pytest.raises(admins.LastOwner) as refused:
            await db.run(lambda s: admins.remove(s, club, owner))
        assert isinstance(refused.value, InvalidSetting)
        assert refused.value.field == "account"
        assert "last owner" in refused.value.reason
        assert await db.run(lambda s: admins.get(s, owner)) is not None

    async def test_one_of_two_owners_is_removed_and_then_the_other_is_the_last(
        self, db: Database
    ) -> None:
        club = await create_club(db)
        first = await make(db, club, "first@x.test")
        second = await make(db, club, "second@x.test")
        await db.run(lambda s: admins.remove(s, club, first))
        with pytest.raises(admins.LastOwner):
            await db.run(lambda s: admins.remove(s, club, second))

    async def test_another_clubs_account_is_not_found(self, db: Database) -> None:
        club = await create_club(db)
        other = await create_club(db, name="Kafé Kari", numbers=["3030"], country="SE")
        await make(db, club, "owner@x.test")
        theirs = await make(db, other, "staff@kari.test", admins.STAFF)
        with pytest.raises(NotFound):
            await db.run(lambda s: admins.remove(s, club, theirs))
        assert await db.run(lambda s: admins.get(s, theirs)) is not None
        assert await db.run(lambda s: admins.in_club(s, club, theirs)) is None

    async def test_another_clubs_owner_does_not_count(self, db: Database) -> None:
        club = await create_club(db)
        other = await create_club(db, name="Kafé Kari", numbers=["3030"], country="SE")
        ours = await make(db, club, "owner@x.test")
        await make(db, other, "owner@kari.test")
        with pytest.raises(admins.LastOwner):
            await db.run(lambda s: admins.remove(s, club, ours))


async def test_an_email_taken_is_a_named_invalid_setting(db: Database) -> None:
    club = await create_club(db)
    await make(db, club, "kari@x.test")
    with pytest.raises(admins.EmailTaken) as taken:
        await make(db, club, "KARI@x.test", admins.STAFF)
    assert taken.value.field == "email"
