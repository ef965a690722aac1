"""Profiles that stay current (issue 17), through the webhook: PROFIL / PROFILE goes through the
club's questions again with the current answer shown; a birthday moves once a year; a question
the club adds is put once to a member who joined before it, after the reply to one of their
texts, and a SKIP is remembered. Every reply is one SMS with a 60-character club name."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.keys import CLUBS
from flows import profile, router
from flows.turn import ACTIVE, Intent, MemberView, Question, Turn
from locales import LANGUAGES, render
from locales.sms import fit_one, is_gsm7, segments
from store.clubs import asking, programs
from store.database import Database
from store.members import privacy
from store.members import profile as answers
from store.models import Member, ProfileAnswer, ProfilePrompt, ProfileQuestion
from tests.conftest import Phone
from tests.flows.test_page_link_sms import LONGEST_NAME, longest
from tests.locales.test_one_segment import CLUB, questions

CLUB_NAME = "Torshov Sport"
ASK_NAME = "Hva er fornavnet ditt? (eller HOPP OVER)"
ASK_BIRTHDAY = render("profile.ask.birthday", "nb")
ACTIVITIES = "Hvilke aktiviteter liker du? 1 Løping 2 Sykling 3 Ski. Svar med tall, f.eks. 1 3"
SHOP = {
    "kind": "choice",
    "key": "shop",
    "prompt": {"nb": "Hvor handler du?", "sv": "Var handlar du?", "en": "Where do you shop?"},
    "choices": [
        {"key": "city", "label": {"nb": "Sentrum", "sv": "Centrum", "en": "Centre"}},
        {"key": "mall", "label": {"nb": "Storsenteret", "sv": "Köpcentret", "en": "Mall"}},
    ],
}
ASK_SHOP = "Hvor handler du? 1 Sentrum 2 Storsenteret. Svar med ett tall."
POINTS = (
    "Du har 0 poeng (Bronse). 2 000 poeng igjen til Sølv. "
    "Du får poeng når du handler med nummeret ditt."
)
COUPONS = "Du har ingen kuponger nå."


def now_of(language: str, answer: object) -> str:
    """The current answer as PROFIL shows it after the question, and that SKIP keeps it."""
    now = render("profile.edit.now", language, answer=answer)
    return f"{now} {render('profile.edit.keep', language)}"


async def sign_up(phone: Phone, name: str = "Kari", birthday: str = "12.03.1990") -> None:
    """JOIN, YES and the demo club's three questions (Løping and Ski)."""
    for text in ("JOIN", "JA", name, birthday, "1 3"):
        assert await phone.text(text)


async def member(db: Database, number: str) -> Member:
    found = await db.run(lambda s: s.scalar(select(Member).where(Member.phone == number)))
    assert found is not None
    return found


async def answer_to(db: Database, number: str, key: str) -> list[str] | None:
    def work(session: Any) -> list[str] | None:
        return session.scalar(
            select(ProfileAnswer.value)
            .join(Member, Member.id == ProfileAnswer.member_id)
            .join(ProfileQuestion, ProfileQuestion.id == ProfileAnswer.question_id)
            .where(Member.phone == number, ProfileQuestion.key == key)
        )

    return await db.run(work)


async def prompts(db: Database, number: str) -> list[tuple[str, bool]]:
    """The added questions put to the member: (key, skipped)."""

    def work(session: Any) -> list[tuple[str, bool]]:
        rows = session.execute(
            select(ProfileQuestion.key, ProfilePrompt.skipped_at)
            .join(Member, Member.id == ProfilePrompt.member_id)
            .join(ProfileQuestion, ProfileQuestion.id == ProfilePrompt.question_id)
            .where(Member.phone == number)
        )
        return [(key, skipped is not None) for key, skipped in rows]

    return await db.run(work)


async def add_question(db: Database, club: int, client: TestClient, **question: Any) -> None:
    """The owner adds a question (seen by the webhook at once: its club cache is off)."""
    client.app[CLUBS].ttl = 0
    await db.run(lambda s: programs.add_question(s, programs.get(s, club), **question))


@pytest.fixture
def kari(phone: Phone) -> Phone:
    return phone


@pytest.fixture
def ola(client: TestClient, club: int) -> Phone:
    return Phone(client, "+4791234568")


