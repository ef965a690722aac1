"""Every status a row can have, and which changes of status each lifecycle allows."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from enum import StrEnum

log = logging.getLogger(__name__)


class MemberStatus(StrEnum):
    """store.models.Member.status."""

    PENDING = "pending"  # asked to confirm joining
    ACTIVE = "active"
    STOPPED = "stopped"  # texted STOP: nothing is sent until START or JOIN
    ERASED = "erased"  # personal data removed; only the salted hash remains


class CampaignStatus(StrEnum):
    """store.models.Campaign.status: a broadcast's, then a journey's and a series' (a recurring
    broadcast: active, paused or cancelled; store.outreach.recurring)."""

    SCHEDULED = "scheduled"
    PLANNING = "planning"
    SENDING = "sending"
    DONE = "done"
    CANCELLED = "cancelled"
    ACTIVE = "active"
    PAUSED = "paused"


class OutboxStatus(StrEnum):
    """store.models.OutboxMessage.status."""

    SENT_INLINE = "sent_inline"  # a reply answered in the webhook's response
    QUEUED = "queued"
    SENDING = "sending"  # claimed by a sender
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"  # a guard rail held it back at sending (or its broadcast was cancelled)
    HELD_OUT = "held_out"  # the campaign's control group: recorded, never sent


class ConversationState(StrEnum):
    """What an inbox conversation is now (store.outreach.inbox): worked out from the times of
    its last text, the last staff reply and the last "done", not stored."""

    UNANSWERED = "unanswered"  # its last text not understood is newer than any reply or done
    OPEN = "open"  # answered, not yet marked done
    DONE = "done"  # marked done since its last text


class CouponState(StrEnum):
    """What a coupon is now (store.loyalty.coupons.state): worked out from its dates, not stored."""

    VALID = "valid"
    REDEEMED = "redeemed"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"


class ImportState(StrEnum):
    """A CSV import's run (bot.admin.transfer, kept in the job's state file)."""

    RUNNING = "running"
    DONE = "done"
    REFUSED = "refused"
    FAILED = "failed"


_M, _C, _O, _CS, _I = MemberStatus, CampaignStatus, OutboxStatus, CouponState, ImportState

# Each lifecycle: from a status, the statuses it may become. Staying put is not a change and is
# always allowed (STOP twice, planning a chunk while planning). A status absent as a key is final.
TRANSITIONS: Mapping[str, Mapping[StrEnum, frozenset[StrEnum]]] = {
    "member": {
        _M.PENDING: frozenset({_M.ACTIVE, _M.STOPPED, _M.ERASED}),
        _M.ACTIVE: frozenset({_M.STOPPED, _M.ERASED}),
        _M.STOPPED: frozenset({_M.PENDING, _M.ACTIVE, _M.ERASED}),
        # An erased number that texts (or joins at a till) again starts over on the same row.
        _M.ERASED: frozenset({_M.PENDING, _M.ACTIVE, _M.STOPPED}),
    },
    "broadcast": {
        _C.SCHEDULED: frozenset({_C.PLANNING, _C.CANCELLED}),
        _C.PLANNING: frozenset({_C.SENDING, _C.CANCELLED}),
        _C.SENDING: frozenset({_C.DONE, _C.CANCELLED}),
    },
    "journey": {
        _C.ACTIVE: frozenset({_C.PAUSED}),
        _C.PAUSED: frozenset({_C.ACTIVE}),
    },
    # A recurring broadcast never sends itself: it makes an occurrence (a broadcast) while active.
    "series": {
        _C.ACTIVE: frozenset({_C.PAUSED, _C.CANCELLED}),
        _C.PAUSED: frozenset({_C.ACTIVE, _C.CANCELLED}),
    },
    "outbox": {
        _O.QUEUED: frozenset({_O.SENDING, _O.SKIPPED}),
        # The gateway's answer; a retryable error goes back to the queue.
        _O.SENDING: frozenset({_O.SENT, _O.FAILED, _O.SKIPPED, _O.QUEUED}),
    },
    "coupon": {
        _CS.NOT_YET_VALID: frozenset({_CS.VALID, _CS.REDEEMED, _CS.EXPIRED}),
        _CS.VALID: frozenset({_CS.REDEEMED, _CS.EXPIRED}),
    },
    "import": {
        _I.RUNNING: frozenset({_I.DONE, _I.REFUSED, _I.FAILED}),
        _I.FAILED: frozenset({_I.RUNNING}),  # resumed from its last committed batch
    },
}


class BadTransition(ValueError):
    """A change of status the lifecycle's table does not allow (a bug, never the user's)."""


def allowed(kind: str, current: str, new: str) -> bool:
    """Whether `kind`'s table lets `current` become `new`."""
    table = TRANSITIONS[kind]
    return current == new or new in table.get(current, frozenset())  # type: ignore[call-overload]


def move(kind: str, current: str, new: str, *, what: object = None) -> str:
    """Check that `current` may become `new` in lifecycle `kind` and return `new`; raises
    BadTransition otherwise. `what` names the row in the debug log."""
    if not allowed(kind, current, new):
        raise BadTransition(f"a {kind} can't go from '{current}' to '{new}'")
    if current != new:
        log.debug("%s %s: %s -> %s", kind, what if what is not None else "", current, new)
    return new


def require(kind: str, *pairs: tuple[str, str]) -> None:
    """Assert at import that the changes a bulk UPDATE makes are in the table."""
    for current, new in pairs:
        if not allowed(kind, current, new):
            raise BadTransition(f"a {kind} can't go from '{current}' to '{new}'")
