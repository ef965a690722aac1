"""The sender's side of the outbox: claim due rows in a batch (guard rails checked again, each
campaign message written for its member), check them once more at hand-off (a STOP since the
claim wins), record what the gateway said, settle rows in doubt."""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, insert, or_, select, update
from sqlalchemy.orm import Session

import locales
from store import states
from store.loyalty import coupons, ledger
from store.members import consent
from store.models import (
    Campaign,
    ConsentEvent,
    Coupon,
    CouponTemplate,
    Member,
    OutboxMessage,
    Program,
    SenderHeartbeat,
    Tier,
)
from store.outreach import campaigns, clicks, delivery, guard_rails, journeys
from store.states import OutboxStatus

log = logging.getLogger(__name__)

QUEUED, SENDING, SENT, FAILED, SKIPPED = (
    OutboxStatus.QUEUED,
    OutboxStatus.SENDING,
    OutboxStatus.SENT,
    OutboxStatus.FAILED,
    OutboxStatus.SKIPPED,
)
# The bulk UPDATEs below restrict the old status in their WHERE: the outbox table's rules.
states.require("outbox", (QUEUED, SENDING), (SENDING, SENT), (SENDING, FAILED), (SENDING, QUEUED))
states.require("outbox", (QUEUED, SKIPPED), (SENDING, SKIPPED))
MAX_ATTEMPTS = 8
FIRST_RETRY = dt.timedelta(seconds=30)
LAST_RETRY = dt.timedelta(hours=1)
THROTTLE_WAIT = dt.timedelta(seconds=5)
# The most a gateway's Retry-After holds a row: a word of a day (or "inf", or a date years on)
# would stop the club's messages for it, or not fit a timestamp at all.
MAX_THROTTLE_WAIT = dt.timedelta(minutes=10)
# A row claimed longer ago than this by a sender that never finished it is in doubt: that
# sender died (a live one finishes a batch in seconds).
STALE = dt.timedelta(minutes=5)
# A sender that has not beaten for this long is gone (it beats every few seconds: see
# scheduler.sender.Heartbeat): the rows it claimed are in doubt at once, not after STALE, once
# their claim is this old too (so a row is never taken from a sender a moment after its claim,
# while its gateway's answer may still be on the way).
GONE = dt.timedelta(seconds=15)
# A gone sender's heartbeat row is forgotten after this long (no row counts as gone too).
FORGET_SENDERS = dt.timedelta(days=1)

_OUTBOX = OutboxMessage.__table__
_COUPONS = Coupon.__table__
_MEMBERS = Member.__table__
_SPACES = re.compile(r"[ \t]{2,}")
_SPACE_BEFORE = re.compile(r"\s+([,.!?:;])")


@dataclass(frozen=True, slots=True)
class Claimed:
    """A row handed to the gateway: what to send, and the outbox id it is recorded under."""

    id: int
    to: str
    from_: str
    body: str
    member_id: int | None
    kind: str = ""
    # When this sender claimed it: a row whose claim changed since was taken over (in doubt).
    claimed_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Result:
    """What the gateway said of one claimed row."""

    id: int
    # sent, retry, throttled, failed, flag (failed, and the number is flagged), opted_out
    # (failed, and the member's consent withdrawn: they opted out at the carrier), skipped (held
    # back at hand-off: `error` says why), unsent (never handed over: the sender is stopping),
    # or unauthorized (the gateway refused the account, not the message: back untried)
    outcome: str
    provider_id: str | None = None
    error: str | None = None
    retry_after: float | None = None
    # When the gateway answered: a sent row's sent_at (None: the time of recording).
    at: dt.datetime | None = None


