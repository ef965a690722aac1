"""The inbox pages: texts Klubb could not answer, a conversation with the member's context, a
staff reply by SMS (store.outreach.inbox holds the rule) and "done". Owner and staff alike."""

from __future__ import annotations

import functools
import json
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from bot.admin import saved_replies
from bot.admin.auth import ADMIN, Admin, is_action
from bot.admin.render import local_date, local_moment, page, path_id
from bot.keys import DB, INBOX_COUNTS
from locales import sms
from store import retention
from store.clock import utc_now
from store.clubs import programs
from store.errors import NotFound
from store.loyalty import coupons
from store.models import Program
from store.outreach import inbox
from store.reports import mask

routes = web.RouteTableDef()

PAGE_SIZE = 50
MAX_REPLY = 1600  # the textarea's limit; the store refuses more than inbox.MAX_SEGMENTS SMS


@routes.get("/inbox")
async def listing(request: web.Request) -> web.StreamResponse:
    admin = request[ADMIN]
    show = request.query.get("show", "open")
    if show not in inbox.SHOWS:
        show = "open"
    query = request.query.get("q", "")[: inbox.MAX_QUERY]

    def read(session: Session) -> list[dict[str, Any]]:
        program = _program(session, admin)
        found = inbox.conversations(session, program, show=show, query=query, limit=PAGE_SIZE)
        return [
            {
                "id": c.id,
                "who": c.name or _number(admin, c.number),
                "number": _number(admin, c.number) if c.name else None,
                "member": c.member_id is not None,
                "last_at": local_moment(request, c.last_at),
                "last_body": c.last_body,
                "state": str(c.state),
            }
            for c in found
        ]

    rows = await request.config_dict[DB].read(read)
    return page(
        request,
        "inbox.html",
        section="inbox",
        rows=rows,
        show=show,
        shows=inbox.SHOWS,
        query=query,
        marked=request.query.get("marked") == "1",
    )


@routes.get(r"/inbox/{conversation_id:\d+}")
async def conversation(request: web.Request) -> web.StreamResponse:
    return await _show(request, path_id(request, "conversation_id"))


@routes.post(r"/inbox/{conversation_id:\d+}/reply")
async def reply(request: web.Request) -> web.StreamResponse:
    """Send the staff reply typed on the page; a refusal shows the page again saying why."""
    admin = request[ADMIN]
    conversation_id = path_id(request, "conversation_id")
    form = await request.post()
    text = str(form.get("text", ""))[:MAX_REPLY]

    def work(session: Session) -> None:
        inbox.reply(
            session,
            _program(session, admin),
            conversation_id,
            account_id=admin.account_id,
            text=text,
            now=utc_now(),
        )

    try:
        await request.config_dict[DB].run(work)
    except NotFound as exc:
        raise web.HTTPNotFound() from exc
    except inbox.ReplyRefused as exc:
        return await _show(request, conversation_id, refused=exc.reason, text=text, status=409)
    raise web.HTTPSeeOther(f"/admin/inbox/{conversation_id}?sent=1#reply")


@routes.post(r"/inbox/{conversation_id:\d+}/done")
async def done(request: web.Request) -> web.StreamResponse:
    admin = request[ADMIN]
    conversation_id = path_id(request, "conversation_id")

    def work(session: Session) -> None:
        inbox.mark_done(session, _program(session, admin), conversation_id, utc_now())

    try:
        await request.config_dict[DB].run(work)
    except NotFound as exc:
        raise web.HTTPNotFound() from exc
    raise web.HTTPSeeOther("/admin/inbox?marked=1")


async def navigation(request: web.Request) -> dict[str, Any]:
    """The unanswered count every signed-in page shows beside "Inbox" (a Jinja context
    processor: it runs after the guard, which has put the account on the request)."""
    admin = request.get(ADMIN)
    # Only a page read needs it: an action mostly redirects (its error page goes without it).
    if admin is None or is_action(request):
        return {}

    counts = request.config_dict[INBOX_COUNTS]

    def count(session: Session) -> int:
        program = programs.get(session, admin.program_id)
        # Counted again only when a text, a reply, a "done" or an erasure may have moved it.
        return 0 if program is None else counts.count(session, program)

    return {"inbox_unanswered": await request.config_dict[DB].read(count)}


