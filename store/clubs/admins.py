"""Admin accounts of the web admin: argon2 password hashes, roles, slowed sign-in failures, and
the signed-in sessions kept on the server (ended at once by sign-out, a new password or removal)."""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import functools
import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from argon2 import Parameters, PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from store.database import Database
from store.errors import InvalidSetting, NotFound
from store.models import AdminAccount, AdminSession, AdminSignInFailure, Program

OWNER = "owner"
STAFF = "staff"
ROLES = (OWNER, STAFF)
MIN_PASSWORD = 10
# argon2 takes any length, but a megabyte-long "password" is only a way to burn our CPU.
MAX_PASSWORD = 1024
MAX_EMAIL = 254  # AdminAccount.email, RFC 5321's path limit
MAX_ADDRESS = 64  # AdminSignInFailure.address: an IPv6 address with a zone fits

# The rule for slowing sign-in failures: within any WINDOW, an email is refused after
# FAILURES_PER_EMAIL failures and an address after FAILURES_PER_ADDRESS (higher: a shop's
# staff share one address). A refused attempt never checks the password, so a correct guess
# made while refused gets nothing, and the refusal lifts as old failures leave the window.
# From the address the account last signed in from, only that address's failures for the
# email count: someone guessing from elsewhere can't lock the owner out of their own shop.
WINDOW = dt.timedelta(minutes=15)
FAILURES_PER_EMAIL = 5
FAILURES_PER_ADDRESS = 20

# A signed-in session ends after IDLE without a request, and LIFETIME after sign-in whatever
# happens (a working day). Its last request is written at most every SEEN_EVERY, so an idle
# session may live up to that much longer than IDLE; most requests only read.
IDLE = dt.timedelta(hours=2)
LIFETIME = dt.timedelta(hours=12)
SEEN_EVERY = dt.timedelta(minutes=1)
MAX_USER_AGENT = 200  # AdminSession.user_agent

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# The cost of a hash: RFC 9106's second recommendation (argon2id, 64 MiB, 3 passes), about
# 0.3 s on the 2-core development machine. Hashes made with other parameters are redone at
# the next sign-in.
PARAMETERS: Parameters = profiles.RFC_9106_LOW_MEMORY
_hasher = PasswordHasher.from_parameters(PARAMETERS)


class EmailTaken(InvalidSetting):
    """The email already has an account (in this club or another: an email has one account)."""

    def __init__(self, email: str) -> None:
        super().__init__("email", f"an admin account with {email} already exists")
        self.email = email


class LastOwner(InvalidSetting):
    """Removing this account would leave its club without an owner, and nobody could manage
    the club's accounts, settings or broadcasts from the web admin."""

    def __init__(self, email: str) -> None:
        super().__init__("account", f"{email} is the club's last owner; make another owner first")
        self.email = email


def normalize_email(email: str) -> str:
    """The email as it is stored and looked up: trimmed, lower case; InvalidSetting if it is
    not an address."""
    email = email.strip().lower()
    if len(email) > MAX_EMAIL or not email.isprintable() or not _EMAIL.fullmatch(email):
        raise InvalidSetting("email", "not an email address")
    return email


