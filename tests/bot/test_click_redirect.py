"""Campaign links that count, tapped: /c/{token} redirects to the owner's address and counts a
person's tap (not a HEAD, not a link-preview fetcher's); dead tokens get the member page's 404,
a scanner 429; erasure leaves the taps counted for the campaign, naming no one."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from bot.page.routes import MISSES
from store.database import Database
from store.models import ClickLink, LinkClick, Member
from store.outreach import clicks
from tests.conftest import Phone
from tests.scheduler.campaign_helpers import T0, run
from tests.scheduler.test_click_links import SHORT, links_of, send_with_links

TEXT = "Vintersalg! Se https://butikk.no/salg?kode=vinter"
TARGET = "https://butikk.no/salg?kode=vinter"
# A tap some minutes after the message went out: the links live for 90 days from T0.
TAPPED = T0 + dt.timedelta(minutes=5)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/126.0.0.0 Mobile Safari/537.36"
)
# A phone whose model has "bot" in its name is a person's.
CUBOT = (
    "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/120.0.0.0 Mobile Safari/537.36"
)
FETCHERS = [
    "WhatsApp/2.23.20.0 A",
    "facebookexternalhit/1.1;line-poker/1.0",
    # iMessage's preview
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4 (KHTML, like Gecko)"
    " Version/9.0.1 Safari/601.2.4 facebookexternalhit/1.1 Facebot Twitterbot/1.0",
    "TelegramBot (like TwitterBot)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
    "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
    "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "http.rb/5.1.1 (Mastodon/4.2.0; +https://mastodon.social/) Bot",
    "Iframely/1.3.1 (+https://iframely.com/docs/about)",
]


@pytest.fixture
def tapped_at(monkeypatch: pytest.MonkeyPatch) -> dt.datetime:
    """The redirect's clock, a few minutes after the campaign went out."""
    monkeypatch.setattr("bot.page.clicks.utc_now", lambda: TAPPED)
    return TAPPED


async def sent_paths(db: Database, club: int, count: int = 3) -> dict[str, str]:
    """A broadcast of TEXT to `count` members, sent: {number: the path of its short link}."""
    _, phones, gateway = await send_with_links(db, club, count, TEXT)
    paths = {}
    for phone in phones:
        [body] = gateway.to(phone)
        [token] = SHORT.findall(body)
        paths[phone] = clicks.PATH + token
    return paths


async def taps(db: Database, path: str | None = None) -> int:
    """Counted taps: on one link (its path), or on every link."""

    def work(session: Any) -> int:
        query = select(func.count()).select_from(LinkClick)
        if path is not None:
            query = query.join(ClickLink, ClickLink.id == LinkClick.link_id).where(
                ClickLink.token_hash == clicks.token_hash(path.removeprefix(clicks.PATH))
            )
        return session.scalar(query)

    return await run(db, work)


async def get(client: TestClient, path: str, agent: str = IPHONE, **headers: str) -> Any:
    return await client.get(path, allow_redirects=False, headers={"User-Agent": agent, **headers})