class TestProfil:
    """PROFIL: each question again with the current answer; an answer replaces it, SKIP keeps
    it, and a short confirmation ends it."""

    async def test_change_one_answer_and_keep_another(self, kari: Phone, db: Database) -> None:
        await sign_up(kari)
        assert await kari.text("PROFIL") == f"{ASK_NAME} {now_of('nb', 'Kari')}"
        assert (
            await kari.text("Kristin") == f"{ASK_BIRTHDAY} Nå: 12.03.1990. HOPP OVER beholder det."
        )
        assert await kari.text("HOPP OVER") == f"{ACTIVITIES} {now_of('nb', 'Løping, Ski')}"
        done = await kari.text("2")
        assert done == "Takk! Profilen din i Torshov Sport er oppdatert."
        found = await member(db, kari.number)
        assert (found.first_name, found.birthday) == ("Kristin", dt.date(1990, 3, 12))
        assert found.flow is None
        assert found.birthday_changed_at is None  # kept: no change
        assert await answer_to(db, kari.number, "activities") == ["cycling"]
        assert await kari.text("POENG") == POINTS  # the walk is over

    @pytest.mark.parametrize(
        "text",
        [
            "PROFIL",
            "profile",
            "Profilen",
            "endre profil",
            "Endre profilen min",
            "change my answers",
            "ändra mina svar",
        ],
    )
    async def test_natural_ways_to_ask(self, kari: Phone, text: str) -> None:
        await sign_up(kari)
        assert await kari.text(text) == f"{ASK_NAME} {now_of('nb', 'Kari')}"

    async def test_english_and_swedish(self, client: TestClient, club: int) -> None:
        en = Phone(client, "+447700900123")
        await sign_up(en, birthday="14.03.1990")
        assert (
            await en.text("PROFILE")
            == "What is your first name? (or SKIP) Now: Kari. SKIP keeps it."
        )
        reply = await en.text("SKIP")
        assert reply is not None
        assert reply.endswith("Now: 14 Mar 1990. SKIP keeps it.")
        sv = Phone(client, "+46701234567")
        await sign_up(sv, birthday="1990-03-14")
        assert (
            await sv.text("PROFIL")
            == "Vad är ditt förnamn? (eller HOPPA ÖVER) Nu: Kari. HOPPA ÖVER behåller det."
        )
        reply = await sv.text("HOPPA ÖVER")
        assert reply is not None
        assert reply.endswith("Nu: 1990-03-14. HOPPA ÖVER behåller det.")

    async def test_stop_still_stops_and_help_still_helps(self, kari: Phone, db: Database) -> None:
        await sign_up(kari)
        await kari.text("PROFIL")
        helped = await kari.text("HJELP")
        assert helped is not None
        assert helped.startswith("Torshov Sport: ")
        assert (
            await kari.text("Kristin") == f"{ASK_BIRTHDAY} Nå: 12.03.1990. HOPP OVER beholder det."
        )
        assert await kari.text("STOPP") == render("stop.confirmed", "nb", club=CLUB_NAME)
        found = await member(db, kari.number)
        assert (found.status, found.flow, found.first_name) == ("stopped", None, "Kristin")

    async def test_a_wrong_answer_is_asked_again(self, kari: Phone) -> None:
        await sign_up(kari)
        await kari.text("PROFIL")
        await kari.text("HOPP OVER")
        assert await kari.text("i mars") == render("profile.again.birthday", "nb")

    async def test_a_number_not_joined_is_told_to_join(self, kari: Phone) -> None:
        reply = await kari.text("PROFIL")
        assert reply == "Profilen er for medlemmer. Send BLI MED for å bli medlem i Torshov Sport."


