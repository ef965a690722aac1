"""Who may call the API: a key of the club with the operation's scope; nothing of another club."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.api.auth import KeyCache
from bot.app import create_app
from bot.keys import API_KEYS
from bot.settings import Settings
from store.clubs import apikeys
from store.database import Database
from tests.api.conftest import API, Till, create_key, issue_coupon, revoke_key

# Every operation with a request it could make (its scope is in the route table).
CALLS = [
    ("POST", "/members", {"phone": "+4791234567", "consent": {"evidence": "x"}}),
    ("GET", "/members?phone=%2B4791234567", None),
    ("GET", "/members/1", None),
    ("GET", "/members/1/coupons", None),
    ("POST", "/members/1/adjustments", {"points": 5, "reason": "x"}),
    ("POST", "/purchases", {"transaction_id": "T", "member_id": 1, "lines": []}),
    ("POST", "/purchases/T/refunds", {"refund_id": "R"}),
    ("GET", "/coupons/ABCD2345", None),
    ("POST", "/coupons/ABCD2345/redeem", None),
]
SCOPE_OF = {
    "/members": "members:write",
    "/members?phone=%2B4791234567": "members:read",
    "/members/1": "members:read",
    "/members/1/coupons": "coupons:read",
    "/members/1/adjustments": "points:adjust",
    "/purchases": "purchases:write",
    "/purchases/T/refunds": "purchases:write",
    "/coupons/ABCD2345": "coupons:read",
    "/coupons/ABCD2345/redeem": "coupons:redeem",
}

WRONG_KEYS = [
    "Bearer klubb_00000000_" + "A" * 32,
    "Bearer nonsense",
    "Bearer klubb_0000'000_" + "A" * 32,
    "Basic dXNlcjpwYXNz",
    "Bearer " + "k" * 5000,
    "Bearer",
]


class TestKeys:
    async def test_no_key_is_401_with_how_to_send_one(
        self, client: TestClient, club: int, subtests: Any
    ) -> None:
        for method, path, body in CALLS:
            with subtests.test(method=method, path=path):
                answer = await Till(client, None).call(method, path, body)
                assert answer.status == 401
                assert answer.headers["WWW-Authenticate"].startswith("Bearer")
                assert "Bearer" in answer.body["error"]

    async def test_a_wrong_key_is_401(self, client: TestClient, club: int, subtests: Any) -> None:
        for header in WRONG_KEYS:
            with subtests.test(header=header[:40]):
                till = Till(client, None)
                answer = await till.get("/members/1", headers={"Authorization": header})
                assert answer.status == 401
                assert answer.headers["WWW-Authenticate"].startswith("Bearer")

    async def test_a_malformed_secret_is_unknown_on_every_database(
        self, db: Database, club: int
    ) -> None:
        """A NUL (which PostgreSQL refuses in text) is refused before any query."""
        for secret in ("klubb_0000\x00000_" + "A" * 32, "klubb_\x00_\x00", ""):
            assert await db.run(lambda session, s=secret: apikeys.verify(session, s)) is None

    async def test_every_key_made_works(self, client: TestClient, db: Database, club: int) -> None:
        """Secrets are random: some hold "_" in their random part, and those work too."""
        for i in range(30):
            key = await create_key(db, club, name=f"till-{i}", scopes=["members:read"])
            answer = await Till(client, key).get("/members/999")
            assert answer.status == 404, (key, answer.body)

    async def test_a_key_without_the_scope_is_403_naming_it(
        self, client: TestClient, db: Database, club: int, subtests: Any
    ) -> None:
        for i, (method, path, body) in enumerate(CALLS):
            with subtests.test(method=method, path=path):
                scope = SCOPE_OF[path]
                others = [s for s in set(SCOPE_OF.values()) if s != scope]
                till = Till(client, await create_key(db, club, name=f"k{i}", scopes=others))
                answer = await till.call(method, path, body)
                assert answer.status == 403
                assert answer.body["scope"] == scope
                assert scope in answer.body["error"]

    async def test_a_revoked_key_is_refused_within_the_cache_time(
        self, settings: Settings, aiohttp_client: Any, db: Database, club: int
    ) -> None:
        """A key revoked elsewhere (the CLI) works on from memory for at most `ttl` seconds,
        then is refused with 401."""
        clock = Clock()
        app = create_app(settings)
        app[API_KEYS] = KeyCache(ttl=5, clock=clock)
        till = Till(await aiohttp_client(app), await create_key(db, club))
        assert (await till.get("/members/999")).status == 404
        await revoke_key(db, club, "till-1")
        clock.now += 4.9
        assert (await till.get("/members/999")).status == 404
        clock.now += 0.2
        answer = await till.get("/members/999")
        assert answer.status == 401
        assert "revoked" in answer.body["error"]

    async def test_a_key_revoked_before_it_is_used_is_refused_at_once(
        self, client: TestClient, db: Database, club: int
    ) -> None:
        key = await create_key(db, club)
        await revoke_key(db, club, "till-1")
        assert (await Till(client, key).get("/members/999")).status == 401

    async def test_a_keys_last_use_is_recorded_at_most_once_a_minute(
        self, client: TestClient, db: Database, club: int, key: str
    ) -> None:
        def last_used(session) -> Any:
            [found] = [k for k in apikeys.of_club(session, club) if k.name == "till-1"]
            return found.last_used_at

        assert await db.run(last_used) is None
        before = dt.datetime.now(dt.UTC)
        assert (await Till(client, key).get("/members/1")).status == 404
        used = await db.run(last_used)
        assert used is not None
        assert used >= before.replace(microsecond=0) - dt.timedelta(seconds=1)

        # The store's rule: a use within the minute leaves it; a later one moves it.
        later = used + apikeys.USE_RECORDED_EVERY
        assert await db.run(lambda s: apikeys.verify(s, key, later - dt.timedelta(seconds=1)))
        assert await db.run(last_used) == used
        assert await db.run(lambda s: apikeys.verify(s, key, later))
        assert await db.run(last_used) == later

    async def test_head_is_answered_as_the_get_would_be_without_its_body(
        self, till: Till, member: dict[str, Any], subtests: Any
    ) -> None:
        """Every GET operation answers HEAD (it was a 405): the GET's status and headers, no
        body; without a key the same 401."""
        for method, path, _ in CALLS:
            if method != "GET":
                continue
            path = path.replace("/1", f"/{member['id']}")
            with subtests.test(path=path):
                got = await till.get(path)
                for key, status in ((till.key, got.status), (None, 401)):
                    headers = {"Authorization": f"Bearer {key}"} if key else {}
                    head = await till.client.head(API + path, headers=headers)
                    assert head.status == status
                    assert head.content_type == "application/json"
                    assert await head.read() == b""

    async def test_the_document_needs_no_key(self, client: TestClient, club: int) -> None:
        response = await client.get(API + "/openapi.json")
        assert response.status == 200
        assert (await response.json())["openapi"].startswith("3.1")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestOtherClubs:
    """A key reaches its own club only: another club's member, purchase or coupon is not found,
    exactly as if it did not exist."""

    @pytest.fixture
    async def theirs(self, client: TestClient, db: Database, other_club: int) -> dict[str, Any]:
        """The other club's member, a coupon of theirs and a purchase of theirs."""
        till = Till(client, await create_key(db, other_club, name="kassa-1"))
        member = (await till.enrol("+46701234567")).body
        await till.buy(member["id"], "T-1", 10000)
        code = await issue_coupon(db, other_club, member["id"])
        return {"member": member, "code": code}

    async def test_another_clubs_member_is_not_found(
        self, till: Till, theirs: dict[str, Any]
    ) -> None:
        member_id = theirs["member"]["id"]
        for path in (f"/members/{member_id}", f"/members/{member_id}/coupons"):
            assert (await till.get(path)).status == 404, path
        assert (await till.get("/members?phone=%2B46701234567")).status == 404
        adjust = {"points": 100, "reason": "x"}
        assert (await till.post(f"/members/{member_id}/adjustments", adjust)).status == 404
        buy = await till.buy(member_id, "T-2", 10000)
        assert buy.status == 404

    async def test_another_clubs_coupon_is_not_found_nor_redeemed(
        self, till: Till, client: TestClient, db: Database, other_club: int, theirs: dict[str, Any]
    ) -> None:
        code = theirs["code"]
        assert (await till.get(f"/coupons/{code}")).status == 404
        assert (await till.post(f"/coupons/{code}/redeem")).status == 404
        own = Till(client, await create_key(db, other_club, name="kassa-2"))
        assert (await own.get(f"/coupons/{code}")).body["state"] == "valid"

    async def test_another_clubs_purchase_is_not_found_and_its_id_is_free(
        self, till: Till, member: dict[str, Any], theirs: dict[str, Any]
    ) -> None:
        """Transaction ids are per club: T-1 of the other club neither refunds nor blocks ours."""
        assert (await till.post("/purchases/T-1/refunds", {"refund_id": "R"})).status == 404
        ours = await till.buy(member["id"], "T-1", 10000)
        assert ours.status == 201

    async def test_the_same_number_in_two_clubs_is_two_members(
        self, till: Till, client: TestClient, db: Database, other_club: int
    ) -> None:
        theirs = Till(client, await create_key(db, other_club, name="kassa-1"))
        ours = (await till.enrol("+46701234567")).body
        other = (await theirs.enrol("+46701234567")).body
        assert ours["id"] != other["id"]
        assert (await till.get(f"/members/{other['id']}")).status == 404