_DUE = (
    select(_OUTBOX.c.id)
    .where(_OUTBOX.c.status == QUEUED, _OUTBOX.c.send_after <= bindparam("now"))
    .order_by(_OUTBOX.c.send_after, _OUTBOX.c.id)
    .limit(bindparam("limit"))
)
_DUE_LOCKED = _DUE.with_for_update(skip_locked=True)
_ROWS = select(
    _OUTBOX.c.id,
    _OUTBOX.c.program_id,
    _OUTBOX.c.member_id,
    _OUTBOX.c.campaign_id,
    _OUTBOX.c.occasion,
    _OUTBOX.c.kind,
    _OUTBOX.c.to_number,
    _OUTBOX.c.from_number,
    _OUTBOX.c.body,
    _OUTBOX.c.attempts,
).where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True)))
_PEOPLE = select(
    _MEMBERS.c.id,
    _MEMBERS.c.status,
    consent.may_market_clause().label("may_market"),
    _MEMBERS.c.phone,
    _MEMBERS.c.language,
    _MEMBERS.c.first_name,
    _MEMBERS.c.tier_id,
    _MEMBERS.c.undeliverable_at,
).where(_MEMBERS.c.id.in_(bindparam("ids", expanding=True)))
# store.loyalty.ledger.held: the balance from the member's row.
_BALANCES = select(_MEMBERS.c.id, ledger.held(bindparam("now"))).where(
    _MEMBERS.c.id.in_(bindparam("ids", expanding=True))
)
_MARK_SENDING = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("row_id"))
    .values(
        status=SENDING,
        body=bindparam("body"),
        segments=bindparam("segments"),
        attempts=_OUTBOX.c.attempts + 1,
        claimed_at=bindparam("now"),
        claimed_by=bindparam("sender"),
    )
)
_DEFER = (
    update(_OUTBOX).where(_OUTBOX.c.id == bindparam("row_id")).values(send_after=bindparam("until"))
)
_SKIP = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("row_id"))
    .values(status=SKIPPED, error=bindparam("why"))
)


_ANY_DUE = select(_OUTBOX.c.id).where(
    _OUTBOX.c.status == QUEUED, _OUTBOX.c.send_after <= bindparam("now")
)
_HEARTBEATS = SenderHeartbeat.__table__
# A row in `sending` whose sender is gone: claimed by another sender than the one asking
# ("me"), one that has not beaten since `alive_since` (or has no heartbeat row), and claimed
# before `gone_before`. A row claimed without a sender id waits STALE.
_SENDER_GONE = (
    _OUTBOX.c.claimed_by.is_not(None)
    & (_OUTBOX.c.claimed_by != bindparam("me"))
    & (_OUTBOX.c.claimed_at < bindparam("gone_before"))
    & ~select(_HEARTBEATS.c.id)
    .where(
        _HEARTBEATS.c.id == _OUTBOX.c.claimed_by,
        _HEARTBEATS.c.seen_at >= bindparam("gone_before"),
    )
    .exists()
)
_IN_DOUBT = (_OUTBOX.c.status == SENDING) & or_(
    _OUTBOX.c.claimed_at < bindparam("before"), _SENDER_GONE
)
_ANY_STALE = select(_OUTBOX.c.id).where(_IN_DOUBT)
# Three index probes (outbox by status and due time; campaigns by status): no row is read
# when there is nothing to do (a row in `sending` is read, with its sender's heartbeat).
_ANYTHING = select(
    or_(
        _ANY_DUE.exists(),
        _ANY_STALE.exists(),
        select(Campaign.id).where(campaigns.finished()).exists(),
    )
)


def work_waiting(
    session: Session,
    now: dt.datetime,
    stale: dt.timedelta = STALE,
    *,
    me: str | None = None,
    gone: dt.timedelta = GONE,
) -> bool:
    """Whether the sender `me` (its heartbeat id, if it has one) has anything to do now: a row
    due, a row in doubt (claimed longer than `stale` ago, or by a sender gone for `gone`), or a
    broadcast to mark done. A read, so an idle tick writes nothing (`Database.read`: beside
    the writer on SQLite)."""
    found = session.connection().execute(_ANYTHING, _doubt_params(now, stale, me, gone))
    return bool(found.scalar())


def _doubt_params(
    now: dt.datetime, stale: dt.timedelta, me: str | None, gone: dt.timedelta
) -> dict[str, Any]:
    # "" for no id: `claimed_by != NULL` would be NULL, and no gone sender's row would match.
    return {"now": now, "before": now - stale, "me": me or "", "gone_before": now - gone}


