"""Twilio's webhooks: an inbound SMS (signature checked, the turn run once, the reply as TwiML)
and the status callbacks of the messages Klubb sent."""

from __future__ import annotations

import functools
import logging
import re
import time

from aiohttp import web
from multidict import MultiDict
from sqlalchemy.orm import Session
from twilio.request_validator import compare
from twilio.twiml.messaging_response import MessagingResponse

import locales
from bot import metrics
from bot.forms import FormUnreadable, posted_form
from bot.keys import CLUBS, DB, SETTINGS, VALIDATOR
from flows.conversation import (
    InboundText,
    TurnResult,
    UnknownClub,
    handle_text,
    replay,
    turn_reads,
)
from store.clock import utc_now
from store.clubs.directory import ClubDirectory
from store.database import ReadsFirst
from store.members.phones import club_number, to_e164
from store.messages import SeenBefore
from store.outreach import delivery
from store.reports import mask
from store.text import REASON, is_text

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

FORM = "application/x-www-form-urlencoded"
REQUIRED = ("From", "To", "MessageSid")
STATUS_REQUIRED = ("MessageSid", "MessageStatus", "From")
MAX_SID = 64
# A status word and Twilio's numeric error code. Twilio adds statuses over time (read,
# canceled, partially_delivered...); any word is acknowledged, only delivered, undelivered and
# failed change a row, and one longer than the receipts' column (KEPT_STATUS) is not kept.
_STATUS = re.compile(r"[a-z_]{1,40}")
KEPT_STATUS = 12
_ERROR_CODE = re.compile(r"[0-9]{1,10}")
# A text answered with an error before any turn (a form, a signature that is wrong).
REFUSED = "refused"


@routes.post("/sms/twilio")
async def inbound_sms(request: web.Request) -> web.Response:
    """A text from a member, as Twilio posts it; counted whatever the answer (bot.metrics)."""
    started = time.perf_counter()
    response, outcome, result = await _answer_text(request)
    metrics.count_turn(outcome, started, result)
    return response


async def _answer_text(request: web.Request) -> tuple[web.Response, str, TurnResult | None]:
    """The answer, its outcome for the metrics, and the turn's result if it ran."""
    params = await _signed_form(request)
    if isinstance(params, web.Response):
        return params, REFUSED, None
    missing = [name for name in REQUIRED if not params.get(name, "").strip()]
    if missing:
        return _problem(400, f"missing form field: {', '.join(missing)}"), REFUSED, None
    sender = to_e164(params["From"])
    if sender is None:
        problem = _problem(400, f"From is not a phone number: {params['From'][:40]!r}")
        return problem, REFUSED, None
    receiver = club_number(params["To"])
    if receiver is None:
        problem = _problem(400, f"To is not a phone number or short code: {params['To'][:40]!r}")
        return problem, REFUSED, None
    sid = _message_sid(params)
    if isinstance(sid, web.Response):
        return sid, REFUSED, None
    text = InboundText(
        provider_sid=sid,
        from_number=sender,
        to_number=receiver,
        body=readable(params.get("Body", "")),
        received_at=utc_now(),
    )
    clubs, public_url = request.app[CLUBS], request.app[SETTINGS].public_url
    turn = ReadsFirst(
        functools.partial(_turn, text=text, clubs=clubs, public_url=public_url),
        functools.partial(turn_reads, text=text, clubs=clubs),
    )
    try:
        try:
            # By sender: one number's texts go to one writer (PostgreSQL), in the order they came.
            result = await request.app[DB].turn(turn, key=sender)
        except SeenBefore:
            # A retry is answered inside the turn, looked up first; this is one that raced its
            # first delivery (committed meanwhile): answered as the first time, no effect twice.
            result = await request.app[DB].run(functools.partial(_replay, text=text))
    except Exception:
        # Never a stack trace to a member: log the whole text (so nothing is lost) and apologise.
        # The number masked (bot.logs masks any left in a line); the text kept at ERROR.
        log.exception("turn failed for %s from %s: %r", sid, mask(sender), text.body[:1600])
        apology = locales.render("error.try_again", locales.language_for_phone(sender))
        return twiml(apology), "failed", None
    if isinstance(result, UnknownClub):
        problem = _problem(404, f"no club answers on To number {result.number}")
        return problem, "unknown_club", None
    return twiml(result.reply), metrics.outcome_of(result), result


def _turn(
    session: Session, *, text: InboundText, clubs: ClubDirectory, public_url: str
) -> TurnResult | UnknownClub:
    """The text's turn, or the refusal that no club answers on its To number. The refusal is
    an answer kept as a value, not raised: it comes before the turn changes anything, so the
    other turns committed with it (a SQLite group) go on instead of running again apart."""
    try:
        return handle_text(session, text, clubs, public_url=public_url)
    except UnknownClub as unknown:
        return unknown