def check_password(password: str) -> None:
    """InvalidSetting("password") if a new password is too short or too long."""
    if len(password) < MIN_PASSWORD:
        raise InvalidSetting("password", f"at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidSetting("password", f"at most {MAX_PASSWORD} characters")


def hash_password(password: str) -> str:
    """The argon2 hash of a new password; InvalidSetting if it is too short or too long.

    Slow on purpose (tens of milliseconds): call it outside a unit of work, which may run on
    the SQLite writer everyone shares (and may run twice)."""
    check_password(password)
    return _hasher.hash(password)


def new_password() -> str:
    """A random password for an account made for someone (the demo owner): 20 characters."""
    return secrets.token_urlsafe(15)


def create(
    session: Session,
    program_id: int,
    *,
    email: str,
    password_hash: str,
    role: str,
    now: dt.datetime,
) -> AdminAccount:
    """A new account of the club; InvalidSetting for a bad email or role, or a taken email."""
    email = normalize_email(email)
    if role not in ROLES:
        raise InvalidSetting("role", f"one of {', '.join(ROLES)}")
    if by_email(session, email) is not None:
        raise EmailTaken(email)
    account = AdminAccount(
        program_id=program_id,
        email=email,
        password_hash=password_hash,
        role=role,
        created_at=now,
    )
    session.add(account)
    session.flush()
    return account


def get(session: Session, account_id: int) -> AdminAccount | None:
    return session.get(AdminAccount, account_id)


def by_email(session: Session, email: str) -> AdminAccount | None:
    return session.scalar(select(AdminAccount).where(AdminAccount.email == email))


def of_club(session: Session, program_id: int) -> Sequence[AdminAccount]:
    return session.scalars(
        select(AdminAccount).where(AdminAccount.program_id == program_id).order_by(AdminAccount.id)
    ).all()


def in_club(session: Session, program_id: int, account_id: int) -> AdminAccount | None:
    """The club's account with this id; None for another club's, as for one that isn't."""
    account = session.get(AdminAccount, account_id)
    return account if account is not None and account.program_id == program_id else None


def set_password(
    session: Session, account: int | str, password_hash: str, *, keep: str | None = None
) -> AdminAccount:
    """Give an account (by id or email) a new password, hashed by hash_password; NotFound if
    there is no such account. Its signed-in sessions end at once, but for `keep` (the token of
    the session that changed it), and the failed sign-ins counted against its email are
    forgotten: the refusal guarded a password that is gone."""
    if isinstance(account, str):
        email = normalize_email(account)
        found = by_email(session, email)
    else:
        email, found = str(account), session.get(AdminAccount, account)
    if found is None:
        raise NotFound("admin account", email)
    found.password_hash = password_hash
    end_sessions(session, found.id, keep=keep)
    session.execute(delete(AdminSignInFailure).where(AdminSignInFailure.email == found.email))
    return found


def is_last_owner(session: Session, account: AdminAccount, *, lock: bool = False) -> bool:
    """Whether the account is its club's only owner, which `remove` refuses. `lock`: the
    club's owners are locked until the end of the unit of work (PostgreSQL; SQLite has one
    writer), so two owners removing each other at once can't leave the club with none."""
    if account.role != OWNER:
        return False
    owners = select(AdminAccount.id).where(
        AdminAccount.program_id == account.program_id, AdminAccount.role == OWNER
    )
    if lock:
        owners = owners.with_for_update()
    return len(session.scalars(owners).all()) <= 1


def remove(session: Session, program_id: int, account_id: int) -> AdminAccount:
    """Remove one of the club's accounts; its sessions end at once. NotFound for an id that is
    not the club's; LastOwner for the club's only owner."""
    account = in_club(session, program_id, account_id)
    if account is None:
        raise NotFound("admin account", str(account_id))
    if is_last_owner(session, account, lock=True):
        raise LastOwner(account.email)
    # The foreign key cascades too; said here so it holds whatever the database enforces.
    end_sessions(session, account.id)
    session.delete(account)
    session.flush()
    return account


# --- signed-in sessions ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Signed:
    """A live session's account and club, as the admin's guard reads them on every request."""

    account_id: int
    email: str
    role: str
    program_id: int
    club: str
    country: str
    timezone: str
    last_seen_at: dt.datetime


def session_id(token: str) -> str:
    """The stored id of a session: the SHA-256 of the token its cookie holds, so a copy of the
    table signs nobody in."""
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(
    session: Session,
    account_id: int,
    *,
    now: dt.datetime,
    address: str | None = None,
    user_agent: str | None = None,
) -> str:
    """A new signed-in session of the account; returns its token (for the cookie, never
    stored). Sessions that have ended by time are pruned here, by their indexed expiry: a
    sign-in is rare enough to carry it."""
    session.execute(delete(AdminSession).where(AdminSession.expires_at <= now))
    token = secrets.token_urlsafe(32)
    session.add(
        AdminSession(
            id=session_id(token),
            account_id=account_id,
            created_at=now,
            last_seen_at=now,
            expires_at=_expiry(now, now),
            address=(address or None) and address[:MAX_ADDRESS],
            user_agent=_printable(user_agent or "")[:MAX_USER_AGENT] or None,
        )
    )
    session.flush()
    return token


def _expiry(created_at: dt.datetime, last_seen_at: dt.datetime) -> dt.datetime:
    # One column for both limits, so the lookup and the pruning each need one indexed test.
    return min(created_at + LIFETIME, last_seen_at + IDLE)


def _printable(text: str) -> str:
    # A header may carry anything; PostgreSQL keeps no NUL and no lone surrogate.
    return "".join(c for c in text if c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF)


def signed_in(session: Session, token: str, now: dt.datetime) -> Signed | None:
    """The account and club of a live session, in one lookup by its primary key; None for a
    token that never was one, or whose session ended (signed out, expired, password changed,
    account removed)."""
    row = session.execute(
        select(
            AdminAccount.id,
            AdminAccount.email,
            AdminAccount.role,
            Program.id,
            Program.name,
            Program.country,
            Program.timezone,
            AdminSession.last_seen_at,
        )
        .select_from(AdminSession)
        .join(AdminAccount, AdminAccount.id == AdminSession.account_id)
        .join(Program, Program.id == AdminAccount.program_id)
        .where(AdminSession.id == session_id(token), AdminSession.expires_at > now)
    ).one_or_none()
    return None if row is None else Signed(*row)


def seen(session: Session, token: str, now: dt.datetime) -> None:
    """A request of the session now: its idle time starts again (never past its lifetime)."""
    found = session.get(AdminSession, session_id(token))
    if found is None or found.expires_at <= now:
        return
    found.last_seen_at = now
    found.expires_at = _expiry(found.created_at, now)


def end_session(session: Session, token: str) -> None:
    """Sign-out: the session ends now, whoever holds a copy of its cookie."""
    session.execute(delete(AdminSession).where(AdminSession.id == session_id(token)))


def end_sessions(session: Session, account_id: int, *, keep: str | None = None) -> int:
    """End every session of the account ("sign out everywhere"), but `keep`'s (a token) if
    given; how many ended."""
    query = delete(AdminSession).where(AdminSession.account_id == account_id)
    if keep is not None:
        query = query.where(AdminSession.id != session_id(keep))
    return session.execute(query).rowcount or 0


def session_count(session: Session, account_id: int, now: dt.datetime) -> int:
    """The account's live sessions (this browser's included)."""
    return (
        session.scalar(
            select(func.count())
            .select_from(AdminSession)
            .where(AdminSession.account_id == account_id, AdminSession.expires_at > now)
        )
        or 0
    )


class Outcome(enum.Enum):
    SIGNED_IN = "signed_in"
    # change_password: the current password was right and the new one is kept.
    CHANGED = "changed"
    # Unknown email and wrong password are one outcome: the caller can't tell them apart.
    WRONG = "wrong"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class SignIn:
    outcome: Outcome
    account_id: int | None = None
    # SIGNED_IN: the new session's token, for its cookie (stored only as its SHA-256).
    token: str | None = None


@dataclass(frozen=True, slots=True)
class _Attempt:
    email: str
    address: str
    account_id: int | None
    password_hash: str
    refused: bool


@functools.cache
def _decoy_hash() -> str:
    # Checked for an unknown email, so it costs what a real account's check costs.
    return _hasher.hash(secrets.token_urlsafe(16))


def refused(
    session: Session, email: str, address: str, now: dt.datetime, *, trusted: str | None = None
) -> bool:
    """Whether the rule refuses an attempt for this email or from this address now. `trusted`:
    the address the account last signed in from, where only its own failures count."""
    since = now - WINDOW
    mine = [AdminSignInFailure.address == address] if address == trusted else []
    by_email = session.scalar(
        select(func.count())
        .select_from(AdminSignInFailure)
        .where(AdminSignInFailure.email == email, AdminSignInFailure.created_at > since, *mine)
    )
    if (by_email or 0) >= FAILURES_PER_EMAIL:
        return True
    by_address = session.scalar(
        select(func.count())
        .select_from(AdminSignInFailure)
        .where(AdminSignInFailure.address == address, AdminSignInFailure.created_at > since)
    )
    return (by_address or 0) >= FAILURES_PER_ADDRESS


def _begin(
    session: Session, email: str, address: str, now: dt.datetime, *, valid: bool
) -> _Attempt:
    account = by_email(session, email) if valid else None
    return _Attempt(
        email=email,
        address=address,
        account_id=account.id if account else None,
        password_hash=account.password_hash if account else _decoy_hash(),
        refused=refused(
            session,
            email,
            address,
            now,
            trusted=account.last_sign_in_address if account else None,
        ),
    )


def _record_failure(session: Session, attempt: _Attempt, now: dt.datetime) -> None:
    session.add(AdminSignInFailure(email=attempt.email, address=attempt.address, created_at=now))
    # Failures older than the window count for nothing: forget this email's and address's.
    session.execute(
        delete(AdminSignInFailure).where(
            (AdminSignInFailure.email == attempt.email)
            | (AdminSignInFailure.address == attempt.address),
            AdminSignInFailure.created_at <= now - WINDOW,
        )
    )


def _record_success(
    session: Session,
    attempt: _Attempt,
    new_hash: str | None,
    now: dt.datetime,
    user_agent: str | None,
) -> str | None:
    """The new session's token once signed in; None if the account was removed, or its password
    changed, between the check and now: the password checked is not the account's any more."""
    account = session.get(AdminAccount, attempt.account_id)
    if account is None or account.password_hash != attempt.password_hash:
        return None
    account.last_sign_in_at = now
    account.last_sign_in_address = attempt.address
    if new_hash is not None:
        account.password_hash = new_hash
    # The email's failures from this address are wiped (the owner's own typos), and those that
    # left the window; not others' from elsewhere (a success here must not give someone
    # guessing there a fresh allowance), nor the address's for other emails.
    session.execute(
        delete(AdminSignInFailure).where(
            AdminSignInFailure.email == attempt.email,
            (AdminSignInFailure.address == attempt.address)
            | (AdminSignInFailure.created_at <= now - WINDOW),
        )
    )
    return start_session(
        session, account.id, now=now, address=attempt.address, user_agent=user_agent
    )


def _matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def verify(
    db: Database,
    email: str,
    password: str,
    *,
    address: str,
    now: dt.datetime,
    user_agent: str | None = None,
) -> SignIn:
    """Check a sign-in, and start a session (start_session) if it is right. The password check
    (argon2, constant time) runs in a thread between two units of work, never on the database's
    writer; an unknown email is checked against a decoy hash so it takes as long as a wrong
    password, and both are recorded as failures."""
    address = (address or "unknown")[:MAX_ADDRESS]
    try:
        email, valid = normalize_email(email), True
    except InvalidSetting:
        # Not an address at all: no account has it, whatever it looks like once cleaned; still
        # a failure, counted with the printable rest (PostgreSQL refuses a NUL in text).
        email, valid = "".join(c for c in email.lower() if c.isprintable())[:MAX_EMAIL], False
    attempt = await db.run(lambda session: _begin(session, email, address, now, valid=valid))
    if attempt.refused:
        return SignIn(Outcome.REFUSED)
    ok = len(password) <= MAX_PASSWORD and await asyncio.to_thread(
        _matches, attempt.password_hash, password
    )
    if not ok or attempt.account_id is None:
        await db.run(lambda session: _record_failure(session, attempt, now))
        return SignIn(Outcome.WRONG)
    # Hashes made with older parameters are brought up to today's on a successful sign-in.
    new_hash = None
    if _hasher.check_needs_rehash(attempt.password_hash):
        new_hash = await asyncio.to_thread(_hasher.hash, password)
    signed = await db.run(
        lambda session: _record_success(session, attempt, new_hash, now, user_agent)
    )
    if signed is None:
        return SignIn(Outcome.WRONG)
    return SignIn(Outcome.SIGNED_IN, attempt.account_id, signed)


async def change_password(
    db: Database,
    account_id: int,
    current: str,
    new: str,
    *,
    address: str,
    now: dt.datetime,
    keep: str | None = None,
) -> SignIn:
    """A signed-in person's own new password, given their current one, which is checked like a
    sign-in: refused by the same rule (REFUSED, nothing checked), and a wrong one is a failure
    counted against the account's email and the address (WRONG). CHANGED: the account's
    sessions have ended but `keep`'s (the token of the session that asked).
    InvalidSetting("password") for a new password that breaks the rules, before anything is
    checked or counted; NotFound if the account is gone."""
    check_password(new)
    address = (address or "unknown")[:MAX_ADDRESS]

    def begin(session: Session) -> _Attempt:
        account = session.get(AdminAccount, account_id)
        if account is None:
            raise NotFound("admin account", str(account_id))
        return _begin(session, account.email, address, now, valid=True)

    attempt = await db.run(begin)
    if attempt.refused:
        return SignIn(Outcome.REFUSED)
    ok = len(current) <= MAX_PASSWORD and await asyncio.to_thread(
        _matches, attempt.password_hash, current
    )
    if not ok:
        await db.run(lambda session: _record_failure(session, attempt, now))
        return SignIn(Outcome.WRONG)
    new_hash = await asyncio.to_thread(_hasher.hash, new)

    def replace(session: Session) -> bool:
        account = session.get(AdminAccount, account_id)
        # Changed elsewhere since the check: the password given is not the current one now.
        if account is None or account.password_hash != attempt.password_hash:
            return False
        set_password(session, account_id, new_hash, keep=keep)
        return True

    if not await db.run(replace):
        return SignIn(Outcome.WRONG)
    return SignIn(Outcome.CHANGED, account_id)