def claim(
    session: Session,
    now: dt.datetime,
    limit: int,
    *,
    link_base: str = "",
    sender: str | None = None,
) -> list[Claimed]:
    """Move up to `limit` due rows to `sending`, claimed by `sender` (its heartbeat id: should
    it stop beating, they are settled at once, see in_doubt), and return them, ready for the
    gateway.

    The caller commits before sending, so a crash leaves them visibly in doubt. A marketing
    row is checked again here (a STOP since planning wins; the cap; quiet hours in the member's
    zone, which put it back to wait for morning) and written for its member, with a coupon
    issued if the campaign gives one, and the owner's web addresses in it as short links of
    this message on `link_base` (the app's public URL; empty: left as written). On PostgreSQL
    SKIP LOCKED lets several senders share."""
    connection = session.connection()
    due = _DUE_LOCKED if connection.dialect.name == "postgresql" else _DUE
    ids = list(connection.execute(due, {"now": now, "limit": limit}).scalars())
    if not ids:
        return []
    rows = list(connection.execute(_ROWS, {"ids": ids}).mappings())
    writer = _Writer(session, now, rows, clicks.Shortener(link_base, now))
    claimed: list[Claimed] = []
    sending: list[dict[str, Any]] = []
    deferred: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    order = {row_id: index for index, row_id in enumerate(ids)}
    for row in sorted(rows, key=lambda r: order[r["id"]]):
        verdict = writer.verdict(row)
        if isinstance(verdict, dt.datetime):
            deferred.append({"row_id": row["id"], "until": verdict})
            continue
        if verdict is not None:
            skipped.append({"row_id": row["id"], "why": verdict})
            continue
        body = row["body"] if row["kind"] != guard_rails.MARKETING else writer.write(row)
        sending.append(
            {
                "row_id": row["id"],
                "body": body,
                "segments": locales.segments(body).segments,
                "now": now,
                "sender": sender,
            }
        )
        claimed.append(
            Claimed(
                row["id"],
                row["to_number"],
                row["from_number"],
                body,
                row["member_id"],
                row["kind"],
                now,
            )
        )
    if sending:
        connection.execute(_MARK_SENDING, sending)
    if deferred:
        connection.execute(_DEFER, deferred)
    if skipped:
        connection.execute(_SKIP, skipped)
    # The batch's short links, one statement, in the claim's transaction: a link is in the
    # database before its SMS can reach anyone.
    writer.links.save(connection)
    return claimed


def _held_back(
    status: str | None,
    may_market: bool | None,
    phone: str | None,
    undeliverable_at: dt.datetime | None,
    campaign_status: str | None,
) -> str | None:
    """Why a marketing message may not go to this member now, or None: the one rule, at claim
    and again at hand-off. `may_market`: consent's answer (members.consent.may_market_clause,
    read with the row), which a STOP since planning has turned to no."""
    if status is None or phone is None:
        return "erased"
    if not may_market:
        return "no_consent"
    if undeliverable_at is not None:
        return "undeliverable"
    if campaign_status in (campaigns.CANCELLED, campaigns.PAUSED):
        return "cancelled"
    return None


def _service_held_back(status: str | None, phone: str | None, stopped_since: bool) -> str | None:
    """Why a message that is not marketing (a reply, a welcome's question, a staff answer) may
    not go now: its member was erased, or texted STOP after it was queued."""
    if status is None or phone is None:
        return "erased"
    if stopped_since:
        return "no_consent"
    return None


# --- at hand-off ------------------------------------------------------------------------------

