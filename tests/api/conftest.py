"""Fixtures for the API: a till with a key of the demo club, a member, a second club."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.orm import Session

from bot.cli.demo import DEMO_QUESTIONS
from store.clubs import apikeys, programs
from store.database import Database
from store.loyalty import coupons
from store.models import Program
from tests.conftest import create_club, now

API = "/api/v1"
PHONE = "+4791234567"
OTHER_NUMBER = "3030"


async def create_key(
    db: Database,
    program_id: int,
    *,
    name: str = "till-1",
    scopes: Iterable[str] = apikeys.SCOPES,
    store: str | None = None,
) -> str:
    """A new key's secret, as `klubb apikey create` prints it."""

    def work(session: Session) -> str:
        _, secret = apikeys.create(
            session, program_id, name=name, now=now(), store=store, scopes=scopes
        )
        return secret

    return await db.run(work)


async def revoke_key(db: Database, program_id: int, name: str) -> None:
    await db.run(lambda session: apikeys.revoke(session, program_id, name, now()))


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: Mapping[str, str]


class Till:
    """A POS talking to the API with one key: what it sends and what comes back."""

    def __init__(self, client: TestClient, key: str | None) -> None:
        self.client = client
        self.key = key

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        sent = dict(headers or {})
        if self.key is not None:
            sent.setdefault("Authorization", f"Bearer {self.key}")
        data = raw if raw is not None else None if body is None else json.dumps(body)
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        response = await self.client.request(method, API + path, data=data, headers=sent)
        text = await response.text()
        assert response.content_type == "application/json", text
        return Answer(response.status, json.loads(text), response.headers)

    async def get(self, path: str, **kwargs: Any) -> Answer:
        return await self.call("GET", path, **kwargs)

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> Answer:
        return await self.call("POST", path, body, **kwargs)

    async def enrol(self, phone: str = PHONE, **fields: Any) -> Answer:
        body = {"phone": phone, "consent": {"evidence": "receipt 1234, box ticked"}, **fields}
        return await self.post("/members", body)

    async def buy(
        self, member_id: int, transaction_id: str, *amounts: int, **fields: Any
    ) -> Answer:
        lines = [{"sku": f"SKU-{i}", "qty": 1, "amount_minor": a} for i, a in enumerate(amounts)]
        body = {"transaction_id": transaction_id, "member_id": member_id, "lines": lines, **fields}
        return await self.post("/purchases", body)


@pytest.fixture
async def quiet_club(db: Database) -> int:
    """The demo club without profile questions."""
    return await create_club(db, questions=[])


@pytest.fixture
async def key(db: Database, club: int) -> str:
    return await create_key(db, club, store="oslo-1")


@pytest.fixture
def till(client: TestClient, key: str) -> Till:
    return Till(client, key)


@pytest.fixture
async def member(till: Till) -> dict[str, Any]:
    """A Norwegian customer enrolled at the till (the demo club asks three questions by SMS)."""
    answer = await till.enrol()
    assert answer.status == 201, answer.body
    return answer.body


@pytest.fixture
async def other_club(db: Database) -> int:
    """A second club on its own number, with its own members and keys."""

    def work(session: Session) -> int:
        program = programs.create(
            session,
            name="Kaffebaren",
            numbers=[OTHER_NUMBER],
            country="SE",
            contact="hej@kaffebaren.se",
            privacy_url="https://kaffebaren.se/privacy",
            now=now(),
        )
        for question in DEMO_QUESTIONS[:1]:
            programs.add_question(session, program, **question)
        return program.id

    return await db.run(work)


async def issue_coupon(
    db: Database,
    program_id: int,
    member_id: int,
    *,
    valid_days: int = 30,
    source: str | None = None,
    at: dt.datetime | None = None,
) -> str:
    """A campaign coupon (10 % off) for the member; its code as stored (ABCD2345)."""

    def work(session: Session) -> str:
        program = session.get(Program, program_id)
        assert program is not None
        template = coupons.template_for(session, program_id, coupons.CAMPAIGN)
        if template is None:
            template = coupons.create_template(
                session,
                program,
                key="ten-off",
                kind=coupons.CAMPAIGN,
                benefit={"nb": "10 % rabatt", "sv": "10 % rabatt", "en": "10% off"},
                valid_days=valid_days,
                discount_percent=10,
            )
        reason = source or f"test:{member_id}:{dt.datetime.now(dt.UTC).timestamp()}"
        return coupons.issue(session, program_id, member_id, template, reason, at or now()).code

    return await db.run(work)
