"""Whose address the limits count (bot.client_address): the peer's, unless the peer is a proxy
named in KLUBB_TRUSTED_PROXIES, when it is the right-most X-Forwarded-For entry that is not a
trusted proxy. The test client's peer is 127.0.0.1, trusted or not as each test says; a client
talking to Klubb directly can't choose its address by sending the header."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.app import create_app
from bot.client_address import client_address
from bot.keys import SETTINGS
from bot.settings import Settings, SettingsError
from store.database import Database
from store.models import AdminSignInFailure
from tests.admin.conftest import OWNER, SECRET_KEY, Admin, create_account

PEER = "127.0.0.1"
CLIENT = "203.0.113.7"
LOOPBACK = "127.0.0.1"
PROXIES = "127.0.0.1, 10.0.0.0/8, fd00::/8"


def trusting(value: str, **others: Any) -> Settings:
    """Settings as KLUBB_TRUSTED_PROXIES=value gives them."""
    return Settings.from_env({"KLUBB_TRUSTED_PROXIES": value, **others})


async def seen(aiohttp_client: Any, settings: Settings, headers: Any = None) -> str | None:
    """The address client_address gives a request from the test client with these headers."""

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"address": client_address(request)})

    app = web.Application()
    app[SETTINGS] = settings
    app.router.add_get("/", echo)
    client = await aiohttp_client(app)
    response = await client.get("/", headers=headers)
    return (await response.json())["address"]


@pytest.mark.parametrize(
    ("forwarded", "address"),
    [
        (CLIENT, CLIENT),
        # Entries left of the ones trusted proxies appended are the client's to write: ignored.
        (f"198.51.100.99, {CLIENT}", CLIENT),
        (f"198.51.100.99, {CLIENT}, 10.0.0.2, 10.1.2.3", CLIENT),
        # Malformed entries are skipped, wherever they are.
        (f"{CLIENT}, unknown", CLIENT),
        (f"{CLIENT}, not-an-address, , 10.0.0.2", CLIENT),
        (f"<script>, {CLIENT}", CLIENT),
        # A port after the address (some proxies add it), IPv6 in brackets or not.
        (f"{CLIENT}:4711", CLIENT),
        ("[2001:db8::7]:443", "2001:db8::7"),
        ("2001:DB8::7", "2001:db8::7"),
        # An IPv4 client seen through a dual-stack socket is the same IPv4 address.
        (f"::ffff:{CLIENT}", CLIENT),
        # Every entry a trusted proxy: the left-most is the client (a machine of ours).
        ("10.0.0.3, 10.0.0.2", "10.0.0.3"),
        ("fd00::5", "fd00::5"),
        # Nothing usable: the peer itself.
        ("", PEER),
        ("unknown, _hidden", PEER),
    ],
)
async def test_from_a_trusted_proxy_the_right_most_untrusted_entry_is_the_client(
    aiohttp_client: Any, forwarded: str, address: str
) -> None:
    headers = {"X-Forwarded-For": forwarded}
    assert await seen(aiohttp_client, trusting(PROXIES), headers) == address


async def test_several_headers_read_as_one_list_the_last_written_last(
    aiohttp_client: Any,
) -> None:
    headers = [("X-Forwarded-For", "198.51.100.99"), ("X-Forwarded-For", f"{CLIENT}, 10.0.0.2")]
    assert await seen(aiohttp_client, trusting(PROXIES), headers) == CLIENT


async def test_without_the_header_a_trusted_proxys_request_is_its_own(
    aiohttp_client: Any,
) -> None:
    assert await seen(aiohttp_client, trusting(PROXIES)) == PEER


@pytest.mark.parametrize("proxies", ["", "10.0.0.1", "10.0.0.0/8, ::1", "127.0.0.2"])
@pytest.mark.parametrize("forwarded", [CLIENT, f"{CLIENT}, 10.0.0.2", "10.0.0.1"])
async def test_a_peer_that_is_not_a_trusted_proxy_cannot_choose_its_address(
    aiohttp_client: Any, proxies: str, forwarded: str
) -> None:
    # Spoofing: the peer (127.0.0.1) is not among the trusted proxies, so what it claims to
    # forward is ignored, even when it names a trusted proxy's address.
    headers = {"X-Forwarded-For": forwarded}
    assert await seen(aiohttp_client, trusting(proxies), headers) == PEER


def test_the_setting_takes_addresses_and_networks_and_defaults_to_none() -> None:
    assert Settings.from_env({}).trusted_proxies == ()
    assert Settings.from_env({"KLUBB_TRUSTED_PROXIES": " "}).trusted_proxies == ()
    networks = trusting(" 127.0.0.1 ,10.1.2.3/8,, ::1,fd00::/8 ").trusted_proxies
    assert [str(n) for n in networks] == ["127.0.0.1/32", "10.0.0.0/8", "::1/128", "fd00::/8"]


@pytest.mark.parametrize("value", ["proxy.internal", "10.0.0.0/33", "127.0.0.1 10.0.0.1"])
def test_a_setting_that_is_not_addresses_is_refused_naming_it(value: str) -> None:
    with pytest.raises(SettingsError) as refused:
        trusting(value)
    assert "KLUBB_TRUSTED_PROXIES" in str(refused.value)
    assert repr(value.split(",")[0].strip()) in str(refused.value)


# The member page's limit: 20 tokens that open nothing in a minute and the address gets 429.
async def miss(client: TestClient, address: str) -> int:
    response = await client.get(
        f"/m/{secrets.token_urlsafe(16)}", headers={"X-Forwarded-For": address}
    )
    return response.status


async def test_behind_a_trusted_proxy_a_scanner_is_held_up_and_other_members_are_not(
    settings: Settings, db: Database, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(create_app(settings.with_(trusted_proxies=_nets(LOOPBACK))))
    for _ in range(20):
        assert await miss(client, CLIENT) == 404
    assert await miss(client, CLIENT) == 429
    # Every member comes through the same proxy; only the scanner's address is held up.
    assert await miss(client, "198.51.100.20") == 404


async def test_not_trusting_the_peer_a_scanner_cannot_escape_by_inventing_addresses(
    settings: Settings, db: Database, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(create_app(settings))  # KLUBB_TRUSTED_PROXIES unset
    for n in range(20):
        assert await miss(client, f"198.51.100.{n}") == 404
    assert await miss(client, "198.51.100.200") == 429


# The admin's sign-in limit: from the address the owner last signed in from, only that
# address's failures count, so someone guessing elsewhere can't lock the owner out. Behind a
# proxy that holds only when the proxy is trusted: otherwise every address is the proxy's.
OWNERS = "198.51.100.10"
GUESSER = "203.0.113.66"


async def sign_in(admin: Admin, address: str, password: str) -> int:
    token = await admin.csrf()
    response = await admin.client.post(
        "/admin/sign-in",
        data={"email": OWNER, "password": password, "csrf_token": token},
        headers={"X-Forwarded-For": address},
        allow_redirects=False,
    )
    return response.status


@pytest.mark.usefixtures("cheap_argon2")
@pytest.mark.parametrize(
    ("trusted", "owner_after", "failed_from"), [(True, 303, GUESSER), (False, 429, PEER)]
)
async def test_guesses_from_elsewhere_lock_the_owner_out_only_without_the_trusted_proxy(
    settings: Settings,
    db: Database,
    club: int,
    aiohttp_client: Any,
    trusted: bool,
    owner_after: int,
    failed_from: str,
) -> None:
    await create_account(db, club, OWNER)
    app_settings = settings.with_(
        secret_key=SECRET_KEY,
        public_url="http://127.0.0.1:8080",
        trusted_proxies=_nets(LOOPBACK) if trusted else (),
    )
    first = await aiohttp_client(create_app(app_settings))

    async def browser() -> Admin:
        """A browser of its own (cookies) on the one server."""
        return Admin(await aiohttp_client(first.server))

    assert await sign_in(Admin(first), OWNERS, "correct horse battery staple") == 303
    guesser = await browser()
    statuses = [await sign_in(guesser, GUESSER, "wrong password 123") for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    assert await sign_in(await browser(), OWNERS, "correct horse battery staple") == owner_after

    def failures(session: Any) -> set[str]:
        return set(session.scalars(select(AdminSignInFailure.address)))

    # And the failures are recorded against the address the limit counted.
    assert failed_from in await db.run(failures)


def _nets(value: str) -> Any:
    return trusting(value).trusted_proxies