# Another sender settled the row as in doubt since this one claimed it: not this sender's to send.
TAKEN_OVER = "taken_over"
_CAMPAIGNS = Campaign.__table__
_CONSENT = ConsentEvent.__table__
# A STOP logged after the row was queued: a reply, a welcome's question or a staff answer waiting
# in the outbox is held back as a marketing one is (the STOP's own confirmation is queued in the
# same turn as the withdrawal, at the same moment, so it is never newer than it).
_STOPPED_SINCE_QUEUED = (
    select(_CONSENT.c.id)
    .where(
        _CONSENT.c.member_id == _OUTBOX.c.member_id,
        _CONSENT.c.purpose == consent.MARKETING_SMS,
        _CONSENT.c.action == consent.WITHDRAW,
        _CONSENT.c.created_at > _OUTBOX.c.created_at,
    )
    .exists()
)
_HAND_OFF = (
    select(
        _OUTBOX.c.id,
        _OUTBOX.c.status,
        _OUTBOX.c.claimed_at,
        _MEMBERS.c.status.label("member_status"),
        consent.may_market_clause().label("may_market"),
        _MEMBERS.c.phone,
        _MEMBERS.c.undeliverable_at,
        _CAMPAIGNS.c.status.label("campaign_status"),
        _OUTBOX.c.member_id,
        _STOPPED_SINCE_QUEUED.label("stopped_since_queued"),
    )
    .select_from(
        _OUTBOX.outerjoin(_MEMBERS, _MEMBERS.c.id == _OUTBOX.c.member_id).outerjoin(
            _CAMPAIGNS, _CAMPAIGNS.c.id == _OUTBOX.c.campaign_id
        )
    )
    .where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True)))
)


def held_at_hand_off(session: Session, rows: Sequence[Claimed]) -> dict[int, str]:
    """Of claimed rows about to go to the gateway, those that must not, with why: a marketing
    row whose member texted STOP (or was erased or flagged) or whose campaign was cancelled
    since the claim, any other row whose member was erased or texted STOP after it was queued,
    and any row another sender took over as in doubt (TAKEN_OVER).

    The sender calls this in a transaction of its own right before the hand-off, a few rows at
    a time: every STOP committed before it is seen, on SQLite (a new transaction reads the
    latest commit) and on PostgreSQL (READ COMMITTED), whichever process took the STOP."""
    if not rows:
        return {}
    mine = {row.id: row for row in rows}
    held: dict[int, str] = {}
    seen: set[int] = set()
    for found in session.connection().execute(_HAND_OFF, {"ids": sorted(mine)}):
        seen.add(found.id)
        row = mine[found.id]
        if found.status != SENDING or (
            row.claimed_at is not None and found.claimed_at != row.claimed_at
        ):
            held[found.id] = TAKEN_OVER
        elif row.kind == guard_rails.MARKETING:
            why = _held_back(
                found.member_status,
                found.may_market,
                found.phone,
                found.undeliverable_at,
                found.campaign_status,
            )
            if why is not None:
                held[found.id] = why
        elif found.member_id is not None:
            why = _service_held_back(found.member_status, found.phone, found.stopped_since_queued)
            if why is not None:
                held[found.id] = why
    for row_id in mine.keys() - seen:  # gone (its club removed)
        held[row_id] = TAKEN_OVER
    return held


