"""Admin accounts of the web admin: argon2 password hashes, roles, and slowed sign-in failures."""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import functools
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from argon2 import Parameters, PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from store.database import Database
from store.errors import InvalidSetting
from store.models import AdminAccount, AdminSignInFailure

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
WINDOW = dt.timedelta(minutes=15)
FAILURES_PER_EMAIL = 5
FAILURES_PER_ADDRESS = 20

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# The cost of a hash: RFC 9106's second recommendation (argon2id, 64 MiB, 3 passes), about
# 0.3 s on the 2-core development machine. Hashes made with other parameters are redone at
# the next sign-in.
PARAMETERS: Parameters = profiles.RFC_9106_LOW_MEMORY
_hasher = PasswordHasher.from_parameters(PARAMETERS)


def normalize_email(email: str) -> str:
    """The email as it is stored and looked up: trimmed, lower case; InvalidSetting if it is
    not an address."""
    email = email.strip().lower()
    if len(email) > MAX_EMAIL or not email.isprintable() or not _EMAIL.fullmatch(email):
        raise InvalidSetting("email", "not an email address")
    return email


def hash_password(password: str) -> str:
    """The argon2 hash of a new password; InvalidSetting if it is too short or too long.

    Slow on purpose (tens of milliseconds): call it outside a unit of work, which may run on
    the SQLite writer everyone shares (and may run twice)."""
    if len(password) < MIN_PASSWORD:
        raise InvalidSetting("password", f"at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidSetting("password", f"at most {MAX_PASSWORD} characters")
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
        raise InvalidSetting("email", f"an admin account with {email} already exists")
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


class Outcome(enum.Enum):
    SIGNED_IN = "signed_in"
    # Unknown email and wrong password are one outcome: the caller can't tell them apart.
    WRONG = "wrong"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class SignIn:
    outcome: Outcome
    account_id: int | None = None


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


def refused(session: Session, email: str, address: str, now: dt.datetime) -> bool:
    """Whether the rule refuses an attempt for this email or from this address now."""
    since = now - WINDOW
    by_email = session.scalar(
        select(func.count())
        .select_from(AdminSignInFailure)
        .where(AdminSignInFailure.email == email, AdminSignInFailure.created_at > since)
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
        refused=refused(session, email, address, now),
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
    session: Session, account_id: int, email: str, new_hash: str | None, now: dt.datetime
) -> None:
    account = session.get(AdminAccount, account_id)
    if account is None:  # deleted between the two units: nothing to sign in to
        return
    account.last_sign_in_at = now
    if new_hash is not None:
        account.password_hash = new_hash
    # The email's slate is wiped; the address's is not (it may be guessing other emails).
    session.execute(delete(AdminSignInFailure).where(AdminSignInFailure.email == email))


def _matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def verify(
    db: Database, email: str, password: str, *, address: str, now: dt.datetime
) -> SignIn:
    """Check a sign-in. The password check (argon2, constant time) runs in a thread between two
    units of work, never on the database's writer; an unknown email is checked against a decoy
    hash so it takes as long as a wrong password, and both are recorded as failures."""
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
    account_id = attempt.account_id
    # Hashes made with older parameters are brought up to today's on a successful sign-in.
    new_hash = None
    if _hasher.check_needs_rehash(attempt.password_hash):
        new_hash = await asyncio.to_thread(_hasher.hash, password)
    await db.run(lambda session: _record_success(session, account_id, email, new_hash, now))
    return SignIn(Outcome.SIGNED_IN, account_id)
