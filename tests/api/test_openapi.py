"""The OpenAPI document matches the handlers, and generated requests get what it promises."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.orm import Session

from bot.api import schemas
from bot.api.routes import PREFIX, ROUTES
from bot.app import create_app
from bot.cli.demo import DEMO_CLUB, DEMO_QUESTIONS
from bot.settings import Settings
from store.clubs import apikeys, programs
from store.database import open_database
from store.loyalty import coupons
from store.members import enrolment
from tests.api.conftest import API
from tests.conftest import now

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = 30


class TestDocument:
    async def test_every_route_is_in_the_document_and_served(self, client: Any, club: int) -> None:
        document = await (await client.get(API + "/openapi.json")).json()
        listed = {
            (method.upper(), path)
            for path, operations in document["paths"].items()
            for method in operations
        }
        assert listed == {(op.method, op.path) for op in ROUTES}
        assert document["servers"] == [{"url": PREFIX}]
        assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"

    async def test_request_bodies_are_the_schemas_the_handlers_validate_with(
        self, client: Any, club: int
    ) -> None:
        document = await (await client.get(API + "/openapi.json")).json()
        assert document["components"]["schemas"] == schemas.SCHEMAS
        for op in ROUTES:
            entry = document["paths"][op.path][op.method.lower()]
            if op.body is None:
                assert "requestBody" not in entry
                continue
            ref = entry["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref == f"#/components/schemas/{op.body}"
            assert "422" in entry["responses"]
            assert "401" in entry["responses"]

    async def test_every_error_status_uses_the_error_schema(self, client: Any, club: int) -> None:
        document = await (await client.get(API + "/openapi.json")).json()
        for path, operations in document["paths"].items():
            for method, entry in operations.items():
                for status, response in entry["responses"].items():
                    schema = response["content"]["application/json"]["schema"]["$ref"]
                    if int(status) >= 400:
                        assert schema.endswith("/Error"), (method, path, status)


@dataclass
class LiveServer:
    """Klubb serving on a loopback port from a thread of its own (schemathesis is synchronous)."""

    url: str
    key: str
    member_id: int
    code: str


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[LiveServer]:
    path = tmp_path_factory.mktemp("live") / "klubb.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    key, member_id, code = asyncio.run(_seed(url))
    loop = asyncio.new_event_loop()
    started = threading.Event()
    address: list[str] = []
    runner = web.AppRunner(create_app(Settings(database_url=url, run_scheduler=False)))

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        host, port = runner.addresses[0][:2]
        address.append(f"http://{host}:{port}")
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, name="klubb-live-server", daemon=True)
    thread.start()
    assert started.wait(10), "the server did not start"
    try:
        yield LiveServer(address[0], key, member_id, code)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


async def _seed(url: str) -> tuple[str, int, str]:
    """The demo club, a key with every scope, a member and a coupon of theirs."""

    def work(session: Session) -> tuple[str, int, str]:
        program = programs.create(session, **DEMO_CLUB, now=now())
        for question in DEMO_QUESTIONS:
            programs.add_question(session, program, **question)
        _, secret = apikeys.create(session, program.id, name="fuzzer", now=now())
        member = enrolment.enrol(
            session,
            program,
            "+4791234567",
            wording_id="enrol.confirmed",
            wording_language="nb",
            wording_text="-",
            channel="pos",
            evidence="test",
            now=now(),
        ).member
        template = coupons.create_template(
            session,
            program,
            key="ten-off",
            kind=coupons.CAMPAIGN,
            benefit={"en": "10% off"},
            valid_days=30,
            discount_percent=10,
        )
        code = coupons.issue(session, program.id, member.id, template, "fuzz", now()).code
        return secret, member.id, code

    db = open_database(url)
    try:
        return await db.run(work)
    finally:
        await db.close()


@pytest.fixture(scope="module")
def document(live: LiveServer) -> Any:
    return schemathesis.openapi.from_url(live.url + API + "/openapi.json")


def _fixed(live: LiveServer) -> dict[str, Any]:
    """Path parameters that name things that exist, so success answers are generated too."""
    return {"member_id": live.member_id, "code": live.code, "transaction_id": "T-1"}


# Each operation with generated parameters, and again with path parameters that name a member,
# a coupon or a purchase that exists (random ones would almost never reach a success).
RUNS = [(op.operation_id, False) for op in ROUTES] + [
    (op.operation_id, True) for op in ROUTES if any(p.where == "path" for p in op.params)
]


@pytest.mark.parametrize(
    ("operation_id", "existing"),
    RUNS,
    ids=[f"{op}-{'existing' if existing else 'any'}" for op, existing in RUNS],
)
def test_generated_requests_get_documented_answers(
    live: LiveServer, document: Any, operation_id: str, existing: bool
) -> None:
    """Valid requests generated from the document, sent with a valid key: never a 5xx, and
    every answer's status, content type, headers and body are as the document says."""
    operation = document.find_operation_by_label(_label(operation_id))
    assert operation is not None, operation_id
    wanted = {p.name for op in ROUTES if op.operation_id == operation_id for p in op.params}
    fixed = {k: v for k, v in _fixed(live).items() if k in wanted} if existing else None
    headers = {"Authorization": f"Bearer {live.key}"}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(path_parameters=fixed))
    def check(case: Any) -> None:
        response = case.call(base_url=live.url + PREFIX, headers=headers)
        case.validate_response(response, checks=CHECKS, headers=headers)

    check()


def _label(operation_id: str) -> str:
    [op] = [op for op in ROUTES if op.operation_id == operation_id]
    return f"{op.method} {op.path}"