class _Writer:
    """Everything a batch of claimed rows needs, read once for the batch."""

    def __init__(
        self, session: Session, now: dt.datetime, rows: list[Any], links: clicks.Shortener
    ) -> None:
        self.session = session
        self.now = now
        self.links = links
        self.rows = rows
        # Per campaign, read once a batch for all its rows: cross-sell's category per purchase,
        # a favourite offer's category per member (no statement per message).
        self.categories: dict[int, dict[int, str]] = {}
        self.favourites: dict[int, dict[int, str]] = {}
        # The owner's addresses per campaign, found once a batch (not once a message).
        self.owned: dict[int, frozenset[str]] = {}
        connection = session.connection()
        member_ids = sorted({r["member_id"] for r in rows if r["member_id"] is not None})
        self.people = (
            {p.id: p for p in connection.execute(_PEOPLE, {"ids": member_ids})}
            if member_ids
            else {}
        )
        self.programs: dict[int, Program] = {}
        self.campaigns: dict[int, Campaign] = {}
        self.templates: dict[int, CouponTemplate] = {}
        self.tiers: dict[int, Tier] = {}
        marketing = [r for r in rows if r["kind"] == guard_rails.MARKETING]
        members = sorted({r["member_id"] for r in marketing if r["member_id"] is not None})
        self.recent = guard_rails.sent_recently(
            connection, members, [r["id"] for r in marketing], now
        )
        self.balances: dict[int, int] = {}
        wanted = [r["member_id"] for r in marketing if r["member_id"] is not None]
        if wanted:
            self.balances = dict(
                connection.execute(_BALANCES, {"ids": sorted(set(wanted)), "now": now}).all()
            )

    def program(self, program_id: int) -> Program:
        if program_id not in self.programs:
            found = self.session.get(Program, program_id)
            assert found is not None
            self.programs[program_id] = found
        return self.programs[program_id]

    def campaign(self, campaign_id: int) -> Campaign:
        if campaign_id not in self.campaigns:
            found = self.session.get(Campaign, campaign_id)
            assert found is not None
            self.campaigns[campaign_id] = found
        return self.campaigns[campaign_id]

    def verdict(self, row: Any) -> str | dt.datetime | None:
        """None to send now; a reason to skip; or the instant to wait until (quiet hours)."""
        if row["kind"] != guard_rails.MARKETING:
            return None if row["to_number"] else "erased"
        person = self.people.get(row["member_id"])
        campaign = self.campaign(row["campaign_id"]) if row["campaign_id"] is not None else None
        why = _held_back(
            person.status if person is not None else None,
            person.may_market if person is not None else None,
            person.phone if person is not None and row["to_number"] is not None else None,
            person.undeliverable_at if person is not None else None,
            campaign.status if campaign is not None else None,
        )
        if why is not None:
            return why
        assert person is not None
        if (
            campaign is not None
            and campaign.trigger == journeys.CROSS_SELL
            and self._category(campaign, row) is None
        ):
            return "bought_again"  # the category, since planning: nothing left to suggest
        program = self.program(row["program_id"])
        zone = guard_rails.zone_of(person.phone, program.timezone)
        until = guard_rails.quiet_until(self.now, zone, program.quiet_start, program.quiet_end)
        if until is not None:
            return until
        count = self.recent.get(person.id, 0)
        if count >= program.marketing_per_month:
            return "cap"
        self.recent[person.id] = count + 1
        return None

    def write(self, row: Any) -> str:
        """The campaign's text for this member, placeholders filled, the owner's addresses as
        this message's short links, with the opt-out line."""
        campaign = self.campaign(row["campaign_id"])
        program = self.program(row["program_id"])
        person = self.people[row["member_id"]]
        language = person.language or locales.language_for_phone(person.phone)
        values: dict[str, str] = {
            "first_name": person.first_name or "",
            "club": program.name,
            "points": locales.format_number(self.balances.get(person.id, 0), language),
            "tier": self._tier_name(person.tier_id, language),
            "coupon_code": "",
        }
        template_id = campaign.coupon_template_id
        offer = campaigns.favourite_of(campaign)
        if offer is not None:
            favourite = self._favourite(campaign, person.id)
            values[campaigns.FAVOURITE] = favourite or campaigns.favourite_word(language)
            template_id = offer.get(favourite or "", template_id)
        if template_id is not None:
            values["coupon_code"] = self._coupon(program, campaign, row, template_id)
        if campaign.kind == campaigns.JOURNEY:
            values.update(journeys.values(self.session, program, campaign, row, language, self.now))
            if campaign.trigger == journeys.CROSS_SELL:
                values["category"] = self._category(campaign, row) or ""
            # The club's own text in the member's language, else the catalog's wording in it.
            text = journeys.text_for(campaign, language, values)
        else:
            texts = campaign.texts or {}
            text = texts[campaigns.text_language(texts, language)].format_map(values)
        text = tidy(text)
        if self.links.base:
            text = self.links.shorten(
                text,
                self._owned(campaign),
                program_id=program.id,
                campaign_id=campaign.id,
                message_id=row["id"],
                member_id=person.id,
            )
        return campaigns.compose(text, language, program.name)

    def _owned(self, campaign: Campaign) -> frozenset[str]:
        if campaign.id not in self.owned:
            self.owned[campaign.id] = clicks.owned_urls(campaign.texts)
        return self.owned[campaign.id]

    def _tier_name(self, tier_id: int | None, language: str) -> str:
        if tier_id is None:
            return ""
        if tier_id not in self.tiers:
            found = self.session.get(Tier, tier_id)
            if found is None:
                return ""
            self.tiers[tier_id] = found
        names = self.tiers[tier_id].name
        return str(names.get(language) or next(iter(names.values()), ""))

    def _category(self, campaign: Campaign, row: Any) -> str | None:
        """The category a cross-sell row's purchase is followed up for (None: none left)."""
        if campaign.id not in self.categories:
            purchases = {
                int(r["occasion"])
                for r in self.rows
                if r["campaign_id"] == campaign.id and (r["occasion"] or "").isdigit()
            }
            self.categories[campaign.id] = journeys.cross_sell_categories(
                self.session, campaign, purchases
            )
        occasion = row["occasion"] or ""
        return self.categories[campaign.id].get(int(occasion)) if occasion.isdigit() else None

    def _favourite(self, campaign: Campaign, member_id: int) -> str | None:
        """A favourite offer's recipient's most bought category (None: no purchases)."""
        if campaign.id not in self.favourites:
            members = [
                r["member_id"]
                for r in self.rows
                if r["campaign_id"] == campaign.id and r["member_id"] is not None
            ]
            self.favourites[campaign.id] = campaigns.favourites(self.session, members, self.now)
        return self.favourites[campaign.id].get(member_id)

    def _coupon(self, program: Program, campaign: Campaign, row: Any, template_id: int) -> str:
        if template_id not in self.templates:
            found = self.session.get(CouponTemplate, template_id)
            assert found is not None
            self.templates[template_id] = found
        source = journeys.coupon_source(campaign, row["member_id"], row["occasion"])
        coupon = coupons.issue(
            self.session,
            program.id,
            row["member_id"],
            self.templates[template_id],
            source,
            self.now,
        )
        return coupons.display(coupon.code)


