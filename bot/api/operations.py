"""What every API operation shares: key, scope, body, parameters, store errors as statuses."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from aiohttp import web
from sqlalchemy.exc import DataError, DBAPIError, StatementError
from sqlalchemy.orm import Session

from bot import metrics
from bot.api import schemas
from bot.api.auth import bearer_secret
from bot.keys import API_KEYS, DB
from store.clock import utc_now
from store.clubs import apikeys
from store.clubs.apikeys import Caller
from store.errors import (
    Conflict,
    InvalidInput,
    InvalidSetting,
    NotEnoughPoints,
    NotFound,
    StoreError,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

# A purchase of 500 lines is about 100 KB of JSON; the app's own limit is for Twilio's forms.
MAX_BODY = 512 * 1024
REALM = 'Bearer realm="klubb"'
WHOLE_LIMIT = 2.0**63  # past any integer a schema takes (BIGINT): left a float, refused as big
JSON = "application/json"


class ApiError(Exception):
    """An answer other than success, raised anywhere in a handler or its unit of work."""

    def __init__(
        self,
        status: int,
        error: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.body: dict[str, Any] = {"error": error, **extra}
        if field is not None:
            self.body["field"] = field
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return web.json_response(self.body, status=self.status, headers=self.headers)


INTERNAL = ApiError(500, "the server failed; it is logged")


def not_found(what: str, key: object, field: str | None = None) -> ApiError:
    return ApiError(404, f"{what} {key} not found", field=field)


@dataclass(frozen=True, slots=True)
class Param:
    """A path or query parameter, validated with its schema (the one the document shows)."""

    name: str
    where: Literal["path", "query"]
    schema: Mapping[str, Any]
    _validator: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "_validator", schemas.validator_for(dict(self.schema)))

    def read(self, raw: str | None) -> Any:
        """The value, or ApiError: a bad path value is a 404 (no such thing), a query's a 422."""
        if raw is None:
            raise ApiError(422, f"the query parameter {self.name} is required", field=self.name)
        value: Any = raw
        if self.schema.get("type") == "integer":
            value = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 20 else None
        try:
            if value is None:
                raise schemas.Invalid(self.name, "is not a whole number")
            schemas.check(self._validator, value, self.name)
        except schemas.Invalid as exc:
            if self.where == "path":
                raise ApiError(404, f"nothing at this {self.name}: {exc.reason}") from None
            raise ApiError(422, exc.reason, field=exc.field) from None
        return value


@dataclass(frozen=True, slots=True)
class Call:
    """One request as a handler sees it: who, what, and when (fixed before any unit of work,
    so a unit run again after a rollback gets the same instant)."""

    request: web.Request
    caller: Caller
    body: dict[str, Any]
    params: dict[str, Any]
    now: dt.datetime

    async def run(self, work: Callable[[Session], T]) -> T:
        # Not Database.turn: a sale is a dozen statements, which PostgreSQL's few writers of
        # turns would wait out one after another (measured: 294-346 -> 208-252 sales/s).
        return await self.request.app[DB].run(work)


Handler = Callable[[Call], Awaitable[web.Response]]