class TestBirthdayOnceAYear:
    """A birthday moves once in 365 days (birthday-coupon abuse); the first one given at sign-up
    is no change."""

    async def test_a_second_change_within_a_year_is_refused(
        self, kari: Phone, db: Database
    ) -> None:
        await sign_up(kari)
        assert (await member(db, kari.number)).birthday_changed_at is None
        await kari.text("PROFIL")
        await kari.text("HOPP OVER")
        assert await kari.text("14.03.1990") == f"{ACTIVITIES} {now_of('nb', 'Løping, Ski')}"
        await kari.text("HOPP OVER")
        changed = await member(db, kari.number)
        assert changed.birthday == dt.date(1990, 3, 14)
        assert changed.birthday_changed_at is not None

        await kari.text("PROFIL")
        await kari.text("HOPP OVER")
        refused = await kari.text("15.03.1990")
        # The refusal and the next question in one SMS: the walk goes on.
        assert refused == (
            f"Fødselsdatoen kan bare endres én gang i året. {ACTIVITIES} Nå: Løping, Ski."
        )
        assert segments(refused).segments == 1
        # The next text answers the next question, not the birthday again.
        assert await kari.text("2") == "Takk! Profilen din i Torshov Sport er oppdatert."
        kept = await member(db, kari.number)
        assert kept.birthday == dt.date(1990, 3, 14)
        assert kept.birthday_changed_at == changed.birthday_changed_at
        assert kept.flow is None
        assert await answer_to(db, kari.number, "activities") == ["cycling"]

    async def test_a_refusal_at_the_last_question_ends_profil(
        self, kari: Phone, db: Database, club: int, client: TestClient
    ) -> None:
        """With the birthday the club's last question, the refusal ends PROFIL in one SMS."""
        await sign_up(kari)
        await kari.text("PROFIL")
        await kari.text("HOPP OVER")
        await kari.text("14.03.1990")
        await kari.text("HOPP OVER")

        def birthday_last(session: Any) -> None:
            for question in programs.questions(session, club):
                if question.kind not in programs.BUILT_IN_KINDS:
                    programs.remove_question(session, club, question.id)

        client.app[CLUBS].ttl = 0
        await db.run(birthday_last)
        await kari.text("PROFIL")
        await kari.text("HOPP OVER")
        assert await kari.text("15.03.1990") == (
            "Fødselsdatoen kan bare endres én gang i året. "
            "Takk! Profilen din i Torshov Sport er oppdatert."
        )
        assert (await member(db, kari.number)).flow is None
        assert await kari.text("POENG") == POINTS

    async def test_a_year_later_it_may_move_again(self, kari: Phone, db: Database) -> None:
        await sign_up(kari)
        year_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=366)

        def changed_long_ago(session: Any) -> None:
            found = session.scalar(select(Member).where(Member.phone == kari.number))
            found.birthday_changed_at = year_ago

        await db.run(changed_long_ago)
        await kari.text("PROFIL")
        await kari.text("HOPP OVER")
        assert await kari.text("15.03.1990") == f"{ACTIVITIES} {now_of('nb', 'Løping, Ski')}"
        assert (await member(db, kari.number)).birthday == dt.date(1990, 3, 15)

    async def test_the_store_rule(self) -> None:
        """store.members.profile.set_birthday: first given, same, refused, after a year."""
        now = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)
        someone = Member(birthday=None, birthday_changed_at=None)
        assert answers.set_birthday(someone, dt.date(1990, 1, 1), now)
        assert someone.birthday_changed_at is None
        assert answers.set_birthday(someone, dt.date(1990, 1, 2), now)
        assert someone.birthday_changed_at == now
        assert answers.set_birthday(someone, dt.date(1990, 1, 2), now)  # no move
        assert not answers.set_birthday(someone, dt.date(1990, 1, 3), now + dt.timedelta(364))
        assert someone.birthday == dt.date(1990, 1, 2)
        assert answers.set_birthday(someone, dt.date(1990, 1, 3), now + dt.timedelta(365))

    async def test_a_date_under_the_minimum_age_changes_nothing(
        self, kari: Phone, db: Database
    ) -> None:
        await sign_up(kari)
        await kari.text("PROFIL")
        await kari.text("HOPP OVER")
        young = f"01.01.{dt.datetime.now(dt.UTC).year - 5}"
        reply = await kari.text(young)
        assert reply is not None
        assert reply.startswith("Med den datoen er du under 13 år")
        found = await member(db, kari.number)
        assert (found.status, found.birthday) == ("active", dt.date(1990, 3, 12))