def tidy(text: str) -> str:
    """A text whose placeholder was empty (no first name yet) without the gap it leaves:
    "Hi , welcome" reads "Hi, welcome"."""
    return _SPACE_BEFORE.sub(r"\1", _SPACES.sub(" ", text)).strip()


# --- what the gateway said --------------------------------------------------------------------

_SENT = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("row_id"), _OUTBOX.c.status == SENDING)
    .values(status=SENT, provider_id=bindparam("provider_id"), sent_at=bindparam("now"))
)
_FAILED = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("row_id"), _OUTBOX.c.status == SENDING)
    .values(status=FAILED, error=bindparam("error"))
)
_REQUEUE = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("row_id"), _OUTBOX.c.status == SENDING)
    .values(
        status=QUEUED,
        error=bindparam("error"),
        send_after=bindparam("until"),
        attempts=_OUTBOX.c.attempts - bindparam("uncount"),
    )
)
# A row held back at hand-off (a STOP since the claim...): skipped, with why, never sent.
_SKIP_HELD = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("row_id"), _OUTBOX.c.status == SENDING)
    .values(status=SKIPPED, error=bindparam("why"))
)
_ATTEMPTS = select(_OUTBOX.c.id, _OUTBOX.c.attempts, _OUTBOX.c.member_id).where(
    _OUTBOX.c.id.in_(bindparam("ids", expanding=True))
)


def throttle_wait(retry_after: float | None) -> dt.timedelta:
    """How long a row the gateway throttled waits: its Retry-After, within MAX_THROTTLE_WAIT;
    THROTTLE_WAIT when it gave none (or none that is a number of seconds ahead)."""
    if retry_after is None or not math.isfinite(retry_after) or retry_after <= 0:
        return THROTTLE_WAIT
    return dt.timedelta(seconds=min(retry_after, MAX_THROTTLE_WAIT.total_seconds()))


