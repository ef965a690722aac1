"""A gateway is opened and closed one way (bot.app.opened_gateway): the app's does so."""

from __future__ import annotations

from typing import Any

import pytest

from bot.app import create_app
from bot.gateways.twilio import TwilioGateway
from bot.keys import GATEWAY
from bot.settings import Settings
from tests.conftest import AUTH_TOKEN, PUBLIC_URL


async def test_the_app_closes_its_twilio_gateway_once_at_shutdown(
    database_url: str, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app holds one Twilio gateway while it serves, and at shutdown closes it once,
    with the HTTP session its sends opened."""
    closed: list[TwilioGateway] = []
    close = TwilioGateway.close

    async def counted(self: TwilioGateway) -> None:
        closed.append(self)
        await close(self)

    monkeypatch.setattr(TwilioGateway, "close", counted)
    settings = Settings(
        database_url=database_url,
        public_url=PUBLIC_URL,
        twilio_auth_token=AUTH_TOKEN,
        run_scheduler=False,
        gateway="twilio",
        twilio_account_sid="AC" + "1" * 32,
    )
    client = await aiohttp_client(create_app(settings))
    gateway = client.server.app[GATEWAY]
    assert isinstance(gateway, TwilioGateway)
    http = gateway._http()  # as the first send opens it
    assert closed == []

    await client.close()

    assert closed == [gateway]
    assert http.closed