class TestAnAddedQuestion:
    """A question the owner adds is put once to a member who joined before it, after the reply
    to their next text (when both fit one SMS), never as a message of its own."""

    async def test_put_once_answered_and_stored(
        self, kari: Phone, db: Database, club: int, client: TestClient
    ) -> None:
        await sign_up(kari)
        await add_question(db, club, client, **SHOP)
        assert await kari.text("KUPONGER") == f"{COUPONS} {ASK_SHOP}"
        assert await prompts(db, kari.number) == [("shop", False)]
        assert await kari.text("2") == "Takk for svaret!"
        assert await answer_to(db, kari.number, "shop") == ["mall"]
        assert await kari.text("KUPONGER") == COUPONS  # never again
        assert (await member(db, kari.number)).flow is None

    async def test_a_skip_is_remembered(
        self, kari: Phone, ola: Phone, db: Database, club: int, client: TestClient
    ) -> None:
        await sign_up(kari)
        await sign_up(ola, name="Ola")
        await add_question(db, club, client, **SHOP)
        assert await ola.text("KUPONGER") == f"{COUPONS} {ASK_SHOP}"
        assert await ola.text("HOPP OVER") == "Greit, vi spør ikke om det igjen."
        assert await prompts(db, ola.number) == [("shop", True)]
        assert await ola.text("KUPONGER") == COUPONS
        assert await answer_to(db, ola.number, "shop") is None
        assert await kari.text("KUPONGER") == f"{COUPONS} {ASK_SHOP}"  # Kari's own turn

    async def test_the_members_data_lists_it_and_erasure_forgets_it(
        self, ola: Phone, db: Database, club: int, client: TestClient
    ) -> None:
        await sign_up(ola, name="Ola")
        await add_question(db, club, client, **SHOP)
        await ola.text("KUPONGER")
        await ola.text("HOPP OVER")

        def exported(session: Any) -> dict[str, Any]:
            found = session.scalars(select(Member).where(Member.phone == ola.number)).one()
            return privacy.export(
                session, programs.get(session, club), found, dt.datetime.now(dt.UTC)
            )

        data = await db.run(exported)
        [put] = data["profile_questions_put"]
        assert put["question"] == "shop"
        assert put["skipped_at"] is not None
        assert await ola.text("SLETT") is not None
        assert await ola.text("JA") is not None
        assert await db.run(lambda s: s.scalars(select(ProfilePrompt.id)).all()) == []

    async def test_not_after_stop_help_or_during_a_flow(
        self, kari: Phone, ola: Phone, db: Database, club: int, client: TestClient
    ) -> None:
        await sign_up(kari)
        await sign_up(ola, name="Ola")
        assert await ola.text("STOPP")
        await add_question(db, club, client, **SHOP)
        assert await ola.text("KUPONGER") is None  # a stopped member hears nothing
        assert await ola.text("STOPP") is None
        assert await prompts(db, ola.number) == []
        helped = await kari.text("HJELP")
        assert helped is not None
        assert ASK_SHOP not in helped
        assert await kari.text("PROFIL") == f"{ASK_NAME} {now_of('nb', 'Kari')}"
        await kari.text("HOPP OVER")
        resumed = f"{COUPONS} {ASK_BIRTHDAY} {now_of('nb', dt.date(1990, 3, 12))}"
        assert await kari.text("KUPONGER") == resumed  # in PROFIL: no added question
        assert await prompts(db, kari.number) == []
        assert await kari.text("hva er dette?") is not None  # not understood: a person answers
        assert await prompts(db, kari.number) == []

    async def test_a_text_that_is_no_answer_drops_it(
        self, kari: Phone, db: Database, club: int, client: TestClient
    ) -> None:
        await sign_up(kari)
        await add_question(db, club, client, **SHOP)
        assert await kari.text("KUPONGER") == f"{COUPONS} {ASK_SHOP}"
        assert await kari.text("POENG") == POINTS
        assert await kari.text("KUPONGER") == COUPONS
        assert await prompts(db, kari.number) == [("shop", False)]
        assert (await member(db, kari.number)).flow is None

    async def test_a_member_who_joins_after_it_is_asked_at_sign_up_only(
        self, kari: Phone, db: Database, club: int, client: TestClient
    ) -> None:
        await add_question(db, club, client, **SHOP)
        for text in ("JOIN", "JA", "Kari", "12.03.1990"):
            await kari.text(text)
        assert await kari.text("1 3") == ASK_SHOP
        assert await kari.text("HOPP OVER") == render("profile.done", "nb", club=CLUB_NAME)
        assert await kari.text("KUPONGER") == COUPONS
        assert await prompts(db, kari.number) == [("shop", True)]

    async def test_a_reply_too_long_to_share_waits_for_a_later_one(
        self, kari: Phone, db: Database, club: int, client: TestClient
    ) -> None:
        await sign_up(kari)
        long = {
            **SHOP,
            "key": "long",
            "prompt": {"nb": "Hvilken av butikkene våre handler du oftest i, og hvor?"},
        }
        await add_question(db, club, client, **long)
        # Invite's reply and the question would take two SMS: the reply goes alone.
        invited = await kari.text("VERV")
        assert invited is not None
        assert "Hvilken av butikkene" not in invited
        assert await prompts(db, kari.number) == []
        asked = await kari.text("KUPONGER")
        assert asked is not None
        assert asked.startswith(f"{COUPONS} Hvilken av butikkene")
        assert segments(asked).segments == 1


# --- one SMS each, with a 60-character club name -----------------------------------------------


def _member(language: str, flow: str | None = None, step: str | None = None) -> MemberView:
    return MemberView(
        status=ACTIVE,
        language=language,
        first_name="Marie-Christine",
        flow=flow,
        step=step,
        data={},
        joined=True,
        has_birthday=True,
        birthday=dt.date(1990, 9, 30),
    )


