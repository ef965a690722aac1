"""The Gateway protocol the sender needs; bot/gateways fulfil it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class OutboundSms:
    to: str
    from_: str
    body: str
    reference: str  # the outbox row, so a gateway's own log can be reconciled with ours


class GatewayError(Exception):
    """Base of what a gateway may raise; each kind tells the sender what to do next."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class OptedOut(GatewayError):
    """The carrier says the number has opted out (texted STOP to the club's number): never
    retry; the member's marketing consent is withdrawn, as a STOP to Klubb withdraws it."""


class InvalidNumber(GatewayError):
    """The number can't receive SMS: never retry; the member is flagged."""


class Rejected(GatewayError):
    """The gateway refused this message for good (its body, the sender number...): never retry."""


class Unauthorized(GatewayError):
    """The gateway refused the account itself (bad credentials, a suspended account): no
    message can go until someone fixes it. The message was not taken and is not at fault: it
    goes back to the queue untried, and the sender pauses instead of failing the outbox."""


class Throttled(GatewayError):
    """Too fast: back off and retry."""

    def __init__(
        self, message: str, code: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, code)
        self.retry_after = retry_after


class Transient(GatewayError):
    """A passing failure, and the message was certainly not taken: retry later."""


class InDoubt(GatewayError):
    """The request may have reached the gateway (a timeout after sending, a broken answer): the
    row stays in `sending` until `find_sent` tells whether it went."""


class Gateway(Protocol):
    async def send(self, message: OutboundSms) -> str:
        """Send one SMS; return the provider's id for it, or raise a GatewayError."""
        ...

    async def find_sent(self, message: OutboundSms, since: dt.datetime) -> str | None:
        """The provider's id of this very message if the gateway took it at or after `since`
        (same to, from and body), or None if it never did. Used to settle rows left in
        `sending` by a crash before anything is sent again."""
        ...

    async def close(self) -> None:
        """Release what the gateway holds (an HTTP session), once sending has stopped.
        bot.app.opened_gateway is the one caller, for `klubb serve` (a cleanup context) and
        `klubb worker` alike. Harmless to call again."""
        ...