class TestBodies:
    """A body is read as JSON only when it says it is JSON."""

    @pytest.mark.parametrize(
        "content_type",
        [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/octet-stream",
            "application/jsonx",
            "text/json",
        ],
    )
    async def test_a_body_that_is_not_json_by_its_type_is_415(
        self, client: TestClient, club: int, key: str, content_type: str
    ) -> None:
        body = '{"phone": "+4791234567", "consent": {"evidence": "x"}}'
        answer = await Till(client, key).post(
            "/members", raw=body, headers={"Content-Type": content_type}
        )
        assert answer.status == 415
        assert answer.body == {"error": "send the body as Content-Type: application/json"}

    async def test_a_body_without_a_type_is_415(
        self, client: TestClient, club: int, key: str
    ) -> None:
        response = await client.post(
            API + "/members",
            data=b'{"phone": "+4791234567", "consent": {"evidence": "x"}}',
            headers={"Authorization": f"Bearer {key}"},
            skip_auto_headers=["Content-Type"],
        )
        assert response.status == 415
        assert "application/json" in (await response.json())["error"]

    @pytest.mark.parametrize(
        "content_type",
        [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON; charset=UTF-8",
            "application/vnd.klubb+json",
        ],
    )
    async def test_json_in_any_of_its_types_is_read(
        self, client: TestClient, club: int, key: str, content_type: str
    ) -> None:
        body = '{"phone": "+4791234567", "consent": {"evidence": "x"}}'
        answer = await Till(client, key).post(
            "/members", raw=body, headers={"Content-Type": content_type}
        )
        assert answer.status == 201, answer.body

    async def test_a_redemption_needs_no_body_nor_its_type(
        self, client: TestClient, db: Database, club: int, key: str
    ) -> None:
        till = Till(client, key)
        member = (await till.enrol()).body
        code = await issue_coupon(db, club, member["id"])
        response = await client.post(
            API + f"/coupons/{code}/redeem",
            headers={"Authorization": f"Bearer {key}"},
            skip_auto_headers=["Content-Type"],
        )
        assert response.status == 200, await response.text()

    async def test_a_lone_surrogate_escaped_in_json_is_422_naming_the_field(
        self, client: TestClient, club: int, key: str
    ) -> None:
        body = '{"phone": "+4791234567", "consent": {"evidence": "box \\ud800 ticked"}}'
        answer = await Till(client, key).post("/members", raw=body)
        assert answer.status == 422
        assert answer.body["field"] == "consent.evidence"


class TestKeyChecks:
    """A key the cache doesn't hold is checked once, however many requests ask at once."""

    async def test_requests_arriving_together_share_one_check(self) -> None:
        cache = KeyCache()
        checks = 0
        release = asyncio.Event()
        caller = apikeys.Caller(1, 1, "till", None, frozenset(), "NOK", "NO")

        async def verify() -> apikeys.Caller | None:
            nonlocal checks
            checks += 1
            await release.wait()
            return caller

        waiting = [asyncio.ensure_future(cache.verified("secret", verify)) for _ in range(20)]
        await asyncio.sleep(0)
        waiting[0].cancel()  # one client hangs up: the others still get their answer
        release.set()
        answers = await asyncio.gather(*waiting[1:])
        assert checks == 1
        assert answers == [caller] * 19
        assert cache.get("secret") == caller

    async def test_an_unknown_key_is_not_remembered(self) -> None:
        cache = KeyCache()

        async def verify() -> apikeys.Caller | None:
            return None

        assert await cache.verified("nope", verify) is None
        assert cache.get("nope") is None
        assert await cache.verified("nope", verify) is None
