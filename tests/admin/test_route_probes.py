"""Every admin route a signed-in owner can post to, probed with a form that lacks every field
and with one whose fields are all junk, and every page with a junk query: each answers with a
refusal or a page, never a 500."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp import web

from tests.admin.conftest import OWNER, Admin

_PARAM = re.compile(r"\{[^}]+\}")
JUNK = {
    "name": "Ø" * 300,
    "prompt_nb": "x" * 5000,
    "amount": "-1e999",
    "every": "²",
    "date": "31.02.2026",
    "segment": "{",
    "text_nb": "",
    "role": "root",
    "email": "not-an-email",
    "direction": "sideways",
}


def _paths(app: web.Application, method: str = "POST", fill: str = "1") -> list[str]:
    """Every route of the admin for `method`, its ids filled with `fill` (1: the first of each
    kind)."""
    paths = set()
    for sub in [app, *(r._app for r in app.router.resources() if hasattr(r, "_app"))]:
        for route in sub.router.routes():
            info = route.resource.get_info() if route.resource else {}
            path = info.get("formatter") or info.get("path")
            if route.method == method and path and path.startswith("/admin"):
                paths.add(_PARAM.sub(fill, path))
    return sorted(paths)


@pytest.mark.parametrize("body", ["empty", "junk"])
async def test_no_admin_post_answers_500(
    admin: Admin, club: int, owner: int, body: str, caplog: Any
) -> None:
    await admin.signed_in(OWNER)
    paths = _paths(admin.client.server.app)
    assert len(paths) > 20, paths
    failures = []
    for path in paths:
        if "sign-out" in path:
            continue  # would end the probing session
        response = await admin.post(path, {} if body == "empty" else dict(JUNK))
        if response.status >= 500:
            failures.append(f"{path}: {response.status}")
    assert not failures, failures
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


JUNK_QUERY = {
    "page": "²",
    "purchases_page": "-1",
    "messages_page": "9" * 40,
    "from": "31.02.2026",
    "to": "junk",
    "period": "forever",
    "q": "ÿ" * 300,
    "members": "1,x,,3",
    "segment": "{",
}


async def test_no_admin_page_answers_500_to_a_junk_query(
    admin: Admin, club: int, owner: int, caplog: Any
) -> None:
    await admin.signed_in(OWNER)
    paths = _paths(admin.client.server.app, "GET")
    assert len(paths) > 10, paths
    failures = []
    for path in paths:
        if "sign-out" in path:
            continue
        response = await admin.client.get(path, params=JUNK_QUERY, allow_redirects=False)
        if response.status >= 500:
            failures.append(f"{path}: {response.status}")
    assert not failures, failures
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


@pytest.mark.parametrize("value", ["abc\x00", "\x00a\x07b\x1bc\x7f"])
async def test_a_query_with_what_is_not_text_is_sent_on_without_it(
    admin: Admin, club: int, owner: int, value: str, caplog: Any
) -> None:
    """A NUL (PostgreSQL refuses it as a parameter: the members' and the inbox's search and a
    campaign's ?segment= were a 500 there) or another control character in any parameter of
    any page: sent to the same query without it, as a hand-edited URL gets a page; an action
    with one is refused naming it, as a form's field is. (%FF in a query reads as U+FFFD,
    which is text.)"""
    await admin.signed_in(OWNER)
    failures = []
    for path in _paths(admin.client.server.app, "GET"):
        if path in ("/admin", "/admin/sign-out"):
            continue  # /admin is a redirect to /admin/, which is probed
        for name in ("q", "segment", "template", "gifted", "show", "purpose", "next"):
            query = {"page": "1", name: value}
            response = await admin.client.get(path, params=query, allow_redirects=False)
            cleaned = f"{path}?page=1&{name}=abc"
            if response.status != 303 or response.headers["Location"] != cleaned:
                failures.append(f"{path} {name}: {response.status}")
            followed = await admin.client.get(path, params=query)
            if followed.status >= 500:
                failures.append(f"{path} {name} followed: {followed.status}")
    assert not failures, failures
    action = await admin.post("/admin/segments/new?q=" + value, {"name": "x"})
    assert action.status == 422
    assert (await action.json())["error"].startswith("q: is not text")
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


@pytest.mark.parametrize(
    "fill",
    [
        "9" * 5000,  # past int()'s 4,300 digits: a 500 on every route with an id
        "%D9%A1",  # ARABIC-INDIC DIGIT ONE, which int() read as 1: the first row again
        "%EF%BC%91",  # FULLWIDTH DIGIT ONE, likewise
        "9" * 20,
    ],
)
async def test_an_id_no_row_can_have_is_404_on_every_route(
    admin: Admin, club: int, owner: int, fill: str, caplog: Any
) -> None:
    """A path id that is not ASCII digits within a BIGINT's 19: 404 on every page and action
    that takes one (the owner's own account is 1, so "١" would have been found)."""
    await admin.signed_in(OWNER)
    app = admin.client.server.app
    failures = []
    for method in ("GET", "POST"):
        for path in _paths(app, method, fill):
            if fill not in path:
                continue
            if method == "GET":
                response = await admin.client.get(path, allow_redirects=False)
            else:
                response = await admin.post(path, {})
            if response.status != 404:
                failures.append(f"{method} {path[:60]}: {response.status}")
    assert not failures, failures
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
