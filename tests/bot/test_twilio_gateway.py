"""The Twilio gateway against the fake Twilio on loopback: what it posts, how it reads answers."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bot.gateways.twilio import TwilioGateway
from bot.keys import GATEWAY
from bot.settings import Settings, SettingsError
from scheduler.gateway import (
    InDoubt,
    InvalidNumber,
    OptedOut,
    OutboundSms,
    Rejected,
    Throttled,
    Transient,
    Unauthorized,
)
from tests.fakes.twilio_server import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    FakeTwilio,
    parse_faults,
)

CALLBACK = "https://klubb.example.com/sms/twilio/status"
MEMBER = "+4791234567"
CLUB = "2020"


def sms(body: str = "Hei fra klubben", to: str = MEMBER, reference: str = "1") -> OutboundSms:
    return OutboundSms(to=to, from_=CLUB, body=body, reference=reference)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio() as server:
        yield server


@pytest.fixture
async def gateway(fake: FakeTwilio) -> AsyncIterator[TwilioGateway]:
    gateway = fake.gateway(status_callback=CALLBACK)
    yield gateway
    await gateway.close()


class TestSend:
    async def test_a_send_returns_the_sid_twilio_gave(self, fake, gateway) -> None:
        """The gateway posts To, From, Body and StatusCallback with the account's basic auth,
        and returns the sid of the message Twilio recorded."""
        sid = await gateway.send(sms("Velkommen, Kari!"))

        assert len(fake.messages) == 1
        taken = fake.messages[0]
        assert sid == taken.sid
        assert sid.startswith("SM")
        assert len(sid) == 34
        assert (taken.to, taken.from_, taken.body) == (MEMBER, CLUB, "Velkommen, Kari!")
        assert taken.status_callback == CALLBACK
        # The fake takes nothing without the right basic auth.
        assert fake.counters.refused == 0

    async def test_no_status_callback_is_posted_when_none_is_configured(self, fake) -> None:
        """Without a callback URL the form has no StatusCallback (Twilio then calls nothing)."""
        gateway = fake.gateway()
        try:
            await gateway.send(sms())
        finally:
            await gateway.close()
        assert fake.messages[0].status_callback is None

    async def test_a_body_of_any_script_arrives_as_written(self, fake, gateway) -> None:
        """Non-ASCII, ampersands and line breaks survive the form encoding."""
        body = "Hei Åse & Øyvind!\n50% rabatt = 100,00 kr 🎉"
        await gateway.send(sms(body))
        assert fake.messages[0].body == body

    async def test_a_burst_in_flight_gets_one_sid_each(self, fake, gateway) -> None:
        """200 sends at once through one session: each accepted once, each with its own sid."""
        sids = await asyncio.gather(
            *(gateway.send(sms(f"hei {i}", f"+4791{i:06d}", str(i))) for i in range(200))
        )
        assert len(set(sids)) == 200
        assert fake.counters.accepted == 200
        assert sorted(m.body for m in fake.messages) == sorted(f"hei {i}" for i in range(200))


class TestErrors:
    async def test_429_is_throttled_with_the_retry_after(self, fake, gateway) -> None:
        """Too many requests: Throttled, with Retry-After's seconds and Twilio's code."""
        fake.fail_next(1, 429, retry_after=7)
        with pytest.raises(Throttled) as raised:
            await gateway.send(sms())
        assert raised.value.retry_after == 7.0
        assert raised.value.code == "20429"
        assert fake.messages == []

    async def test_429_without_retry_after_has_none(self, fake, gateway) -> None:
        """A 429 with no Retry-After leaves the pause to the sender."""
        fake.fail_next(1, 429)
        with pytest.raises(Throttled) as raised:
            await gateway.send(sms())
        assert raised.value.retry_after is None

    async def test_error_20429_in_a_400_is_throttled_too(self, fake, gateway) -> None:
        """Twilio's own "too many requests" code is throttling whatever the HTTP status."""
        fake.fail_next(1, 400, code=20429)
        with pytest.raises(Throttled) as raised:
            await gateway.send(sms())
        assert raised.value.code == "20429"

    @pytest.mark.parametrize("status", [500, 502, 503])
    async def test_a_server_error_is_transient(self, fake, gateway, status: int) -> None:
        """Twilio failed to take it: Transient, with the HTTP status as its code; the next
        send goes through."""
        fake.fail_next(1, status, code=None)
        with pytest.raises(Transient) as raised:
            await gateway.send(sms())
        assert raised.value.code == str(status)
        assert await gateway.send(sms())
        assert len(fake.messages) == 1

    async def test_a_gateway_timeout_is_in_doubt(self, fake, gateway) -> None:
        """504: a proxy gave up waiting on the API behind it, which may have taken it."""
        fake.fail_next(1, 504, code=None)
        with pytest.raises(InDoubt) as raised:
            await gateway.send(sms())
        assert raised.value.code == "504"

    async def test_21610_is_opted_out(self, fake, gateway) -> None:
        """The member sent STOP to the carrier: OptedOut, code 21610."""
        fake.fail_number(MEMBER, 21610)
        with pytest.raises(OptedOut) as raised:
            await gateway.send(sms())
        assert raised.value.code == "21610"

    @pytest.mark.parametrize("code", [21211, 21614, 21612, 21217, 30004, 30005, 30006])
    async def test_numbers_that_cannot_receive_are_invalid(self, fake, gateway, code) -> None:
        """Each of Twilio's "this number can't get an SMS" codes is InvalidNumber, those a
        status callback flags a number by too (a send refused with one flags it alike)."""
        fake.fail_number(MEMBER, code)
        with pytest.raises(InvalidNumber) as raised:
            await gateway.send(sms())
        assert raised.value.code == str(code)

    async def test_a_to_that_is_no_number_is_invalid(self, fake, gateway) -> None:
        """The fake, like Twilio, answers 21211 for a To that is not E.164."""
        with pytest.raises(InvalidNumber) as raised:
            await gateway.send(sms(to="12345"))
        assert raised.value.code == "21211"

    async def test_an_unknown_4xx_is_rejected_with_its_code(self, fake, gateway) -> None:
        """Any other refusal (a body too long, 21617) is Rejected for good, code kept."""
        fake.fail_next(1, 400, code=21617, message="The concatenated message body is too long")
        with pytest.raises(Rejected) as raised:
            await gateway.send(sms())
        assert raised.value.code == "21617"
        assert "too long" in str(raised.value)

    async def test_a_4xx_without_json_is_rejected_with_the_http_status(self, fake) -> None:
        """An answer that is not Twilio's JSON still names what happened: its HTTP status."""
        gateway = fake.gateway(api_url=fake.url + "/nowhere")
        try:
            with pytest.raises(Rejected) as raised:
                await gateway.send(sms())
        finally:
            await gateway.close()
        assert raised.value.code == "404"

    async def test_bad_credentials_are_unauthorized_loudly(self, fake, caplog) -> None:
        """A wrong token: Unauthorized (the account's fault, not the message's) naming the
        variables to check, logged as critical."""
        gateway = fake.gateway(auth_token="not-the-token")
        caplog.set_level(logging.CRITICAL, logger="bot.gateways.twilio")
        try:
            with pytest.raises(Unauthorized) as raised:
                await gateway.send(sms())
        finally:
            await gateway.close()
        assert raised.value.code == "20003"
        assert "TWILIO_AUTH_TOKEN" in str(raised.value)
        assert any(r.levelno == logging.CRITICAL for r in caplog.records)
        assert fake.messages == []

    async def test_a_connection_dropped_after_the_post_is_in_doubt(self, fake, gateway) -> None:
        """Twilio took it, then the connection broke before the answer: InDoubt (sending it
        again could send it twice), and the next send works."""
        fake.drop_next()
        with pytest.raises(InDoubt):
            await gateway.send(sms("the lost answer"))
        assert [m.body for m in fake.messages] == ["the lost answer"]
        assert await gateway.send(sms("the next one"))

    async def test_a_timeout_waiting_for_the_answer_is_in_doubt(self, fake) -> None:
        """The request went out and no answer came in time: InDoubt."""
        fake.latency = 1.0
        gateway = fake.gateway(timeout=aiohttp.ClientTimeout(total=5, sock_read=0.2))
        try:
            with pytest.raises(InDoubt):
                await gateway.send(sms())
        finally:
            await gateway.close()

    async def test_a_2xx_without_a_readable_sid_is_in_doubt(self, fake, gateway) -> None:
        """Twilio said yes but the sid can't be read: most likely taken, so InDoubt."""
        fake.fail_next(1, 201, code=None, message="not a message resource")
        with pytest.raises(InDoubt):
            await gateway.send(sms())

    async def test_a_refused_connection_is_transient(self) -> None:
        """Nothing listens there: the request was never written, so Transient."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        gateway = TwilioGateway(
            DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, api_url=f"http://127.0.0.1:{port}"
        )
        try:
            with pytest.raises(Transient) as raised:
                await gateway.send(sms())
        finally:
            await gateway.close()
        assert raised.value.code == "connect"


class TestFaults:
    """The fake answers a share of sends as a real Twilio sometimes does (benches, tests)."""

    def test_faults_are_read_as_shares(self) -> None:
        assert parse_faults("429=5%, 500=2%,hang=0.1%").shares == {
            "429": 0.05,
            "500": 0.02,
            "hang": 0.001,
        }
        assert parse_faults("503=0.5").shares == {"503": 0.5}
        assert parse_faults("").shares == {}

    @pytest.mark.parametrize(
        ("text", "named"),
        [
            ("teapot=5%", "'teapot'"),
            ("200=5%", "'200'"),
            ("429=lots", "'lots'"),
            ("429=150%", "'150%'"),
            ("429=60%,500=60%", "more than 100%"),
        ],
    )
    def test_a_fault_that_cannot_be_read_is_named(self, text: str, named: str) -> None:
        with pytest.raises(ValueError, match=named):
            parse_faults(text)

    async def test_a_share_of_sends_answers_each_fault(self) -> None:
        """2,000 sends with 429=5%, 500=2%: about those shares, each as the gateway reads
        it (Throttled with Retry-After, Transient), and nothing else taken or refused."""
        async with FakeTwilio(faults=parse_faults("429=5%,500=2%"), retry_after=2) as fake:
            gateway = fake.gateway()
            try:
                answers = await asyncio.gather(
                    *(gateway.send(sms(f"hei {i}", f"+4791{i:06d}")) for i in range(2000)),
                    return_exceptions=True,
                )
            finally:
                await gateway.close()
        throttled = [a for a in answers if isinstance(a, Throttled)]
        transient = [a for a in answers if isinstance(a, Transient)]
        assert 60 <= len(throttled) <= 140
        assert 20 <= len(transient) <= 60
        assert {a.retry_after for a in throttled} == {2.0}
        assert {a.code for a in throttled} == {"20429"}
        assert len(throttled) + len(transient) + len(fake.messages) == 2000
        assert fake.counters.throttled == len(throttled)

    async def test_a_hang_takes_the_message_and_never_answers(self) -> None:
        """hang: Twilio took it and the answer never comes: the gateway gives up, in doubt."""
        async with FakeTwilio(faults=parse_faults("hang=100%")) as fake:
            gateway = fake.gateway(timeout=aiohttp.ClientTimeout(total=5, sock_read=0.2))
            try:
                with pytest.raises(InDoubt):
                    await gateway.send(sms("taken, never answered"))
            finally:
                await gateway.close()
            assert [m.body for m in fake.messages] == ["taken, never answered"]
            assert fake.counters.hung == 1

    async def test_a_slow_answer_is_taken_at_once(self) -> None:
        """answer_delay: taken when the request arrives, answered that much later."""
        async with FakeTwilio(answer_delay=0.2) as fake:
            gateway = fake.gateway()
            try:
                sending = asyncio.create_task(gateway.send(sms()))
                await asyncio.sleep(0.1)
                assert len(fake.messages) == 1
                assert not sending.done()
                assert await sending == fake.messages[0].sid
            finally:
                await gateway.close()

    async def test_the_same_message_taken_twice_is_counted(self, fake, gateway) -> None:
        await gateway.send(sms("once"))
        await gateway.send(sms("once", to="+4799999999"))
        assert fake.counters.duplicates == 0
        await gateway.send(sms("once"))
        assert fake.counters.duplicates == 1


class TestFindSent:
    async def test_finds_the_message_on_a_later_page(self, fake) -> None:
        """The sid of the message with the same to, from and body, following next_page_uri
        (Twilio lists newest first, so the oldest is on the last page)."""
        gateway = fake.gateway(page_size=2)
        since = dt.datetime.now(dt.UTC)
        try:
            first = await gateway.send(sms("first"))
            for i in range(5):
                await gateway.send(sms(f"later {i}"))
            await gateway.send(sms("first", to="+4799999999"))  # same body, another member
            listed = fake.counters.listed
            assert await gateway.find_sent(sms("first"), since) == first
        finally:
            await gateway.close()
        assert fake.counters.listed - listed == 3

    async def test_none_for_a_message_never_sent(self, fake, gateway) -> None:
        """No message with that body to that number: None (the row can be sent again)."""
        since = dt.datetime.now(dt.UTC)
        await gateway.send(sms("something else"))
        assert await gateway.find_sent(sms("never sent"), since) is None

    async def test_a_message_taken_before_since_is_not_this_one(self) -> None:
        """The same text sent an hour before `since` is an earlier message, not this one."""
        moment = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
        async with FakeTwilio(clock=lambda: moment) as fake:
            gateway = fake.gateway()
            try:
                await gateway.send(sms("Ukens tilbud"))
                since = moment + dt.timedelta(hours=1)
                assert await gateway.find_sent(sms("Ukens tilbud"), since) is None
                assert await gateway.find_sent(sms("Ukens tilbud"), moment) is not None
            finally:
                await gateway.close()

    async def test_a_fraction_of_a_second_does_not_hide_the_message(self, fake, gateway) -> None:
        """Twilio's dates have whole seconds: a message taken just after `since` is found
        even though its date_created reads earlier than `since`."""
        since = dt.datetime.now(dt.UTC)
        sid = await gateway.send(sms())
        assert await gateway.find_sent(sms(), since + dt.timedelta(microseconds=1)) == sid

    async def test_a_listing_that_fails_is_transient(self, fake) -> None:
        """Twilio can't be asked now (bad credentials here): Transient, so the caller asks
        again later rather than concluding anything."""
        gateway = fake.gateway(auth_token="wrong")
        try:
            with pytest.raises(Transient):
                await gateway.find_sent(sms(), dt.datetime.now(dt.UTC))
        finally:
            await gateway.close()


class TestSettingsAndApp:
    def test_twilio_needs_the_account_sid(self) -> None:
        """KLUBB_GATEWAY=twilio without TWILIO_ACCOUNT_SID names the missing variable."""
        with pytest.raises(SettingsError, match="TWILIO_ACCOUNT_SID"):
            Settings.from_env({"KLUBB_GATEWAY": "twilio", "TWILIO_AUTH_TOKEN": "t"})

    def test_twilio_needs_its_own_token(self) -> None:
        """The dev token never stands in for a real account's: TWILIO_AUTH_TOKEN is named."""
        with pytest.raises(SettingsError, match="TWILIO_AUTH_TOKEN"):
            Settings.from_env({"KLUBB_GATEWAY": "twilio", "TWILIO_ACCOUNT_SID": "AC1"})

    def test_twilio_settings_reach_their_fields(self) -> None:
        """Sid, token, API URL (without a trailing slash) and send rate are read."""
        settings = Settings.from_env(
            {
                "KLUBB_GATEWAY": "Twilio",
                "TWILIO_ACCOUNT_SID": " AC123 ",
                "TWILIO_AUTH_TOKEN": "secret",
                "TWILIO_API_URL": "http://127.0.0.1:8099/",
                "KLUBB_SEND_RATE": "250",
            }
        )
        assert settings.gateway == "twilio"
        assert settings.twilio_account_sid == "AC123"
        assert settings.twilio_auth_token == "secret"
        assert settings.twilio_api_url == "http://127.0.0.1:8099"
        assert settings.send_rate == 250

    def test_the_send_rate_defaults_to_100(self) -> None:
        assert Settings.from_env({}).send_rate == 100

    @pytest.mark.parametrize("value", ["0", "10001", "-5"])
    def test_a_send_rate_out_of_range_names_klubb_send_rate(self, value: str) -> None:
        with pytest.raises(SettingsError, match="KLUBB_SEND_RATE"):
            Settings.from_env({"KLUBB_SEND_RATE": value})

    def test_a_send_rate_that_is_no_number_names_klubb_send_rate(self) -> None:
        with pytest.raises(SettingsError, match="KLUBB_SEND_RATE"):
            Settings.from_env({"KLUBB_SEND_RATE": "fast"})

    def test_the_status_callback_url_is_left_out_where_twilio_cannot_call(self) -> None:
        """Twilio can't call a loopback public URL; a fake on loopback can; a public URL is
        always used."""
        local = Settings.from_env({})
        assert local.status_callback_url is None
        faked = local.with_(twilio_api_url="http://127.0.0.1:8099")
        assert faked.status_callback_url == "http://127.0.0.1:8080/sms/twilio/status"
        public = Settings.from_env({"KLUBB_PUBLIC_URL": "https://klubb.example.com/"})
        assert public.status_callback_url == "https://klubb.example.com/sms/twilio/status"

    async def test_the_app_sends_through_twilio_and_closes_its_session(
        self, settings: Settings, aiohttp_client: Any, fake: FakeTwilio
    ) -> None:
        """With KLUBB_GATEWAY=twilio the app's gateway is Twilio's, pointed at the API URL with
        the status route as callback; its HTTP session is closed with the app."""
        from bot.app import create_app

        app = create_app(
            settings.with_(
                gateway="twilio",
                twilio_account_sid=fake.account_sid,
                twilio_auth_token=fake.auth_token,
                twilio_api_url=fake.url,
            )
        )
        client = await aiohttp_client(app)
        gateway = app[GATEWAY]
        assert isinstance(gateway, TwilioGateway)
        await gateway.send(sms())
        assert fake.messages[0].status_callback == settings.public_url + "/sms/twilio/status"
        session = gateway._session
        assert session is not None
        await client.close()
        assert session.closed