def record(session: Session, results: Sequence[Result], now: dt.datetime) -> None:
    """Write what the gateway said of claimed rows, a statement per outcome for the batch;
    each at its own answer's time (`Result.at`), else `now`.

    Only rows still in `sending` change, so a late or repeated record does nothing twice."""
    connection = session.connection()
    sent = [
        {"row_id": r.id, "provider_id": r.provider_id, "now": r.at or now}
        for r in results
        if r.outcome == "sent"
    ]
    if sent:
        connection.execute(_SENT, sent)
        delivery.apply_waiting(session, [r.provider_id for r in results if r.provider_id], now)
    again = [r for r in results if r.outcome in ("retry", "throttled", "unsent", "unauthorized")]
    flagged = [r for r in results if r.outcome in ("flag", "opted_out")]
    # The tries a retry has had, and whom a flag is for: one read for the batch.
    held = {
        row.id: (row.attempts, row.member_id)
        for row in (
            connection.execute(_ATTEMPTS, {"ids": [r.id for r in again + flagged]})
            if again or flagged
            else ()
        )
    }
    requeue, failed = [], []
    for r in again:
        tries = held.get(r.id, (MAX_ATTEMPTS, None))[0]
        at = r.at or now
        if r.outcome == "unsent":
            requeue.append({"row_id": r.id, "error": None, "until": at, "uncount": 1})
        elif r.outcome == "unauthorized":
            # Due again at once: the sender's pause is what waits, not each row.
            requeue.append({"row_id": r.id, "error": r.error, "until": at, "uncount": 1})
        elif r.outcome == "throttled":
            wait = throttle_wait(r.retry_after)
            requeue.append({"row_id": r.id, "error": r.error, "until": at + wait, "uncount": 1})
        elif tries >= MAX_ATTEMPTS:
            failed.append({"row_id": r.id, "error": f"gave up after {tries} tries: {r.error}"})
        else:
            wait = min(FIRST_RETRY * 2 ** max(tries - 1, 0), LAST_RETRY)
            requeue.append({"row_id": r.id, "error": r.error, "until": at + wait, "uncount": 0})
    failed += [
        {"row_id": r.id, "error": r.error}
        for r in results
        if r.outcome in ("failed", "flag", "opted_out")
    ]
    skipped = [{"row_id": r.id, "why": r.error} for r in results if r.outcome == "skipped"]
    if skipped:
        connection.execute(_SKIP_HELD, skipped)
        _take_back_coupons(session, [s["row_id"] for s in skipped])
    if requeue:
        connection.execute(_REQUEUE, requeue)
        clicks.forget_unsent(connection, [r["row_id"] for r in requeue])
    if failed:
        connection.execute(_FAILED, [{**f, "error": (f["error"] or "")[:200]} for f in failed])
    for r in flagged:
        member_id = held.get(r.id, (0, None))[1]
        if member_id is None:
            continue
        if r.outcome == "opted_out":
            delivery.opted_out_at_carrier(session, member_id, r.at or now, r.id)
        else:
            delivery.flag(session, member_id, now, r.error or "")


_HELD_ROWS = select(
    _OUTBOX.c.program_id, _OUTBOX.c.member_id, _OUTBOX.c.campaign_id, _OUTBOX.c.occasion
).where(
    _OUTBOX.c.id.in_(bindparam("ids", expanding=True)),
    _OUTBOX.c.campaign_id.is_not(None),
    _OUTBOX.c.member_id.is_not(None),
)


def _take_back_coupons(session: Session, row_ids: Sequence[int]) -> None:
    """A campaign's coupon is issued when its message is written, at the claim; a message held
    back at hand-off (a STOP came first) never told the member its code, so the coupon goes,
    unless it was redeemed. A birthday journey's is the birthday job's own too: it stays."""
    connection = session.connection()
    for row in connection.execute(_HELD_ROWS, {"ids": list(row_ids)}):
        campaign = session.get(Campaign, row.campaign_id)
        if campaign is None or campaign.coupon_template_id is None:
            continue
        if campaign.kind == campaigns.JOURNEY and campaign.trigger == journeys.BIRTHDAY:
            continue
        source = journeys.coupon_source(campaign, row.member_id, row.occasion)
        connection.execute(
            delete(_COUPONS).where(
                _COUPONS.c.program_id == row.program_id,
                _COUPONS.c.source == source,
                _COUPONS.c.redeemed_at.is_(None),
            )
        )


# --- the senders' heartbeats ------------------------------------------------------------------


