"""Saved texts in the admin: the owner words them per language (/admin/templates: list, new,
edit, delete). Saved replies: staff see them and pick one in an inbox conversation. Broadcast
texts (?purpose=broadcast, owner only): the campaign form fills its texts from one
(store.outreach.templates holds the rules). The module is not named templates.py: that is the
Jinja folder beside it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from bot.admin.auth import ADMIN, LANGUAGE, owner_only
from bot.admin.render import page, path_id, render_text
from bot.keys import DB
from locales import LANGUAGES
from store.clock import utc_now
from store.clubs import programs
from store.errors import NotFound
from store.models import MessageTemplate, Program
from store.outreach import inbox, templates

routes = web.RouteTableDef()

MAX_FIELD = 2000  # a form's text as read; the store refuses more than templates.MAX_TEXT
LISTING = "/admin/templates"


@routes.get("/templates")
async def listing(request: web.Request) -> web.StreamResponse:
    """The club's saved replies: everyone sees them, only the owner gets the edit links; and,
    for the owner (campaigns are theirs), the broadcast texts."""
    admin = request[ADMIN]

    def read(session: Session) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        program = _program(session, admin.program_id)
        replies = [_shown(t) for t in templates.of_club(session, program)]
        texts = (
            [_shown(t) for t in templates.of_club(session, program, templates.BROADCAST)]
            if admin.is_owner
            else []
        )
        return replies, texts

    rows, broadcasts = await request.config_dict[DB].read(read)
    return page(
        request,
        "templates.html",
        section="inbox",
        rows=rows,
        broadcasts=broadcasts,
        languages=LANGUAGES,
        saved=request.query.get("saved") == "1",
        deleted=request.query.get("deleted") == "1",
    )


@routes.get("/templates/new")
@owner_only
async def new(request: web.Request) -> web.StreamResponse:
    return _form(
        request,
        None,
        {"name": "", "texts": dict.fromkeys(LANGUAGES, "")},
        purpose=_purpose(request.query),
    )


@routes.post("/templates")
@owner_only
async def create(request: web.Request) -> web.StreamResponse:
    return await _save(request, None)


@routes.get(r"/templates/{template_id:\d+}")
@owner_only
async def edit(request: web.Request) -> web.StreamResponse:
    template = await _read_one(request)
    return _form(request, template["id"], template, purpose=template["purpose"])


@routes.post(r"/templates/{template_id:\d+}")
@owner_only
async def update(request: web.Request) -> web.StreamResponse:
    return await _save(request, path_id(request, "template_id"))


@routes.get(r"/templates/{template_id:\d+}/delete")
@owner_only
async def confirm_delete(request: web.Request) -> web.StreamResponse:
    template = await _read_one(request)
    return page(request, "template_delete.html", section="inbox", saved_reply=template)


@routes.post(r"/templates/{template_id:\d+}/delete")
@owner_only
async def delete(request: web.Request) -> web.StreamResponse:
    admin = request[ADMIN]
    template_id = path_id(request, "template_id")
    purpose = _purpose(await request.post())

    def work(session: Session) -> None:
        templates.delete(session, _program(session, admin.program_id), template_id, purpose)

    try:
        await request.config_dict[DB].run(work)
    except NotFound as exc:
        raise web.HTTPNotFound() from exc
    raise web.HTTPSeeOther(f"{LISTING}?deleted=1")


def for_broadcast(session: Session, program: Program) -> list[dict[str, Any]]:
    """The club's broadcast texts as the campaign form offers them: id, name and the text per
    language as written (the form's texts take them, placeholders and all)."""
    return [_shown(t) for t in templates.of_club(session, program, templates.BROADCAST)]


def for_conversation(
    session: Session, program: Program, member: inbox.Context
) -> list[dict[str, Any]]:
    """The club's saved replies as the inbox's picker offers them: each filled in for the
    member of the conversation (their language, their name, points and tier)."""
    return [
        {
            "id": t.id,
            "name": t.name,
            "text": templates.fill(t, member.language, member, program.name),
        }
        for t in templates.of_club(session, program)
    ]


def picked(saved: list[dict[str, Any]], wanted: str | None) -> dict[str, Any] | None:
    """The saved reply a conversation's page was asked for (?template=ID): None for none, or
    for an id that is no saved reply of the club (the page shows without it)."""
    if not wanted or not wanted.isdigit():
        return None
    return next((s for s in saved if str(s["id"]) == wanted), None)


# --- helpers ----------------------------------------------------------------------------------


async def _save(request: web.Request, template_id: int | None) -> web.StreamResponse:
    """Create or change a saved reply from the posted form; a refusal shows the form again with
    each rule broken beside its field (422), nothing saved."""
    admin = request[ADMIN]
    form = await request.post()
    name = _field(form, "name")
    texts = {lang: _field(form, f"text_{lang}") for lang in LANGUAGES}
    purpose = _purpose(form)

    def work(session: Session) -> None:
        templates.save(
            session,
            _program(session, admin.program_id),
            name=name,
            texts=texts,
            now=utc_now(),
            template_id=template_id,
            purpose=purpose,
        )

    try:
        await request.config_dict[DB].run(work)
    except NotFound as exc:
        raise web.HTTPNotFound() from exc
    except templates.TemplateRefused as exc:
        errors = _errors(request[LANGUAGE], exc)
        values = {"name": name, "texts": texts}
        return _form(request, template_id, values, errors, status=422, purpose=purpose)
    raise web.HTTPSeeOther(f"{LISTING}?saved=1")


def _form(
    request: web.Request,
    template_id: int | None,
    values: Mapping[str, Any],
    errors: Mapping[str, tuple[str, dict[str, Any]]] | None = None,
    status: int = 200,
    purpose: str = templates.REPLY,
) -> web.Response:
    return page(
        request,
        "template_form.html",
        status=status,
        section="inbox",
        template_id=template_id,
        purpose=purpose,
        placeholders=sorted(templates.PLACEHOLDERS[purpose]),
        form=values,
        errors=errors or {},
        languages=LANGUAGES,
        max_name=templates.MAX_NAME,
        max_text=templates.MAX_TEXT,
    )


def _errors(
    language: str, refused: templates.TemplateRefused
) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each rule broken as (message id, params) under the form field it is about; a text's
    says its language, in the admin's words."""
    errors: dict[str, tuple[str, dict[str, Any]]] = {}
    for problem in refused.problems:
        field = problem.field.replace("texts.", "text_")
        params = dict(problem.params)
        if "language" in params:  # `t` takes the page's own language as `language`
            params["lang"] = render_text(language, "admin.templates.lang." + params.pop("language"))
        errors.setdefault(field, ("admin.templates.error." + problem.code, params))
    return errors


async def _read_one(request: web.Request) -> dict[str, Any]:
    admin = request[ADMIN]
    template_id = path_id(request, "template_id")
    purpose = _purpose(request.query)

    def read(session: Session) -> dict[str, Any]:
        try:
            program = _program(session, admin.program_id)
            found = templates.get(session, program, template_id, purpose)
        except NotFound as exc:
            raise web.HTTPNotFound() from exc
        return _shown(found)

    return await request.config_dict[DB].read(read)


def _shown(template: MessageTemplate) -> dict[str, Any]:
    texts = template.texts or {}
    return {
        "id": template.id,
        "name": template.name,
        "purpose": template.purpose,
        "texts": {lang: str(texts.get(lang, "")) for lang in LANGUAGES},
    }


def _purpose(given: Mapping[str, Any]) -> str:
    """The kind of saved text a page is about (?purpose= or the form's): a reply unless it says
    broadcast; anything else reads as a reply (the page for replies, not an error)."""
    return templates.BROADCAST if given.get("purpose") == templates.BROADCAST else templates.REPLY


def _field(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name, "")
    return value[:MAX_FIELD] if isinstance(value, str) else ""


def _program(session: Session, program_id: int) -> Program:
    program = programs.get(session, program_id)
    if program is None:
        raise web.HTTPNotFound()
    return program