def _replay(session: Session, *, text: InboundText) -> TurnResult | UnknownClub:
    """`replay`, with the unknown club as a value like `_turn`'s."""
    try:
        return replay(session, text)
    except UnknownClub as unknown:
        return unknown


@routes.post("/sms/twilio/status")
async def message_status(request: web.Request) -> web.Response:
    """What the carrier said of a message Klubb sent (queued, sent, delivered, undelivered...),
    as Twilio posts it to the StatusCallback the gateway gave. Posted twice, it counts once."""
    params = await _signed_form(request)
    if isinstance(params, web.Response):
        return params
    missing = [name for name in STATUS_REQUIRED if not params.get(name, "").strip()]
    if missing:
        return _problem(400, f"missing form field: {', '.join(missing)}")
    sid = _message_sid(params)
    if isinstance(sid, web.Response):
        return sid
    status = params["MessageStatus"].strip().lower()
    if not _STATUS.fullmatch(status):
        return _problem(400, f"MessageStatus is not a status: {status[:40]!r}")
    error_code = params.get("ErrorCode", "").strip() or None
    if error_code is not None and not _ERROR_CODE.fullmatch(error_code):
        return _problem(400, f"ErrorCode is not a number: {error_code[:40]!r}")
    sender = club_number(params["From"])
    if sender is None:
        return _problem(400, f"From is not a phone number or short code: {params['From'][:40]!r}")
    if len(status) > KEPT_STATUS:
        # Twilio's, and signed: a 4xx would be an error in its debugger for every message.
        log.info("status %r of %s acknowledged, not kept", status, sid)
        return web.Response(status=204)
    clubs = request.app[CLUBS]
    now = utc_now()

    def record(session: Session) -> bool:
        """Whether a club sends from `sender` (the receipt is then recorded): an unknown club
        is an answer, so it never makes the group of turns run again apart."""
        program = clubs.by_number(session, sender)
        if program is None:
            return False
        delivery.record_receipt(
            session,
            program_id=program.id,
            provider_id=sid,
            status=status,
            error_code=error_code,
            now=now,
        )
        return True

    if not await request.app[DB].turn(record):
        return _problem(404, f"no club sends from From number {sender}")
    return web.Response(status=204)


async def _signed_form(request: web.Request) -> dict[str, str] | web.Response:
    """The posted form if Twilio signed it for our public URL, else the problem to answer."""
    if request.content_type != FORM:
        return _problem(415, f"expected {FORM}")
    try:
        form = await posted_form(request)
    except FormUnreadable as exc:  # either way nobody signed this text
        return _problem(400, exc.text or "the form could not be read")
    # A MultiDict, as Twilio's validator asks first: it signs every value of a repeated key,
    # and a plain dict costs it two caught AttributeErrors a parameter (60 µs a text, not 18).
    signed = MultiDict((key, value) for key, value in form.items() if isinstance(value, str))
    signature = request.headers.get("X-Twilio-Signature", "")
    url = request.app[SETTINGS].public_url + request.path_qs
    validator = request.app[VALIDATOR]
    # Twilio signs the address it was given, our public URL as written: one HMAC checks that.
    # `validate` (two more: the URL with and without its port) only when it doesn't match.
    if not signature or not (
        compare(validator.compute_signature(url, signed), signature)
        or validator.validate(url, signed, signature)
    ):
        return _problem(403, "missing or wrong X-Twilio-Signature")
    return dict(signed)


def _message_sid(params: dict[str, str]) -> str | web.Response:
    """The form's MessageSid, or the 400 naming what is wrong with it: both webhooks key rows
    on it, and a control character (PostgreSQL refuses a NUL) would fail their write instead
    of being refused (the status callback answered 500, a text was lost to the apology)."""
    sid = params["MessageSid"].strip()
    if len(sid) > MAX_SID:
        return _problem(400, "MessageSid is too long")
    if not is_text(sid):
        return _problem(400, f"MessageSid {REASON}")
    return sid


def readable(body: str) -> str:
    """The text with control characters a database can't keep (NUL in PostgreSQL) replaced,
    so the text is stored, not lost; line breaks and tabs stay."""
    if body.isprintable():
        return body
    return body.translate(_CONTROL)


_CONTROL = dict.fromkeys((*range(9), 11, 12, *range(14, 32), 127), "�")


def twiml(body: str | None) -> web.Response:
    return web.Response(text=_twiml_text(body), content_type="application/xml")


@functools.lru_cache(maxsize=512)
def _twiml_text(body: str | None) -> str:
    """Twilio's own TwiML for a reply: kept for replies many members get alike (help, the
    welcome, a question), as building it through ElementTree is 30 µs of the event loop."""
    response = MessagingResponse()
    if body:
        response.message(body)
    return str(response)


def _problem(status: int, detail: str) -> web.Response:
    return web.json_response({"error": detail}, status=status)