def beat(session: Session, sender: str, host: str, pid: int, now: dt.datetime) -> None:
    """The sender `sender` (on `host`, process `pid`) is alive at `now`: its heartbeat row,
    made on its first beat (when those of senders gone long ago are forgotten)."""
    connection = session.connection()
    seen = update(_HEARTBEATS).where(_HEARTBEATS.c.id == sender).values(seen_at=now)
    if connection.execute(seen).rowcount:
        return
    connection.execute(delete(_HEARTBEATS).where(_HEARTBEATS.c.seen_at < now - FORGET_SENDERS))
    connection.execute(
        insert(_HEARTBEATS).values(id=sender, host=host, pid=pid, started_at=now, seen_at=now)
    )


def sender_stopped(session: Session, sender: str) -> None:
    """The sender `sender` stopped cleanly: its heartbeat row goes (a row it left in doubt,
    if any, is then settled at once by another sender)."""
    session.connection().execute(delete(_HEARTBEATS).where(_HEARTBEATS.c.id == sender))


# --- rows in doubt ----------------------------------------------------------------------------

_STALE = (
    select(
        _OUTBOX.c.id,
        _OUTBOX.c.to_number,
        _OUTBOX.c.from_number,
        _OUTBOX.c.body,
        _OUTBOX.c.claimed_at,
        _OUTBOX.c.member_id,
    )
    .where(_IN_DOUBT)
    .order_by(_OUTBOX.c.id)
    .limit(bindparam("limit"))
)
_TOUCH = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("row_id"), _OUTBOX.c.status == SENDING)
    .values(claimed_at=bindparam("now"), claimed_by=bindparam("me"))
)


@dataclass(frozen=True, slots=True)
class InDoubt:
    """A row some sender claimed and never finished: ask the gateway before sending again."""

    claimed: Claimed
    claimed_at: dt.datetime


def in_doubt(
    session: Session,
    now: dt.datetime,
    limit: int = 200,
    stale: dt.timedelta = STALE,
    *,
    me: str | None = None,
    gone: dt.timedelta = GONE,
) -> list[InDoubt]:
    """Rows left in `sending` for longer than `stale`, or claimed by a sender gone (no beat for
    `gone`: it crashed), taken over by the sender `me` (their claim time renewed and claimed
    by it, so another sender does not settle them at the same time, and should `me` die in
    turn they are settled soon)."""
    connection = session.connection()
    query = (
        _STALE.with_for_update(of=_OUTBOX, skip_locked=True)
        if connection.dialect.name == "postgresql"
        else _STALE
    )
    rows = list(connection.execute(query, {**_doubt_params(now, stale, me, gone), "limit": limit}))
    if rows:
        connection.execute(_TOUCH, [{"row_id": row.id, "now": now, "me": me} for row in rows])
    return [
        InDoubt(
            Claimed(row.id, row.to_number or "", row.from_number, row.body or "", row.member_id),
            row.claimed_at,
        )
        for row in rows
    ]


def settle(session: Session, found: Sequence[tuple[int, str | None]], now: dt.datetime) -> None:
    """Rows in doubt, settled: (id, provider id if the gateway has it, else None). A message the
    gateway took is marked sent; one it never saw goes back to the queue, to be sent once."""
    connection = session.connection()
    went = [{"row_id": i, "provider_id": p, "now": now} for i, p in found if p is not None]
    lost = [
        {"row_id": i, "error": "in doubt: the gateway never took it", "until": now, "uncount": 0}
        for i, p in found
        if p is None
    ]
    # Each try counted at its claim: a gateway that never answers and never takes a message
    # (a broken proxy before it) would otherwise have it sent again every STALE, for ever.
    tries = {
        row.id: row.attempts
        for row in (
            connection.execute(_ATTEMPTS, {"ids": [r["row_id"] for r in lost]}) if lost else ()
        )
    }
    given_up = [
        {"row_id": r["row_id"], "error": f"gave up after {tries[r['row_id']]} tries: {r['error']}"}
        for r in lost
        if tries.get(r["row_id"], 0) >= MAX_ATTEMPTS
    ]
    lost = [r for r in lost if tries.get(r["row_id"], 0) < MAX_ATTEMPTS]
    if given_up:
        connection.execute(_FAILED, given_up)
    if went:
        connection.execute(_SENT, went)
        delivery.apply_waiting(session, [w["provider_id"] for w in went], now)
    if lost:
        connection.execute(_REQUEUE, lost)