@dataclass(frozen=True, slots=True)
class Operation:
    """One row of the route table: the handler and everything the document says about it."""

    method: str
    path: str  # under /api/v1; {name} is a Param of where="path"
    operation_id: str
    summary: str
    handler: Handler
    scope: str
    responses: Mapping[int, tuple[str, str]]  # status: (description, schema name)
    body: str | None = None  # the request schema's name in schemas.SCHEMAS
    body_required: bool = True
    params: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()  # 404, 409: besides those every operation may answer
    description: str = ""
    _validator: Any = None

    def __post_init__(self) -> None:
        if self.scope not in apikeys.SCOPES:
            raise ValueError(f"unknown scope {self.scope}")
        if self.body is not None:
            object.__setattr__(self, "_validator", schemas.validator(self.body))

    def endpoint(self) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            # Counted by operation and status, whatever the answer (bot.metrics).
            started = time.perf_counter()
            response = await answer(request)
            metrics.count_api(self.operation_id, response.status, started)
            return response

        async def answer(request: web.Request) -> web.Response:
            try:
                return await self._handle(request)
            except ApiError as exc:
                return exc.response()
            except StoreError as exc:
                return store_problem(exc).response()
            except (DBAPIError, StatementError, OverflowError) as exc:
                problem = database_problem(exc)
                if problem is None:
                    log.exception("%s failed", self.operation_id)
                    return INTERNAL.response()
                return problem.response()
            except Exception:
                log.exception("%s failed", self.operation_id)
                return INTERNAL.response()

        handle.__name__ = self.operation_id
        return handle

    async def _handle(self, request: web.Request) -> web.Response:
        caller = await authenticate(request)
        if self.scope not in caller.scopes:
            raise ApiError(403, f"this key lacks the scope {self.scope}", scope=self.scope)
        params = {
            p.name: p.read(
                request.match_info.get(p.name) if p.where == "path" else request.query.get(p.name)
            )
            for p in self.params
        }
        body = await self._read_body(request) if self.body is not None else {}
        now = utc_now()
        return await self.handler(Call(request, caller, body, params, now))

    async def _read_body(self, request: web.Request) -> dict[str, Any]:
        raw = await read_bytes(request)
        if not raw.strip() and not self.body_required:
            return {}
        if not is_json(request.content_type):
            raise ApiError(415, f"send the body as Content-Type: {JSON}")
        try:
            body = json.loads(raw, parse_constant=_no_constant, parse_float=_number)
        except (ValueError, RecursionError):
            raise ApiError(400, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object")
        try:
            schemas.check(self._validator, body, raw=raw)
        except schemas.Invalid as exc:
            raise ApiError(422, exc.reason, field=exc.field or None) from None
        return body


def is_json(content_type: str) -> bool:
    """application/json, or a type built on it (application/vnd.example+json); aiohttp gives
    the type lower-cased without its parameters (a charset), application/octet-stream if none."""
    kind, _, subtype = content_type.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


async def authenticate(request: web.Request) -> Caller:
    """The caller of a valid key, or a 401 that says how to send one."""
    header = request.headers.get("Authorization")
    secret = bearer_secret(header)
    if secret is None:
        error = "send an API key as Authorization: Bearer <key>"
        if header:
            error = "the Authorization header is not Bearer <key>"
        raise ApiError(401, error, headers={"WWW-Authenticate": REALM})
    cache = request.app[API_KEYS]
    caller = cache.get(secret)
    if caller is None:
        now = utc_now()
        db = request.app[DB]
        caller = await cache.verified(
            secret, lambda: db.run(lambda session: apikeys.verify(session, secret, now))
        )
        if caller is None:
            raise ApiError(
                401,
                "unknown or revoked API key",
                headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
            )
    return caller


async def read_bytes(request: web.Request) -> bytes:
    length = request.content_length
    try:
        if length is not None and length <= request.client_max_size:
            return await request.read()  # within the app's own limit: no copy of the request
        return await request.clone(client_max_size=MAX_BODY).read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, f"the body is larger than {MAX_BODY // 1024} KiB") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _number(text: str) -> int | float:
    """A JSON number written with a fraction or an exponent: the integer it is when whole
    (100.0, 1e2), as JSON Schema's integer counts it, so that a sale sent with 100.0 and retried
    with 100 is the same body (its fingerprint), not transaction_id_reused; else the float,
    which an integer's schema refuses. Exact (Decimal) below 2**63 only: "1e999999" is never
    made a million-digit int."""
    value = float(text)
    if not value.is_integer() or abs(value) >= WHOLE_LIMIT:
        return value
    exact = decimal.Decimal(text)
    return int(exact) if exact == exact.to_integral_value() else value


def store_problem(exc: StoreError) -> ApiError:
    """A store error as the status a developer expects."""
    if isinstance(exc, NotEnoughPoints):
        return ApiError(409, exc.detail, reason=exc.reason, balance=exc.balance)
    if isinstance(exc, Conflict):
        return ApiError(409, exc.detail, reason=exc.reason)
    if isinstance(exc, NotFound):
        return ApiError(404, str(exc))
    if isinstance(exc, InvalidInput | InvalidSetting):
        return ApiError(422, exc.reason, field=exc.field)
    return ApiError(422, str(exc))


def database_problem(exc: Exception) -> ApiError | None:
    """A value the database refused (a number beyond its column, a text too long): the input
    was out of range, not the server broken. None for anything else."""
    orig = getattr(exc, "orig", exc)
    code = str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")
    # SQLSTATE class 22 is "data exception"; SQLite's driver raises OverflowError instead.
    if isinstance(exc, DataError) or code.startswith("22") or isinstance(orig, OverflowError):
        log.warning("a value was out of range for the database: %s", orig)
        return ApiError(422, "a value is out of range")
    return None
