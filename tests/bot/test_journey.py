"""A member's whole journey through the signed webhook, in each language."""

from __future__ import annotations

import pytest

from tests.conftest import Phone


class TestJourney:
    async def test_join_consent_profile_in_english(self, client, club) -> None:
        """JOIN, YES, name, birthday and interests take a UK number from stranger to member."""
        phone = Phone(client, "+447700900123")
        confirm = await phone.text("JOIN")
        assert confirm.startswith("Torshov Sport: reply YES to join")
        for piece in ("max 2/mo", "msg&data rates may apply", "STOP", "HELP"):
            assert piece in confirm
        assert await phone.text("yes") == (
            "Welcome to Torshov Sport! What is your first name? (or SKIP)"
        )
        assert (await phone.text("Kari")).startswith("Thanks Kari! What is your date of birth")
        assert (await phone.text("12.03.1990")).startswith(
            "Which activities interest you? 1 Running"
        )
        assert (await phone.text("1 3")).startswith("All set!")

    @pytest.mark.parametrize(
        ("number", "expected"),
        [("+4791234567", "svar JA"), ("+46701234567", "svara JA"), ("+447700900123", "reply YES")],
    )
    async def test_language_follows_the_country_of_the_number(
        self, client, club, number, expected
    ) -> None:
        assert expected in await Phone(client, number).text("join")

    async def test_stop_in_the_middle_of_the_profile_stops(self, phone) -> None:
        """STOP is never swallowed by a flow (RapidPro #519): it wins on any step."""
        await phone.text("JOIN")
        await phone.text("JA")
        stopped = await phone.text("STOP")
        assert "START" in stopped
        assert await phone.text("Kari") is None
        assert await phone.text("HJELP") is None

    async def test_start_after_stop_is_a_new_consent(self, phone) -> None:
        await phone.text("JOIN")
        await phone.text("JA")
        await phone.text("stopp")
        back = await phone.text("START")
        assert back.startswith("Velkommen tilbake")