# --- the conversation's page -------------------------------------------------------------------


async def _show(
    request: web.Request,
    conversation_id: int,
    *,
    refused: str | None = None,
    text: str = "",
    status: int = 200,
) -> web.Response:
    admin = request[ADMIN]

    def read(session: Session) -> dict[str, Any]:
        program = _program(session, admin)
        try:
            opened = inbox.open_conversation(session, program, conversation_id, utc_now())
        except NotFound as exc:
            raise web.HTTPNotFound() from exc
        # The saved replies, each filled in for this member (the picker; ?template=ID fills
        # the box without JavaScript).
        saved = saved_replies.for_conversation(session, program, opened.context)
        return _shaped(request, opened, program) | {"saved": saved}

    shown = await request.config_dict[DB].read(read)
    chosen = saved_replies.picked(shown["saved"], request.query.get("template"))
    if chosen is not None and not text:
        text = chosen["text"]
    return page(
        request,
        "inbox_conversation.html",
        status=status,
        section="inbox",
        c=shown,
        refused=refused,
        text=text,
        sent=request.query.get("sent") == "1",
        picked=chosen["id"] if chosen is not None else None,
        max_reply=MAX_REPLY,
        counter_json=json.dumps(_counter_data(), ensure_ascii=False),
    )


def _shaped(request: web.Request, opened: inbox.Opened, program: Program) -> dict[str, Any]:
    """The conversation as the template shows it: times in the club's zone, numbers masked
    for staff; a staff reply's `sent_by` is None once its account was removed; `removed`: the
    months after which a text without a body lost it (data retention), else None."""
    now = utc_now()
    admin = request[ADMIN]
    line, context = opened.conversation, opened.context
    return {
        "id": line.id,
        "who": line.name or _number(admin, line.number),
        "number": _number(admin, line.number),
        "state": str(line.state),
        "may_reply": opened.may_reply,
        "thread": [
            {
                "way": "in" if e.kind == "in" else "out",
                "kind": e.kind,
                "at": local_moment(request, e.at),
                "body": e.body,
                "removed": program.retention_months
                if e.body is None and retention.removed(program, now, e.at, e.status)
                else None,
                "not_understood": e.not_understood,
                "status": e.status,
                "delivery": e.delivery,
                "delivery_error": e.delivery_error,
                "staff": e.staff,
                "sent_by": e.sent_by,
            }
            for e in opened.thread
        ],
        "context": {
            "member_id": context.member_id,
            "name": context.name,
            "status": context.status,
            "language": context.language,
            "tier": context.tier,
            "points": context.points,
            "last_purchase": local_date(request, context.last_purchase_at),
            "coupons": [
                {"code": coupons.display(v.code), "until": local_date(request, v.valid_until)}
                for v in context.coupons
            ],
        },
    }


def _number(admin: Admin, number: str) -> str:
    """The number as this account may see it: whole for the owner, masked for staff."""
    return number if admin.is_owner else (mask(number) or "")


def _program(session: Session, admin: Admin) -> Program:
    program = programs.get(session, admin.program_id)
    if program is None:
        raise web.HTTPNotFound()
    return program


@functools.cache
def _counter_data() -> dict[str, Any]:
    """What inbox.js needs to size a reply as locales.sms does: the GSM-7 alphabet, its
    extension and the typographic replacements to_gsm7 makes."""
    return {
        "basic": "".join(sorted(sms.GSM7_BASIC)),
        "extension": "".join(sorted(sms.GSM7_EXTENSION)),
        "replace": {chr(code): text or "" for code, text in sms.REPLACE_ONE.items()},
        "expand": {chr(code): text for code, text in sms.REPLACE_MANY.items()},
    }
