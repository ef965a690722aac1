"""A fake of Twilio's Messages REST API on loopback, scriptable, fast enough for benches.

From a test or a bench (in the running event loop):

    async with FakeTwilio() as fake:
        gateway = fake.gateway()          # a TwilioGateway pointed at the fake
        ...
        fake.messages                     # what was accepted, in order

By hand: `python -m tests.fakes.twilio_server --port 8099 [--callbacks]` prints the URL and the
account sid and token to give Klubb (TWILIO_API_URL, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN).
`GET /_fake/stats` answers the counters as JSON (for a bench running it in another process).

Faults, as a real gateway has them: `FakeTwilio(faults=parse_faults("429=5%,500=2%,hang=0.1%"))`
(or `--faults` by hand) answers that share of sends at random with a 429 (Twilio's 20429, never
taken; with `Retry-After` if `retry_after` is given), a 500 (never taken), or takes the message
and never answers (the sender can't know it was taken). `answer_delay` takes each message at
once and answers it that much later: a slow gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import email.utils
import json
import random
import re
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

if TYPE_CHECKING:
    from bot.gateways.twilio import TwilioGateway

DEFAULT_ACCOUNT_SID = "AC" + "fa1e" * 8
DEFAULT_AUTH_TOKEN = "fake-twilio-auth-token"
API_VERSION = "2010-04-01"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
CALLBACK_WORKERS = 8
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_JSON = "application/json"
_ERRORS_URL = "https://www.twilio.com/docs/errors/"


@dataclass(slots=True)
class FakeMessage:
    """One message the fake accepted."""

    sid: str
    to: str
    from_: str
    body: str
    date_created: dt.datetime
    status: str = "queued"
    status_callback: str | None = None
    error_code: str | None = None


@dataclass(slots=True)
class _Scripted:
    status: int
    code: int | None
    message: str
    retry_after: str | None = None


@dataclass(frozen=True)
class Faults:
    """Shares of sends (0..1) answered at random with an HTTP status ("429", "500", "503"...)
    instead of being taken, or taken and never answered ("hang")."""

    shares: dict[str, float] = field(default_factory=dict)

    def draw(self, chance: random.Random) -> str | None:
        roll = chance.random()
        for kind, share in self.shares.items():
            if roll < share:
                return kind
            roll -= share
        return None


def parse_faults(text: str) -> Faults:
    """`429=5%,500=2%,hang=0.1%` (or shares as fractions: `429=0.05`) as Faults."""
    shares: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, amount = part.partition("=")
        kind = kind.strip().lower()
        if kind != "hang" and not (kind.isdigit() and 400 <= int(kind) <= 599):
            raise ValueError(f"a fault is an HTTP status from 400 to 599 or 'hang', not {kind!r}")
        try:
            value = (
                float(amount.strip()[:-1]) / 100 if amount.strip().endswith("%") else float(amount)
            )
        except ValueError:
            message = f"the share of {kind} must be like 5% or 0.05, not {amount!r}"
            raise ValueError(message) from None
        if not 0 <= value <= 1:
            raise ValueError(f"the share of {kind} must be between 0% and 100%, not {amount!r}")
        shares[kind] = value
    if sum(shares.values()) > 1:
        raise ValueError("the faults' shares add up to more than 100%")
    return Faults(shares)


@dataclass
class Counters:
    """What the fake has seen, for tests' asserts and benches' figures."""

    requests: int = 0  # POSTs to Messages.json, whatever their answer
    accepted: int = 0
    refused: int = 0  # answered with an error (auth, scripted, invalid, a fault)
    dropped: int = 0  # accepted, then the connection dropped without an answer
    hung: int = 0  # accepted, then no answer at all (a fault, or hang_next)
    throttled: int = 0  # answered 429 by a fault
    # Accepted with the same to, from and body as a message accepted before: sent twice.
    duplicates: int = 0
    listed: int = 0  # GETs of Messages.json
    callbacks_sent: int = 0
    callback_failures: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class _Script:
    by_number: dict[str, _Scripted] = field(default_factory=dict)
    next_requests: deque[_Scripted] = field(default_factory=deque)
    drops: int = 0
    drops_untaken: int = 0
    hangs: int = 0
    undelivered: dict[str, tuple[str, str]] = field(default_factory=dict)


class FakeTwilio:
    """Twilio's Messages resource (send, list) and its status callbacks, on 127.0.0.1."""

    def __init__(
        self,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        callbacks: bool = False,
        latency: float = 0.0,
        page_size: int = DEFAULT_PAGE_SIZE,
        clock: Callable[[], dt.datetime] | None = None,
        faults: Faults | None = None,
        retry_after: float | None = None,
        answer_delay: float = 0.0,
        hang_seconds: float = 3600.0,
        seed: int = 2020,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.host = host
        self.port = port
        self.callbacks = callbacks
        self.latency = latency
        self.page_size = page_size
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.faults = faults or Faults()
        self.retry_after = retry_after
        self.answer_delay = answer_delay
        self.hang_seconds = hang_seconds
        self._chance = random.Random(seed)
        self._seen: set[int] = set()
        self._closing = asyncio.Event()
        self.messages: list[FakeMessage] = []
        self.by_sid: dict[str, FakeMessage] = {}
        self.counters = Counters()
        self._by_to: dict[str, list[FakeMessage]] = {}
        self._script = _Script()
        self._authorization = (
            "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        )
        self._validator = RequestValidator(auth_token)
        self._runner: web.AppRunner | None = None
        self._callback_queue: asyncio.Queue[tuple[FakeMessage, str, str | None]] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._http: aiohttp.ClientSession | None = None
        self._date_cache: tuple[int, str] = (-1, "")
        # Sids: a random half per fake (two runs against one database never meet) and a
        # counter (cheaper than 16 random bytes per message).
        self._sid_prefix = "SM" + secrets.token_hex(8)
        self._sid_count = 0

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def messages_path(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"

    async def start(self) -> FakeTwilio:
        app = web.Application()
        app.router.add_post(f"/{API_VERSION}/Accounts/{{sid}}/Messages.json", self._create)
        app.router.add_get(f"/{API_VERSION}/Accounts/{{sid}}/Messages.json", self._list)
        app.router.add_get("/_fake/stats", self._stats)
        # No access log: a log line per request would cost more than the request itself.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        # Port 0 asks the system for a free one: read back which.
        self.port = self._runner.addresses[0][1]
        if self.callbacks:
            self._start_callbacks()
        return self

    async def close(self) -> None:
        self._closing.set()  # answers left hanging end now
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._workers = []
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTwilio:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def gateway(self, **overrides: Any) -> TwilioGateway:
        """A TwilioGateway pointed at this fake with its credentials."""
        from bot.gateways.twilio import TwilioGateway

        return TwilioGateway(
            overrides.pop("account_sid", self.account_sid),
            overrides.pop("auth_token", self.auth_token),
            api_url=overrides.pop("api_url", self.url),
            **overrides,
        )

    # -- scripting ---------------------------------------------------------------------------

    def fail_number(
        self, number: str, code: int, *, status: int = 400, message: str | None = None
    ) -> None:
        """Every send to `number` answers this Twilio error (21610, 21211, ...)."""
        self._script.by_number[number] = _Scripted(
            status, code, message or f"scripted error {code} for {number}"
        )

    def fail_next(
        self,
        count: int,
        status: int,
        *,
        code: int | None = None,
        retry_after: float | str | None = None,
        message: str | None = None,
    ) -> None:
        """The next `count` sends answer `status` (429 with Retry-After, 500, 503...)."""
        if code is None and status == 429:
            code = 20429
        scripted = _Scripted(
            status,
            code,
            message or f"scripted {status}",
            None if retry_after is None else str(retry_after),
        )
        self._script.next_requests.extend([scripted] * count)

    def drop_next(self, count: int = 1) -> None:
        """The next `count` sends are accepted (recorded) and then the connection is dropped
        without an answer: the sender can't know they were taken."""
        self._script.drops += count

    def drop_next_untaken(self, count: int = 1) -> None:
        """The next `count` sends drop the connection before anything is taken (a proxy in
        front of Twilio failing): the sender can't know, and Twilio has no record of them."""
        self._script.drops_untaken += count

    def hang_next(self, count: int = 1) -> None:
        """The next `count` sends are accepted (recorded) and never answered: the sender's
        request times out, not knowing they were taken."""
        self._script.hangs += count

    def undeliver(
        self, number: str, error_code: str = "30003", status: str = "undelivered"
    ) -> None:
        """Messages to `number` are accepted, and their final callback says `status` with
        `error_code` (30003 unreachable, 30005 unknown number, 21610 opted out...)."""
        self._script.undelivered[number] = (status, error_code)

    def reset(self) -> None:
        """Forget the scripts (not the messages or counters)."""
        self._script = _Script()

    def sent_to(self, number: str) -> list[FakeMessage]:
        return list(self._by_to.get(number, ()))

    async def callbacks_settled(self) -> None:
        """Wait until every queued status callback has been posted (or has failed); bound it
        with asyncio.timeout if need be."""
        if self._callback_queue is not None:
            await self._callback_queue.join()

    # -- the API -----------------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.StreamResponse:
        counters = self.counters
        counters.requests += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        refusal = self._check_account(request)
        if refusal is not None:
            counters.refused += 1
            return refusal
        if self._script.next_requests:
            counters.refused += 1
            return _scripted(self._script.next_requests.popleft())
        if self._script.drops_untaken:
            self._script.drops_untaken -= 1
            counters.dropped += 1
            return await _drop(request)
        fault = self.faults.draw(self._chance) if self.faults.shares else None
        if fault is not None and fault != "hang":
            # Read, so the connection is kept for the next request as Twilio's would be.
            await request.read()
            counters.refused += 1
            if fault == "429":
                counters.throttled += 1
                return _error(
                    429,
                    20429,
                    "Too Many Requests",
                    {"Retry-After": f"{self.retry_after:g}"} if self.retry_after else None,
                )
            return _error(int(fault), None, f"fault {fault}")
        form = await request.post()
        to = _field(form, "To")
        from_ = _field(form, "From")
        body = _field(form, "Body")
        if not to:
            return self._refuse(400, 21604, "A 'To' phone number is required.")
        if not from_:
            return self._refuse(400, 21603, "A 'From' phone number is required.")
        if not body:
            return self._refuse(400, 21602, "Message body is required.")
        if not _E164.match(to):
            return self._refuse(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        scripted = self._script.by_number.get(to)
        if scripted is not None:
            counters.refused += 1
            return _scripted(scripted)
        message = FakeMessage(
            sid=self._next_sid(),
            to=to,
            from_=from_,
            body=body,
            date_created=self.clock(),
            status_callback=_field(form, "StatusCallback") or None,
        )
        self.messages.append(message)
        self.by_sid[message.sid] = message
        self._by_to.setdefault(to, []).append(message)
        counters.accepted += 1
        fingerprint = hash((to, from_, body))
        if fingerprint in self._seen:
            counters.duplicates += 1
        self._seen.add(fingerprint)
        if self._callback_queue is not None and message.status_callback:
            final, error = self._script.undelivered.get(to, ("delivered", None))
            self._callback_queue.put_nowait((message, final, error))
        if self._script.drops:
            self._script.drops -= 1
            counters.dropped += 1
            return await _drop(request)
        if self._script.hangs or fault == "hang":
            self._script.hangs = max(0, self._script.hangs - 1)
            counters.hung += 1
            # Until the fake closes or hang_seconds pass; the client gave up long before.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.hang_seconds)
            return await _drop(request)
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        return web.Response(status=201, body=self._created(message), content_type=_JSON)

    async def _list(self, request: web.Request) -> web.Response:
        self.counters.listed += 1
        refusal = self._check_account(request)
        if refusal is not None:
            return refusal
        query = request.query
        try:
            size = min(MAX_PAGE_SIZE, max(1, int(query.get("PageSize", self.page_size))))
            page = max(0, int(query.get("Page", "0")))
        except ValueError:
            return _error(400, 20001, "PageSize and Page must be whole numbers")
        to = query.get("To")
        pool = self._by_to.get(to, []) if to else self.messages
        try:
            selected = [m for m in pool if _matches(m, query)]
        except ValueError:
            return _error(400, 20001, "DateSent must be YYYY-MM-DD or an ISO 8601 instant")
        # Twilio lists newest first.
        selected.sort(key=lambda m: m.date_created, reverse=True)
        start = page * size
        chunk = selected[start : start + size]
        filters = {k: v for k, v in query.items() if k not in ("Page", "PageSize", "PageToken")}

        def uri(number: int) -> str:
            params = {**filters, "PageSize": str(size), "Page": str(number)}
            if number:
                params["PageToken"] = f"PA{number}"
            return f"{self.messages_path}?{urlencode(params)}"

        more = start + size < len(selected)
        return web.json_response(
            {
                "messages": [self._resource(m) for m in chunk],
                "page": page,
                "page_size": size,
                "start": start,
                "end": start + max(len(chunk) - 1, 0),
                "uri": uri(page),
                "first_page_uri": uri(0),
                "next_page_uri": uri(page + 1) if more else None,
                "previous_page_uri": uri(page - 1) if page else None,
            }
        )

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.counters.as_dict())

    def _check_account(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != self._authorization:
            return _error(
                401,
                20003,
                "Authenticate",
                headers={"WWW-Authenticate": 'Basic realm="Twilio API"'},
            )
        if request.match_info["sid"] != self.account_sid:
            return _error(404, 20404, "The requested resource was not found")
        return None

    def _refuse(self, status: int, code: int, message: str) -> web.Response:
        self.counters.refused += 1
        return _error(status, code, message)

    def _rfc2822(self, moment: dt.datetime) -> str:
        # Formatted once per second, not once per message (a burst shares its seconds).
        second = int(moment.timestamp())
        if second != self._date_cache[0]:
            text = email.utils.format_datetime(dt.datetime.fromtimestamp(second, dt.UTC))
            self._date_cache = (second, text)
        return self._date_cache[1]

    def _next_sid(self) -> str:
        self._sid_count += 1
        return f"{self._sid_prefix}{self._sid_count:016x}"

    def _created(self, message: FakeMessage) -> bytes:
        """The 201's body: the same JSON as _resource, from a template (the hot path)."""
        created = self._rfc2822(message.date_created)
        return _CREATED.format(
            account=self.account_sid,
            body=json.dumps(message.body),
            created=created,
            from_=json.dumps(message.from_),
            sid=message.sid,
            to=json.dumps(message.to),
        ).encode()

    def _resource(self, message: FakeMessage) -> dict[str, Any]:
        created = self._rfc2822(message.date_created)
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": message.body,
            "date_created": created,
            "date_sent": created,
            "date_updated": created,
            "direction": "outbound-api",
            "error_code": int(message.error_code) if message.error_code else None,
            "error_message": None,
            "from": message.from_,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": message.sid,
            "status": message.status,
            "to": message.to,
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{message.sid}.json",
        }

    # -- status callbacks --------------------------------------------------------------------

    def _start_callbacks(self) -> None:
        self._callback_queue = asyncio.Queue()
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=CALLBACK_WORKERS * 2),
            timeout=aiohttp.ClientTimeout(total=10),
        )
        self._workers = [
            asyncio.create_task(self._post_callbacks()) for _ in range(CALLBACK_WORKERS)
        ]

    async def _post_callbacks(self) -> None:
        assert self._callback_queue is not None
        while True:
            message, final, error = await self._callback_queue.get()
            try:
                for status in ("sent", final):
                    message.status = status
                    if status == final:
                        message.error_code = error
                    await self._post_callback(message, status, error if status == final else None)
            finally:
                self._callback_queue.task_done()

    async def _post_callback(self, message: FakeMessage, status: str, error: str | None) -> None:
        assert self._http is not None
        assert message.status_callback
        form = {
            "MessageSid": message.sid,
            "SmsSid": message.sid,
            "MessageStatus": status,
            "SmsStatus": status,
            "AccountSid": self.account_sid,
            "To": message.to,
            "From": message.from_,
            "ApiVersion": API_VERSION,
        }
        if error:
            form["ErrorCode"] = error
        signature = self._validator.compute_signature(message.status_callback, form)
        try:
            async with self._http.post(
                message.status_callback, data=form, headers={"X-Twilio-Signature": signature}
            ) as response:
                await response.read()
                ok = response.status < 300
        except (TimeoutError, aiohttp.ClientError):
            ok = False
        if ok:
            self.counters.callbacks_sent += 1
        else:
            self.counters.callback_failures += 1


_CREATED = (
    '{{"account_sid": "{account}", "api_version": "2010-04-01", "body": {body}, '
    '"date_created": "{created}", "date_sent": "{created}", "date_updated": "{created}", '
    '"direction": "outbound-api", "error_code": null, "error_message": null, "from": {from_}, '
    '"messaging_service_sid": null, "num_media": "0", "num_segments": "1", "price": null, '
    '"price_unit": "USD", "sid": "{sid}", "status": "queued", "to": {to}, '
    '"uri": "/2010-04-01/Accounts/{account}/Messages/{sid}.json"}}'
)


def _field(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _matches(message: FakeMessage, query: Any) -> bool:
    """Twilio's filters: From, and DateSent (every message is sent at once here) as a UTC day
    (YYYY-MM-DD) or an ISO 8601 instant, exact, on or after (DateSent>), on or before (<)."""
    if "From" in query and message.from_ != query["From"]:
        return False
    sent = message.date_created.astimezone(dt.UTC).replace(microsecond=0)
    for key, keep in (
        ("DateSent>", lambda a, b: a >= b),
        ("DateSent<", lambda a, b: a <= b),
        ("DateSent", lambda a, b: a == b),
    ):
        value = query.get(key)
        if value is None:
            continue
        if len(value) == 10:  # a day
            if not keep(sent.date().isoformat(), value):
                return False
        elif not keep(sent, dt.datetime.fromisoformat(value.replace("Z", "+00:00"))):
            return False
    return True


def _error(
    status: int, code: int | None, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message, "status": status}
    if code is not None:
        body["more_info"] = f"{_ERRORS_URL}{code}"
    return web.Response(status=status, text=json.dumps(body), content_type=_JSON, headers=headers)


def _scripted(scripted: _Scripted) -> web.Response:
    headers = {"Retry-After": scripted.retry_after} if scripted.retry_after else None
    return _error(scripted.status, scripted.code, scripted.message, headers)


async def _drop(request: web.Request) -> web.StreamResponse:
    transport = request.transport
    if transport is not None:
        transport.abort()
    # The handler must still return; aiohttp finds the transport gone and writes nothing.
    raise asyncio.CancelledError


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeTwilio(
        args.sid,
        args.token,
        host=args.host,
        port=args.port,
        callbacks=args.callbacks,
        latency=args.latency,
        faults=args.faults,
        retry_after=args.retry_after,
        answer_delay=args.answer_delay,
    )
    async with fake:
        print(f"Fake Twilio on {fake.url} (Ctrl-C stops it)", flush=True)
        print(f"  TWILIO_API_URL={fake.url}", flush=True)
        print(f"  TWILIO_ACCOUNT_SID={fake.account_sid}", flush=True)
        print(f"  TWILIO_AUTH_TOKEN={fake.auth_token}", flush=True)
        print(f"  counters: GET {fake.url}/_fake/stats", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake Twilio Messages API on loopback.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--sid", default=DEFAULT_ACCOUNT_SID, help="the account sid it accepts")
    parser.add_argument("--token", default=DEFAULT_AUTH_TOKEN, help="the auth token it accepts")
    parser.add_argument(
        "--callbacks", action="store_true", help="post signed status callbacks (sent, delivered)"
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each send")
    parser.add_argument(
        "--answer-delay",
        type=float,
        default=0.0,
        help="seconds between taking a message and answering (a slow gateway)",
    )
    parser.add_argument(
        "--faults",
        type=_faults_argument,
        default=None,
        help="shares of sends answered with a status or left hanging: 429=5%%,500=2%%,hang=0.1%%",
    )
    parser.add_argument(
        "--retry-after", type=float, default=None, help="seconds of Retry-After on a 429"
    )
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


def _faults_argument(text: str) -> Faults:
    try:
        return parse_faults(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


if __name__ == "__main__":
    main()