def _one_sms(outcome: Any, language: str) -> str:
    params = longest(language)
    parts = [
        (render(r.id, language, **params | dict(r.params)), r.optional) for r in outcome.replies
    ]
    text = fit_one(parts)
    assert is_gsm7(text), text
    assert segments(text).segments == 1, (len(text), text)
    return text


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_profil_reply_is_one_sms_with_the_current_answer(language: str) -> None:
    """PROFIL and each answer, from a member who answered every question at its longest (all
    choices picked, a 100-character text): one SMS each, the current answer kept in it."""
    asked = questions(language)
    given = {
        q.id: tuple(c["key"] for c in q.choices) if q.choices else ("x" * profile.MAX_TEXT_ANSWER,)
        for q in asked
        if q.kind in profile.ADDED_KINDS
    }
    start = Turn(
        "PROFIL",
        Intent("profile"),
        _member(language),
        CLUB,
        language,
        dt.date(2026, 12, 6),
        asked,
        answers=given,
    )
    outcome = router.route(start)
    _one_sms(outcome, language)
    for question in asked:
        here = _member(language, profile.EDIT_FLOW, f"q{question.id}")
        for text, intent in (("HOPP OVER", Intent("skip")), ("PROFIL", Intent("profile"))):
            turn = Turn(
                text, intent, here, CLUB, language, dt.date(2026, 12, 6), asked, answers=given
            )
            reply = _one_sms(router.route(turn), language)
            if question.kind in ("first_name", "birthday", "multichoice", "choice"):
                assert render("profile.edit.now", language, answer="x")[:3] in reply


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_refused_birthday_goes_on_to_the_next_question_in_one_sms(language: str) -> None:
    """A second birthday change within a year, at each place the birthday may stand (before the
    club's longest question of each kind, or last): the refusal and the next question (or the
    end of PROFIL, with a 60-character club name) in one SMS, and the walk moves on."""
    asked = questions(language)
    birthday = next(q for q in asked if q.kind == "birthday")
    others = [q for q in asked if q.kind not in ("first_name", "birthday")]
    locked = replace(_member(language, profile.EDIT_FLOW, f"q{birthday.id}"), birthday_locked=True)
    refusal = render("profile.birthday.locked", language)
    for following in (*others, None):
        order = (birthday, following) if following else (birthday,)
        turn = Turn("01.02.1990", None, locked, CLUB, language, dt.date(2026, 12, 6), order)
        outcome = router.route(turn)
        text = _one_sms(outcome, language)
        assert text.startswith(refusal + " "), text
        assert not outcome.effects  # the birthday stays
        if following is None:
            assert outcome.state is None
            assert text.endswith(render("profile.edit.done", language, club=LONGEST_NAME))
        else:
            assert outcome.state.step == f"q{following.id}"  # type: ignore[union-attr]
            question_id, params = asking.asked(
                following.kind, following.prompt, following.choices, language
            )
            assert render(question_id, language, **params) in text


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_birthday_refusal_and_the_added_questions_replies_are_one_sms(language: str) -> None:
    for message_id in (
        "profile.birthday.locked",
        "profile.edit.now",
        "profile.edit.keep",
        "profile.edit.too_young",
        "profile.edit.done",
        "profile.edit.guest",
        "profile.edit.none",
        "profile.new.thanks",
        "profile.new.skipped",
    ):
        text = render(message_id, language, **longest(language))
        assert is_gsm7(text), text
        assert segments(text).segments == 1, (message_id, text)
    assert len(LONGEST_NAME) == 60


def test_may_put_only_after_a_plain_answer_between_flows() -> None:
    """The rule that keeps the hot path's query to the texts that may carry a question."""
    between = _member("nb")
    today = dt.date(2026, 12, 6)
    page = Turn("MIN SIDE", Intent("page"), between, CLUB, "nb", today)
    assert profile.may_put(page, router.route(page))
    for name in ("help", "stop", "start", "mydata", "delete", "profile"):
        turn = Turn("x", Intent(name), between, CLUB, "nb", today)
        assert not profile.may_put(turn, router.route(turn)), name
    in_flow = _member("nb", profile.EDIT_FLOW, "q1")
    turn = Turn(
        "MIN SIDE",
        Intent("page"),
        in_flow,
        CLUB,
        "nb",
        today,
        (Question(1, "first_name", "first_name", {}),),
    )
    assert not profile.may_put(turn, router.route(turn))
