"""The member's own page (issue 15): MIN SIDE texts a link; the page shows points, coupons as
barcodes and the member's data; leaving and deleting there are STOP and DELETE; dead links 404."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from barcode.charsets.code128 import CODES
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import select

from bot.cli.demo import set_up_loyalty
from bot.page import codes
from bot.page.routes import LIMIT, MISSES
from store.database import Database
from store.loyalty.coupons import ALPHABET
from store.members import links
from store.models import ConsentEvent, Member, MemberLink, Program
from store.states import MemberStatus
from tests.admin.test_auth import UNREADABLE
from tests.bot.test_loyalty_sms import buy
from tests.bot.test_privacy import join_fully, was_erased
from tests.conftest import Phone

LINK = re.compile(r"klubb\.example\.com(/m/([A-Za-z0-9_-]+))")
FORM = re.compile(r'action="(/m/[^"]+)"><input type="hidden" name="form" value="([0-9a-f]+)"')
COUPON = re.compile(r'<p class="code">([A-Z0-9-]+)</p>')
START_B, START_C, STOP = 104, 105, "1100011101011"


@pytest.fixture
async def shop(db: Database, club: int) -> int:
    """The demo club with the demo's coupons, rewards, tiers and punch card."""

    def work(session: Any) -> int:
        set_up_loyalty(session, session.get(Program, club))
        return club

    return await db.run(work)


async def page_link(phone: Phone, text: str = "MIN SIDE") -> tuple[str, str]:
    """Text `text`; the reply and the path of the link it carries."""
    reply = await phone.text(text)
    assert reply is not None
    found = LINK.search(reply)
    assert found is not None, reply
    return reply, found.group(1)


async def member_of(db: Database) -> Member:
    return await db.run(lambda s: s.scalars(select(Member)).one())


