"""The Gateway protocol the sender needs; bot/gateways fulfil it."""

from __future__ import annotations

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
    """The carrier says the number has opted out: never retry."""


class InvalidNumber(GatewayError):
    """The number can't receive SMS: never retry."""


class Throttled(GatewayError):
    """Too fast: back off and retry."""


class Transient(GatewayError):
    """A passing failure: retry later."""


class Gateway(Protocol):
    async def send(self, message: OutboundSms) -> str:
        """Send one SMS; return the provider's id for it, or raise a GatewayError."""
        ...
