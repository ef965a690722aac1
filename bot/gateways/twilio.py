"""The Twilio gateway: Programmable Messaging's REST API over one shared aiohttp session.

Why aiohttp and not twilio's own REST client: the client is synchronous (each call would need a
thread, and a burst keeps ~64 in flight), and it folds every failure into one TwilioRestException
or a requests error, losing what the sender needs most: whether the request could have reached
Twilio at all. Here a failure before the request was written is `Transient` (send again later),
and anything after it (a timeout, a dropped connection, an unreadable answer) is `InDoubt`: the
message may have been taken, so the row waits for `find_sent` instead of being sent twice.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import email.utils
import json
import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp

from scheduler.gateway import (
    GatewayError,
    InDoubt,
    InvalidNumber,
    OptedOut,
    OutboundSms,
    Rejected,
    Throttled,
    Transient,
    Unauthorized,
)
from store.clock import utc_now
from store.outreach import delivery

log = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
DEFAULT_API_URL = "https://api.twilio.com"

# The member opted out at the carrier: a STOP (delivery.opted_out_at_carrier says why).
OPTED_OUT_CODES = frozenset({int(delivery.OPTED_OUT_AT_CARRIER)})
# Numbers that can't get an SMS: invalid, not a mobile, unreachable by SMS; the codes a status
# callback flags a number by, so a send refused with one flags it too. (21408, a region the
# account may not send to, is the account's to fix, not the member's: it is Rejected.)
INVALID_NUMBER_CODES = frozenset(int(code) for code in delivery.FLAG_AT_ONCE)
THROTTLED_CODES = frozenset({20429})
# The account itself refused (20003 authenticate, 20005 account not active): every send fails
# alike, so none of them is the message's fault.
ACCOUNT_CODES = frozenset({20003, 20005})

# A burst keeps about 64 requests in flight; the pool matches so none waits for a socket.
IN_FLIGHT = 64
# Connect is short (a refusal or a dead route shows fast and is safe to retry). Twilio answers a
# send in well under a second; one not answered in 5 s is given up (in doubt, settled by asking
# Twilio later, never sent twice) so its slot goes to the next message instead of waiting 15 s.
TIMEOUT = aiohttp.ClientTimeout(total=8, connect=3, sock_connect=3, sock_read=5)
PAGE_SIZE = 100
# find_sent reads one member's messages from one club number since a day: a few, never
# thousands; the bound only keeps a runaway listing from looping forever.
MAX_PAGES = 20
# Bad credentials fail every send of a burst: say it loudly, but once a minute, not 64 times.
CREDENTIALS_LOG_EVERY = 60.0


class TwilioGateway:
    """Sends through Twilio's Messages resource; see the module docstring for the error map."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        api_url: str = DEFAULT_API_URL,
        status_callback: str | None = None,
        in_flight: int = IN_FLIGHT,
        timeout: aiohttp.ClientTimeout = TIMEOUT,
        page_size: int = PAGE_SIZE,
    ) -> None:
        if not account_sid or not auth_token:
            raise ValueError("a Twilio account sid and auth token are both required")
        self.account_sid = account_sid
        self.api_url = api_url.rstrip("/")
        self.status_callback = status_callback
        # The same on every send: encoded once.
        self._callback_field = (
            "&" + urlencode({"StatusCallback": status_callback}) if status_callback else ""
        )
        self.messages_url = f"{self.api_url}/{API_VERSION}/Accounts/{account_sid}/Messages.json"
        self.page_size = page_size
        self._authorization = basic_auth(account_sid, auth_token)
        self._in_flight = in_flight
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        # A send waits here for one of the pool's connections before its timeouts start:
        # waiting inside aiohttp's pool counts against `connect` and `total`, so a burst larger
        # than the pool would time out sends that never left (a loaded machine, 2,000 at once).
        self._slots = asyncio.Semaphore(in_flight)
        self._credentials_logged_at = -CREDENTIALS_LOG_EVERY

    def _http(self) -> aiohttp.ClientSession:
        # Made on first use: a ClientSession belongs to the running loop, which the app factory
        # (and a bench building the gateway before its loop) doesn't have yet.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._in_flight, limit_per_host=self._in_flight, ttl_dns_cache=300
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                headers={"Authorization": self._authorization, "Accept": "application/json"},
                raise_for_status=False,
            )
        return self._session

    async def close(self) -> None:
        """Close the HTTP session, if one was opened (the next send would open another)."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def send(self, message: OutboundSms) -> str:
        """POST one message; its sid, or the typed error the answer means."""
        form = urlencode({"To": message.to, "From": message.from_, "Body": message.body})
        try:
            async with (
                self._slots,
                self._http().post(
                    self.messages_url,
                    data=(form + self._callback_field).encode(),
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                ) as response,
            ):
                status = response.status
                retry_after = response.headers.get("Retry-After")
                raw = await response.read()
        except aiohttp.ClientConnectorError as exc:
            # Refused, unresolvable, TLS failed: nothing was written, so nothing was taken.
            raise Transient(f"could not connect to Twilio: {exc}", code="connect") from exc
        except aiohttp.ConnectionTimeoutError as exc:
            raise Transient("timed out connecting to Twilio", code="connect-timeout") from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise InDoubt(
                f"no complete answer from Twilio for {message.reference}: {exc!r}",
                code="no-answer",
            ) from exc
        if 200 <= status < 300:
            return _sid_of(raw, status, message)
        raise self._error(status, raw, retry_after)

    def _error(self, status: int, raw: bytes, retry_after: str | None) -> GatewayError:
        body = _json(raw)
        twilio_code = _int(body.get("code")) if isinstance(body, dict) else None
        detail = body.get("message") if isinstance(body, dict) else None
        code = str(twilio_code) if twilio_code is not None else str(status)
        text = f"Twilio {status} {code}: {detail or raw[:200].decode('utf-8', 'replace')}"
        if status == 429 or twilio_code in THROTTLED_CODES:
            return Throttled(text, code=code, retry_after=_seconds(retry_after))
        if twilio_code in OPTED_OUT_CODES:
            return OptedOut(text, code=code)
        if twilio_code in INVALID_NUMBER_CODES:
            return InvalidNumber(text, code=code)
        if status in (401, 403) or twilio_code in ACCOUNT_CODES:
            self._complain_about_credentials(text)
            return Unauthorized(
                f"Twilio refused the credentials (check TWILIO_ACCOUNT_SID and "
                f"TWILIO_AUTH_TOKEN): {text}",
                code=code,
            )
        if status == 504:
            # A gateway timeout in front of Twilio's API: the API behind it may have taken it.
            return InDoubt(text, code=code)
        if status >= 500:
            return Transient(text, code=code)
        return Rejected(text, code=code)

    def _complain_about_credentials(self, text: str) -> None:
        now = time.monotonic()
        if now - self._credentials_logged_at >= CREDENTIALS_LOG_EVERY:
            self._credentials_logged_at = now
            log.critical(
                "Twilio refused account %s: nothing can be sent until TWILIO_ACCOUNT_SID and "
                "TWILIO_AUTH_TOKEN are right (%s)",
                self.account_sid,
                text,
            )

    async def find_sent(self, message: OutboundSms, since: dt.datetime) -> str | None:
        """The sid of a message Twilio took with this to, from and body at or after `since`.

        Raises Transient when Twilio can't be asked now (the row stays in doubt until then)."""
        # Twilio's dates have whole seconds: a message taken 0.4 s after `since` shows as
        # created before it. No DateSent filter: a message Twilio took but still holds in its
        # queue (or failed before sending) has no date_sent, and must be found all the same.
        floor = since.astimezone(dt.UTC).replace(microsecond=0)
        params: Mapping[str, str] | None = {
            "To": message.to,
            "From": message.from_,
            "PageSize": str(self.page_size),
        }
        url = self.messages_url
        for _ in range(MAX_PAGES):
            page = await self._list(url, params)
            older = 0
            entries = page.get("messages") or []
            for entry in entries:
                created = _rfc2822(entry.get("date_created"))
                if created is not None and created < floor:
                    older += 1
                    continue
                if entry.get("body") == message.body and entry.get("sid"):
                    return str(entry["sid"])
            next_page = page.get("next_page_uri")
            # Twilio lists newest first: a page wholly older than `since` ends the search.
            if not next_page or (entries and older == len(entries)):
                return None
            url, params = self.api_url + next_page, None
        raise Transient(
            f"more than {MAX_PAGES} pages of messages to {message.to} since {floor}; "
            "could not tell whether it was sent",
            code="too-many-pages",
        )

    async def _list(self, url: str, params: Mapping[str, str] | None) -> dict[str, Any]:
        try:
            async with self._http().get(url, params=params) as response:
                status = response.status
                raw = await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise Transient(f"could not list messages on Twilio: {exc!r}", code="list") from exc
        page = _json(raw)
        if status != 200 or not isinstance(page, dict):
            code = str(page.get("code", status)) if isinstance(page, dict) else str(status)
            if status in (401, 403):
                self._complain_about_credentials(f"listing messages: {status}")
            raise Transient(f"Twilio answered {status} to a message listing", code=code)
        return page


def basic_auth(login: str, password: str) -> str:
    """An Authorization header's value for HTTP basic auth (aiohttp's BasicAuth is deprecated)."""
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode("ascii")


def _sid_of(raw: bytes, status: int, message: OutboundSms) -> str:
    body = _json(raw)
    sid = body.get("sid") if isinstance(body, dict) else None
    if not isinstance(sid, str) or not sid:
        # Twilio said yes but we can't read to what: it was most likely taken.
        raise InDoubt(
            f"Twilio answered {status} without a readable sid for {message.reference}",
            code=str(status),
        )
    return sid


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _seconds(retry_after: str | None) -> float | None:
    """Retry-After as seconds: a number of seconds or an HTTP date."""
    if not retry_after:
        return None
    try:
        return max(0.0, float(retry_after))
    except ValueError:
        pass
    when = _rfc2822(retry_after)
    if when is None:
        return None
    return max(0.0, (when - utc_now()).total_seconds())


def _rfc2822(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


__all__ = ["TwilioGateway"]
