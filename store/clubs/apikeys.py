"""API keys for tills and web shops: one club, a set of scopes, only a hash kept."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.errors import InvalidSetting, NotFound
from store.models import ApiKey, Program

SCOPES = (
    "members:read",
    "members:write",
    "purchases:write",
    "coupons:read",
    "coupons:redeem",
    "coupons:give",  # a coupon given to a member as a gift (store.loyalty.coupons.give)
    "points:adjust",
)
PREFIX = "klubb"
MAX_NAME = 60  # ApiKey.name
MAX_STORE = 40  # ApiKey.store, Purchase.store
# klubb_<8 hex>_<32 of base64url>: the random part may itself contain "_".
# A key's last use is the minute it was last used in: a write per request would be too many.
USE_RECORDED_EVERY = dt.timedelta(minutes=1)
_SECRET = re.compile(rf"{PREFIX}_([0-9a-f]{{8}})_[A-Za-z0-9_-]{{32}}")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a valid key belongs to: what the API checks every request against."""

    key_id: int
    program_id: int
    name: str
    store: str | None
    scopes: frozenset[str]
    # The club's, as of the key's check: they change rarely, and a request reads them here
    # instead of from the club's row (a key's check is cached for seconds, bot/api/auth.py).
    currency: str
    country: str


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
    if not scopes:
        raise InvalidSetting("scopes", "a key needs at least one scope")
    name = name.strip()
    if not name:
        raise InvalidSetting("name", "a key needs a name")
    if len(name) > MAX_NAME or not name.isprintable():
        raise InvalidSetting("name", f"at most {MAX_NAME} printable characters")
    if store is not None:
        store = store.strip() or None
    if store is not None and (len(store) > MAX_STORE or not store.isprintable()):
        raise InvalidSetting("store", f"at most {MAX_STORE} printable characters")
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
        name=name,
        store=store,
        prefix=prefix,
        secret_hash=_digest(secret),
        scopes=scopes,
        created_at=now,
    )
    session.add(key)
    session.flush()
    return key, secret


def verify(session: Session, secret: str, now: dt.datetime | None = None) -> Caller | None:
    """The caller a secret belongs to, or None (unknown, malformed or revoked). Given `now`,
    the key's last use is set to it, at most once every USE_RECORDED_EVERY."""
    # Checked before the query: a malformed secret (a NUL, which PostgreSQL refuses in text)
    # never reaches the database.
    matched = _SECRET.fullmatch(secret)
    if matched is None:
        return None
    found = session.execute(
        select(ApiKey, Program.currency, Program.country)
        .join(Program, Program.id == ApiKey.program_id)
        .where(ApiKey.prefix == matched.group(1))
    ).first()
    if found is None:
        return None
    key, currency, country = found
    if key.revoked_at is not None:
        return None
    if not hmac.compare_digest(key.secret_hash, _digest(secret)):
        return None
    if now is not None and (
        key.last_used_at is None or now - key.last_used_at >= USE_RECORDED_EVERY
    ):
        key.last_used_at = now
    return Caller(
        key.id, key.program_id, key.name, key.store, frozenset(key.scopes), currency, country
    )


def revoke(session: Session, program_id: int, name: str, now: dt.datetime) -> ApiKey:
    """Revoke the club's active key of this name; NotFound if it has none."""
    name = name.strip()
    key = session.scalar(
        select(ApiKey).where(
            ApiKey.program_id == program_id, ApiKey.name == name, ApiKey.revoked_at.is_(None)
        )
    )
    if key is None:
        raise NotFound("api key", name)
    key.revoked_at = now
    return key


def revoke_id(session: Session, program_id: int, key_id: int, now: dt.datetime) -> ApiKey:
    """Revoke one of the club's keys by its id (as the admin lists them); a key revoked already
    keeps its first revocation time. NotFound for another club's key or no key."""
    key = session.get(ApiKey, key_id)
    if key is None or key.program_id != program_id:
        raise NotFound("api key", str(key_id))
    if key.revoked_at is None:
        key.revoked_at = now
    return key


def of_club(session: Session, program_id: int) -> Sequence[ApiKey]:
    return session.scalars(
        select(ApiKey).where(ApiKey.program_id == program_id).order_by(ApiKey.id)
    ).all()
