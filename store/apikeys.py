"""API keys for tills and web shops: one club, a set of scopes, only a hash kept."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.errors import InvalidSetting, NotFound
from store.models import ApiKey

SCOPES = (
    "members:read",
    "members:write",
    "purchases:write",
    "coupons:read",
    "coupons:redeem",
    "points:adjust",
)
PREFIX = "klubb"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a valid key belongs to: what the API checks every request against."""

    key_id: int
    program_id: int
    name: str
    store: str | None
    scopes: frozenset[str]


def _digest(secret: str) -> str:
    # Keys are 192 random bits: a fast hash is enough (a slow one protects guessable secrets).
    return hashlib.sha256(secret.encode()).hexdigest()


def create(
    session: Session,
    program_id: int,
    *,
    name: str,
    now: dt.datetime,
    store: str | None = None,
    scopes: Iterable[str] = SCOPES,
) -> tuple[ApiKey, str]:
    """A new key; the secret is returned once and only its hash is kept."""
    scopes = sorted(set(scopes))
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise InvalidSetting("scopes", f"unknown scope {unknown[0]}; use {', '.join(SCOPES)}")
    if not name.strip():
        raise InvalidSetting("name", "a key needs a name")
    taken = session.scalar(
        select(ApiKey.id).where(
            ApiKey.program_id == program_id, ApiKey.name == name, ApiKey.revoked_at.is_(None)
        )
    )
    if taken is not None:
        raise InvalidSetting("name", f"the club already has a key named {name}")
    prefix = secrets.token_hex(4)
    secret = f"{PREFIX}_{prefix}_{secrets.token_urlsafe(24)}"
    key = ApiKey(
        program_id=program_id,
        name=name.strip(),
        store=store,
        prefix=prefix,
        secret_hash=_digest(secret),
        scopes=scopes,
        created_at=now,
    )
    session.add(key)
    session.flush()
    return key, secret


def verify(session: Session, secret: str) -> Caller | None:
    """The caller a secret belongs to, or None (unknown, malformed or revoked)."""
    parts = secret.split("_")
    if len(parts) != 3 or parts[0] != PREFIX:
        return None
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
    if key is None or key.revoked_at is not None:
        return None
    if not hmac.compare_digest(key.secret_hash, _digest(secret)):
        return None
    return Caller(key.id, key.program_id, key.name, key.store, frozenset(key.scopes))


def revoke(session: Session, program_id: int, name: str, now: dt.datetime) -> ApiKey:
    key = session.scalar(
        select(ApiKey).where(
            ApiKey.program_id == program_id, ApiKey.name == name, ApiKey.revoked_at.is_(None)
        )
    )
    if key is None:
        raise NotFound("api key", name)
    key.revoked_at = now
    return key


def of_club(session: Session, program_id: int) -> Sequence[ApiKey]:
    return session.scalars(
        select(ApiKey).where(ApiKey.program_id == program_id).order_by(ApiKey.id)
    ).all()