def decode_code128(svg: str) -> str:
    """The text a scanner reads off a Code 128 barcode drawn as the page draws it: the bars
    from the SVG path, the symbols by their widths, the check digit verified."""
    width = int(re.search(r'viewBox="0 0 (\d+) ', svg).group(1))
    modules = ["0"] * (width // 2)
    for x, w in re.findall(r"M(\d+) 0h(\d+)v", svg):
        for i in range(int(x) // 2, (int(x) + int(w)) // 2):
            modules[i] = "1"
    bars = "".join(modules).strip("0")
    assert bars.endswith(STOP)
    body = bars[: -len(STOP)]
    values = [CODES.index(body[i : i + 11]) for i in range(0, len(body), 11)]
    *data, check = values
    assert check == (data[0] + sum(i * v for i, v in enumerate(data[1:], start=1))) % 103
    assert data[0] in (START_B, START_C)
    text, code_set = "", "C" if data[0] == START_C else "B"
    for value in data[1:]:
        if code_set == "B" and value == 99:
            code_set = "C"
        elif code_set == "C" and value == 100:
            code_set = "B"
        elif code_set == "B":
            text += chr(value + 32)
        else:
            text += f"{value:02d}"
    return text


@given(st.text(alphabet=ALPHABET, min_size=8, max_size=8))
@example("99YPHJ79")
@example("99999999")
@example("9ABCDEFG")
def test_every_coupon_code_scans_as_itself(code: str) -> None:
    """The till reads the code the member was given, for any code: python-barcode's Code 128
    dropped a leading "99" (99YPHJ79 scanned as YPHJ79, 1 code in 1,000)."""
    assert decode_code128(codes.code128_svg(code, "kupong")) == code


async def forms_of(client: TestClient, path: str) -> dict[str, tuple[str, str]]:
    page = await (await client.get(path)).text()
    return {action.rsplit("/", 1)[1]: (action, token) for action, token in FORM.findall(page)}


class TestTheLink:
    async def test_min_side_answers_with_one_sms_holding_a_link_that_names_no_one(
        self, phone: Phone, db: Database
    ) -> None:
        await join_fully(phone)
        reply, path = await page_link(phone)
        assert reply.startswith("Din side i Torshov Sport: klubb.example.com/m/")
        assert len(reply) <= 160
        token = path.removeprefix("/m/")
        assert len(token) >= 16  # 96 bits or more
        # The token is all the address holds: random, kept only as its hash.
        assert "/" not in token
        assert "91234567" not in path
        assert "Kari" not in path
        kept = await db.run(lambda s: s.scalars(select(MemberLink.token_hash)).one())
        assert kept == links.token_hash(token)

    @pytest.mark.parametrize(
        "text", ["min side", "MY PAGE", "Kan jeg få lenke til siden min?", "link to my account"]
    )
    async def test_natural_ways_of_asking_get_the_link(self, phone: Phone, text: str) -> None:
        await join_fully(phone)
        await page_link(phone, text)

    async def test_a_stranger_gets_no_link(self, phone: Phone, db: Database) -> None:
        reply = await phone.text("MIN SIDE")
        assert reply is not None
        assert "/m/" not in reply
        assert "BLI MED" in reply
        assert await db.run(lambda s: s.scalars(select(MemberLink)).all()) == []

    async def test_a_new_text_gives_a_new_link_and_the_old_one_keeps_working(
        self, client: TestClient, phone: Phone
    ) -> None:
        await join_fully(phone)
        _, first = await page_link(phone)
        _, second = await page_link(phone, "MY PAGE")
        assert first != second
        for path in (first, second):
            assert (await client.get(path)).status == 200


class TestThePage:
    async def test_the_page_shows_the_member_points_and_scannable_coupons(
        self, client: TestClient, phone: Phone, db: Database, shop: int
    ) -> None:
        await join_fully(phone)
        for n in range(3):
            await buy(db, shop, phone.number, 30000, f"T{n}", category="service")
        _, path = await page_link(phone)
        response = await client.get(path)
        assert response.status == 200
        assert response.content_type == "text/html"
        page = await response.text()
        assert len(page.encode()) < 50_000
        assert "Hei, Kari!" in page
        assert "Torshov Sport" in page
        assert "900 poeng" in page
        assert "3 av 5" in page  # the punch card
        assert "<progress" in page  # towards the next tier
        assert "<script" not in page
        codes = COUPON.findall(page)
        assert codes, "the welcome coupon is on the page"
        bars = re.findall(r'<svg class="bar".*?</svg>', page)
        assert [decode_code128(svg) for svg in bars] == [c.replace("-", "") for c in codes]
        assert page.count('class="qr"') == len(codes)
        assert 'lang="nb"' in page

    async def test_the_page_is_never_cached_indexed_or_framed(
        self, client: TestClient, phone: Phone
    ) -> None:
        await join_fully(phone)
        _, path = await page_link(phone)
        response = await client.get(path)
        headers, page = response.headers, await response.text()
        assert headers["Cache-Control"] == "no-store"
        assert "noindex" in headers["X-Robots-Tag"]
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "no-referrer"
        policy = headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy
        assert "script" not in policy
        # The page's one stylesheet is allowed by its hash, and nothing else is.
        style = re.search(r"<style>(.*?)</style>", page).group(1)
        digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
        assert f"style-src 'sha256-{digest}'" in policy
        assert 'style="' not in page

    async def test_a_swedish_member_reads_the_page_in_swedish(
        self, client: TestClient, club: int
    ) -> None:
        phone = Phone(client, "+46701234567")
        await join_fully(phone, birthday="1990-03-12")
        _, path = await page_link(phone, "MIN SIDA")
        page = await (await client.get(path)).text()
        assert 'lang="sv"' in page
        assert "Dina kuponger" in page

    async def test_the_data_download_is_the_members_whole_record(
        self, client: TestClient, phone: Phone
    ) -> None:
        await join_fully(phone)
        _, path = await page_link(phone)
        response = await client.get(path + "/data.json")
        assert response.status == 200
        assert "attachment" in response.headers["Content-Disposition"]
        assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert response.headers["Cache-Control"] == "no-store"
        record = json.loads(await response.text())
        assert record["format"] == "klubb-member-export"
        assert record["member"]["phone"] == "+4791234567"
        assert record["member"]["first_name"] == "Kari"
        assert record["consent"][0]["action"] == "grant"


class TestLeavingAndDeleting:
    async def test_leaving_on_the_page_is_stop(
        self, client: TestClient, phone: Phone, db: Database
    ) -> None:
        await join_fully(phone)
        _, path = await page_link(phone)
        action, token = (await forms_of(client, path))["leave"]
        response = await client.post(action, data={"form": token})
        assert response.status == 200
        assert "START" in await response.text()
        member = await member_of(db)
        assert member.status == MemberStatus.STOPPED
        last = await db.run(
            lambda s: s.scalars(select(ConsentEvent).order_by(ConsentEvent.id.desc())).first()
        )
        assert (last.action, last.channel) == ("withdraw", "page")
        assert (await client.get(path)).status == 404
        assert await phone.text("POENG") is None  # stopped: nothing more is sent

    async def test_a_post_without_the_pages_form_token_changes_nothing(
        self, client: TestClient, phone: Phone, db: Database
    ) -> None:
        await join_fully(phone)
        _, path = await page_link(phone)
        # A token that is not ASCII ("é", "０" as wide as a digit) is refused like a wrong one,
        # never a 500 (hmac's compare of str takes ASCII only).
        for form in ({}, {"form": "0" * 64}, {"form": "é" * 64}, {"form": "０" * 64}):
            response = await client.post(path + "/leave", data=form)
            assert response.status == 403
            response = await client.post(path + "/delete/confirm", data=form)
            assert response.status == 403
        assert (await member_of(db)).status == MemberStatus.ACTIVE

    @pytest.mark.parametrize(("content_type", "body"), UNREADABLE)
    async def test_a_form_that_cant_be_decoded_is_400_and_changes_nothing(
        self,
        client: TestClient,
        phone: Phone,
        db: Database,
        caplog: pytest.LogCaptureFixture,
        content_type: str,
        body: bytes,
    ) -> None:
        """Bytes not in the charset, or a charset Python does not know, on each of the page's
        forms, a live link's or none's: a 400 page in the browser's language, nothing done, no
        ERROR in the log (was a 500 and a traceback)."""
        await join_fully(phone)
        _, path = await page_link(phone)
        for link in (path, "/m/" + "x" * 22):
            for action in ("leave", "delete", "delete/confirm"):
                response = await client.post(
                    f"{link}/{action}",
                    data=body,
                    headers={"Content-Type": content_type, "Accept-Language": "sv"},
                )
                assert response.status == 400, (link, action)
                assert response.content_type == "text/html"
                assert "Formuläret kunde inte läsas" in await response.text()
        assert (await member_of(db)).status == MemberStatus.ACTIVE
        assert (await client.get(path)).status == 200
        assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []

    async def test_deleting_asks_first_then_erases_as_delete_does(
        self, client: TestClient, phone: Phone, db: Database, club: int
    ) -> None:
        await join_fully(phone)
        _, path = await page_link(phone)
        action, token = (await forms_of(client, path))["delete"]
        asked = await client.post(action, data={"form": token})
        assert asked.status == 200
        assert (await member_of(db)).status == MemberStatus.ACTIVE  # nothing yet
        confirm = FORM.search(await asked.text())
        assert confirm is not None
        done = await client.post(confirm.group(1), data={"form": confirm.group(2)})
        assert done.status == 200
        assert (await member_of(db)).status == MemberStatus.ERASED
        assert await was_erased(db, club, "+4791234567")
        assert (await client.get(path)).status == 404
        assert (await client.get(path + "/data.json")).status == 404


class TestDeadLinks:
    async def test_unknown_expired_and_ended_links_answer_the_same_404(
        self, client: TestClient, phone: Phone, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await join_fully(phone)
        _, path = await page_link(phone)
        unknown = await client.get("/m/" + "A" * 22)
        assert unknown.status == 404
        body = await unknown.text()
        assert "<script" not in body
        later = dt.datetime.now(dt.UTC) + links.LIFETIME[links.PAGE] + dt.timedelta(minutes=1)
        monkeypatch.setattr("bot.page.routes.utc_now", lambda: later)
        expired = await client.get(path)
        assert (expired.status, await expired.text()) == (404, body)
        monkeypatch.undo()
        assert (await client.get(path)).status == 200
        await phone.text("STOPP")  # leaving by SMS ends the link at once
        ended = await client.get(path)
        assert (ended.status, await ended.text()) == (404, body)

    async def test_coming_back_after_stop_does_not_bring_an_old_link_back(
        self, client: TestClient, phone: Phone, db: Database
    ) -> None:
        await join_fully(phone)
        _, old = await page_link(phone)
        await phone.text("STOPP")
        assert await db.run(lambda s: s.scalars(select(MemberLink.ended_at)).one()) is not None
        await phone.text("START")
        assert (await client.get(old)).status == 404
        _, new = await page_link(phone)
        assert (await client.get(new)).status == 200

    async def test_a_scanner_trying_tokens_gets_429_even_for_a_token_that_exists(
        self, client: TestClient, phone: Phone
    ) -> None:
        await join_fully(phone)
        _, path = await page_link(phone)
        client.app[MISSES].limit = 5
        statuses = [(await client.get(f"/m/guess{i:020d}")).status for i in range(8)]
        assert statuses == [404] * 5 + [429] * 3
        busy = await client.get(path)
        assert busy.status == 429
        assert "Retry-After" in busy.headers

    async def test_a_member_opening_their_page_again_and_again_is_not_held_up(
        self, client: TestClient, phone: Phone
    ) -> None:
        await join_fully(phone)
        _, path = await page_link(phone)
        client.app[MISSES].limit = 5
        assert {(await client.get(path)).status for _ in range(8)} == {200}

    async def test_any_address_gets_429_past_its_requests_a_minute(
        self, client: TestClient, phone: Phone
    ) -> None:
        await join_fully(phone)
        _, path = await page_link(phone)
        client.app[LIMIT].limit = 3
        assert [(await client.get(path)).status for _ in range(4)] == [200, 200, 200, 429]