@pytest.mark.usefixtures("tapped_at")
class TestTapping:
    async def test_each_link_redirects_to_the_address_and_counts_the_tap(
        self, client: TestClient, db: Database, club: int
    ) -> None:
        paths = await sent_paths(db, club)
        assert len(set(paths.values())) == 3
        for path in paths.values():
            response = await get(client, path)
            assert response.status == 302
            assert response.headers["Location"] == TARGET
            assert response.headers["Cache-Control"] == "no-store"
            assert response.headers["Referrer-Policy"] == "no-referrer"
            assert "noindex" in response.headers["X-Robots-Tag"]
            # The headers every answer gets (bot.security).
            assert response.headers["X-Frame-Options"] == "DENY"
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert "default-src 'none'" in response.headers["Content-Security-Policy"]
            assert await taps(db, path) == 1
        assert await taps(db) == 3

    async def test_a_second_tap_counts_again(
        self, client: TestClient, db: Database, club: int
    ) -> None:
        path = next(iter((await sent_paths(db, club, 1)).values()))
        for agent in (IPHONE, ANDROID):
            assert (await get(client, path, agent)).status == 302
        assert await taps(db, path) == 2
        clicked = await run(db, lambda s: list(s.scalars(select(LinkClick.clicked_at))))
        assert clicked == [TAPPED, TAPPED]

    async def test_a_head_is_redirected_and_not_counted(
        self, client: TestClient, db: Database, club: int
    ) -> None:
        path = next(iter((await sent_paths(db, club, 1)).values()))
        response = await client.head(path, allow_redirects=False, headers={"User-Agent": IPHONE})
        assert (response.status, response.headers["Location"]) == (302, TARGET)
        assert await taps(db) == 0

    @pytest.mark.parametrize("agent", FETCHERS)
    async def test_a_preview_fetcher_is_redirected_and_not_counted(
        self, client: TestClient, db: Database, club: int, agent: str
    ) -> None:
        path = next(iter((await sent_paths(db, club, 1)).values()))
        response = await get(client, path, agent)
        assert (response.status, response.headers["Location"]) == (302, TARGET)
        assert await taps(db) == 0

    @pytest.mark.parametrize(
        "headers",
        [{"Sec-Purpose": "prefetch"}, {"Sec-Purpose": "prefetch;prerender"},
         {"Purpose": "prefetch"}, {"X-Purpose": "preview"}, {"X-Moz": "prefetch"}],
    )  # fmt: skip
    async def test_a_browser_fetching_ahead_is_redirected_and_not_counted(
        self, client: TestClient, db: Database, club: int, headers: dict[str, str]
    ) -> None:
        path = next(iter((await sent_paths(db, club, 1)).values()))
        response = await get(client, path, ANDROID, **headers)
        assert (response.status, response.headers["Location"]) == (302, TARGET)
        assert await taps(db) == 0

    async def test_a_phone_with_bot_in_its_model_name_is_a_person(
        self, client: TestClient, db: Database, club: int
    ) -> None:
        path = next(iter((await sent_paths(db, club, 1)).values()))
        assert (await get(client, path, CUBOT)).status == 302
        assert await taps(db) == 1


class TestDeadLinks:
    async def test_expired_unknown_garbage_and_overlong_tokens_answer_the_member_pages_404(
        self,
        client: TestClient,
        db: Database,
        club: int,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        path = next(iter((await sent_paths(db, club, 1)).values()))
        page_404 = await client.get("/m/" + "A" * 22)
        assert page_404.status == 404
        body = await page_404.text()
        monkeypatch.setattr(
            "bot.page.clicks.utc_now", lambda: T0 + clicks.LIFETIME + dt.timedelta(seconds=1)
        )
        for dead in (
            path,  # expired
            clicks.PATH + "A" * clicks.TOKEN_CHARS,  # unknown
            clicks.PATH + "%20%00%ff",  # garbage
            clicks.PATH + "ø%2Fx/../y",
            clicks.PATH + "x" * 200,
        ):
            response = await get(client, dead)
            assert (response.status, await response.text()) == (404, body), dead
            assert "Location" not in response.headers
        assert await taps(db) == 0

    async def test_a_scanner_trying_tokens_gets_429_even_for_a_token_that_exists(
        self, client: TestClient, db: Database, club: int, tapped_at: dt.datetime
    ) -> None:
        path = next(iter((await sent_paths(db, club, 1)).values()))
        client.app[MISSES].limit = 5
        guesses = [(await get(client, f"{clicks.PATH}guess{i:011d}")).status for i in range(8)]
        assert guesses == [404] * 5 + [429] * 3
        busy = await get(client, path)
        assert busy.status == 429
        assert "Location" not in busy.headers
        assert "Retry-After" in busy.headers
        assert await taps(db) == 0


async def test_erasure_leaves_the_taps_counted_for_the_campaign_naming_no_one(
    client: TestClient, db: Database, club: int, tapped_at: dt.datetime
) -> None:
    paths = await sent_paths(db, club, 2)
    (gone, gone_path), (_, stays_path) = paths.items()
    for path in (gone_path, gone_path, stays_path):
        assert (await get(client, path)).status == 302
    erased = Phone(client, gone)
    await erased.text("SLETT")
    await erased.text("JA")
    assert (
        await run(db, lambda s: s.scalar(select(Member.phone).where(Member.phone == gone))) is None
    )

    campaign_links = await links_of(
        db, (await run(db, lambda s: s.scalar(select(ClickLink.campaign_id))))
    )
    kept = {link.token_hash: link for link in campaign_links}
    assert kept[clicks.token_hash(gone_path.removeprefix(clicks.PATH))].member_id is None
    assert kept[clicks.token_hash(stays_path.removeprefix(clicks.PATH))].member_id is not None
    assert await taps(db, gone_path) == 2
    assert await taps(db) == 3
