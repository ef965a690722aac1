"""The conversation as data: what router.route decides for a text, on every step, in nb, sv, en.

Turns are built by hand, with the intent read as flows.conversation reads it (flows.understand,
in the state of the question open); no server, no database.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows import profile, router
from flows.privacy import CONFIRM_DELETE
from flows.turn import (
    ACTIVE,
    KEEP,
    PENDING,
    STOPPED,
    Club,
    DiscardPending,
    Erase,
    GrantConsent,
    MemberView,
    Outcome,
    Question,
    Reply,
    RequestJoin,
    SaveAnswer,
    SetBirthday,
    SetFirstName,
    SetLanguage,
    SkipQuestion,
    State,
    Turn,
    WithdrawConsent,
)
from flows.understand import understand

TODAY = dt.date(2026, 5, 14)
CLUB = Club(
    id=1,
    name="Torshov Sport",
    contact="post@torshovsport.no",
    privacy_url="https://example.com/privacy",
    per_month=2,
    min_age=13,
    timezone="Europe/Oslo",
)
CLUB_15 = replace(CLUB, min_age=15)

# The demo club's questions (bot.cli.demo.DEMO_QUESTIONS).
FIRST_NAME = Question(1, "first_name", "first_name", {})
BIRTHDAY = Question(2, "birthday", "birthday", {})
ACTIVITIES = Question(
    3,
    "activities",
    "multichoice",
    {
        "nb": "Hvilke aktiviteter liker du?",
        "sv": "Vilka aktiviteter gillar du?",
        "en": "Which activities interest you?",
    },
    (
        {"key": "running", "label": {"nb": "Løping", "sv": "Löpning", "en": "Running"}},
        {"key": "cycling", "label": {"nb": "Sykling", "sv": "Cykling", "en": "Cycling"}},
        {"key": "skiing", "label": {"nb": "Ski", "sv": "Skidor", "en": "Skiing"}},
    ),
)
QUESTIONS = (FIRST_NAME, BIRTHDAY, ACTIVITIES)
# Two more kinds a club may add.
SHOP = Question(
    4,
    "shop",
    "choice",
    {"nb": "Hvilken butikk?", "en": "Which shop?"},
    ({"key": "torshov", "label": "Torshov"}, {"key": "majorstuen", "label": "Majorstuen"}),
)
BRAND = Question(5, "brand", "text", {"nb": "Favorittmerke?", "en": "Favourite brand?"})

ASKS = {  # by question id, in nb
    FIRST_NAME.id: Reply("profile.ask.first_name"),
    BIRTHDAY.id: Reply("profile.ask.birthday"),
    ACTIVITIES.id: Reply(
        "profile.ask.multichoice",
        {"question": "Hvilke aktiviteter liker du?", "options": "1 Løping 2 Sykling 3 Ski"},
    ),
}

CONSENT = State("join", "consent")


def member(
    status: str = ACTIVE,
    *,
    state: State | None = None,
    language: str | None = None,
    first_name: str | None = None,
    joined: bool | None = None,
) -> MemberView:
    return MemberView(
        status=status,
        language=language,
        first_name=first_name,
        flow=state.flow if state else None,
        step=state.step if state else None,
        data=dict(state.data) if state else {},
        joined=status != PENDING if joined is None else joined,
    )


def at(question: Question) -> MemberView:
    """An active member who is being asked `question`."""
    return member(state=profile.state_for(question))


PENDING_MEMBER = member(PENDING, state=CONSENT)
STOPPED_MEMBER = member(STOPPED)
ACTIVE_MEMBER = member()


def turn(
    text: str,
    who: MemberView | None = None,
    *,
    club: Club = CLUB,
    language: str = "nb",
    questions: tuple[Question, ...] = QUESTIONS,
) -> Turn:
    """A turn whose intent is read as flows.conversation reads it."""
    draft = Turn(text, None, who, club, language, TODAY, questions)
    reading = understand(text, state=router.reading_state(draft))
    return replace(draft, intent=reading.intent, why=reading.why)


def route(text: str, who: MemberView | None = None, **kwargs: Any) -> Outcome:
    return router.route(turn(text, who, **kwargs))


def ids(outcome: Outcome) -> list[str]:
    return [r.id for r in outcome.replies]


# Every step a member can be on, and who is on it.
EVERY_STEP = {
    "stranger": None,
    "active": ACTIVE_MEMBER,
    "consent": PENDING_MEMBER,
    "first_name": at(FIRST_NAME),
    "birthday": at(BIRTHDAY),
    "activities": at(ACTIVITIES),
    "confirm_delete": member(state=CONFIRM_DELETE),
}
PROFILE_STEPS = {"first_name": FIRST_NAME, "birthday": BIRTHDAY, "activities": ACTIVITIES}


class TestJoin:
    """JOIN from a stranger asks to confirm (double opt-in); the answer grants or forgets."""

    @pytest.mark.parametrize(
        "text", ["JOIN", "join", "Join!", "bli med", "BLI MEDLEM", "gå med", "medlem", "start"]
    )
    def test_a_stranger_asks_to_join(self, text: str) -> None:
        """The number is recorded as pending and asked to confirm."""
        outcome = route(text)
        assert ids(outcome) == ["join.confirm"]
        assert outcome.state == CONSENT
        assert outcome.effects == (RequestJoin(None),)

    @pytest.mark.parametrize("text", ["JOIN KARI7", "join kari7", "bli med Kari7", "gå med KARI7"])
    def test_a_referral_code_is_kept_for_the_consent_step(self, text: str) -> None:
        """JOIN KARI7 records the code, upper-cased, with the request and in the step's data."""
        outcome = route(text)
        assert outcome.effects == (RequestJoin("KARI7"),)
        assert outcome.state == State("join", "consent", {"referral_code": "KARI7"})

    @pytest.mark.parametrize("text", ["join please", "JOIN TAKK", "bli med tack"])
    def test_a_polite_join_has_no_referral_code(self, text: str) -> None:
        """ "join please" is no referral code PLEASE."""
        outcome = route(text)
        assert outcome.effects == (RequestJoin(None),)
        assert outcome.state == CONSENT

    def test_a_member_who_joins_again_is_told_so(self) -> None:
        """An active member's JOIN changes nothing."""
        outcome = route("JOIN", ACTIVE_MEMBER)
        assert ids(outcome) == ["join.already"]
        assert outcome.state is KEEP
        assert outcome.effects == ()

    def test_a_pending_number_that_joins_again_is_asked_again(self) -> None:
        """A second JOIN while pending asks again without a second request."""
        outcome = route("JOIN", PENDING_MEMBER)
        assert ids(outcome) == ["join.confirm"]
        assert outcome.state == CONSENT
        assert outcome.effects == ()

    @pytest.mark.parametrize(
        "text",
        ["yes", "YES!", "Yes please", "ja", "Ja takk", "JA TACK", "jepp", "ja gjerne", "START"],
    )
    def test_yes_grants_consent_and_asks_the_first_question(self, text: str) -> None:
        """YES (nb, sv, en) is consent to the wording asked; the welcome and question 1 follow."""
        outcome = route(text, PENDING_MEMBER)
        assert outcome.effects == (GrantConsent("join.confirm"),)
        assert outcome.replies == (Reply("join.welcome"), Reply("profile.ask.first_name"))
        assert outcome.state == State("profile", "q1")

    def test_yes_with_no_questions_is_done_at_once(self) -> None:
        """A club without profile questions welcomes and is done."""
        outcome = route("yes", PENDING_MEMBER, questions=())
        assert ids(outcome) == ["join.welcome", "profile.done"]
        assert outcome.state is None
        assert outcome.effects == (GrantConsent("join.confirm"),)

    @pytest.mark.parametrize("text", ["no", "NO!", "nei", "Nei takk", "nej", "nej tack", "nope"])
    def test_no_forgets_the_number(self, text: str) -> None:
        """NO (nb, sv, en) declines, and nothing of the number is kept."""
        outcome = route(text, PENDING_MEMBER)
        assert ids(outcome) == ["join.declined"]
        assert outcome.state is None
        assert outcome.effects == (DiscardPending(),)

    @pytest.mark.parametrize("text", ["yse", "yess", "jaa", "hva?", "Kari", "", "😀"])
    def test_anything_else_asks_again(self, text: str) -> None:
        """Consent is never read from a typo or a stray text: the question is asked again."""
        outcome = route(text, PENDING_MEMBER)
        assert ids(outcome) == ["join.confirm.again"]
        assert outcome.state is KEEP
        assert outcome.effects == ()


class TestStop:
    """STOP, in every language and on every step, ends marketing at once in one reply."""

    @pytest.mark.parametrize("step", EVERY_STEP)
    @pytest.mark.parametrize(
        "text",
        [
            "STOP",
            "stopp",
            "Stopp!",
            "avsluta",
            "AVSLUTT",
            "meld av",
            "unsubscribe",
            "cancel",
            "stopp takk",
            "please stop",
            "sluta skicka sms",
        ],
    )
    def test_stop_anywhere(self, text: str, step: str) -> None:
        """Consent is withdrawn, stop is confirmed, and the member's flow is cleared."""
        outcome = route(text, EVERY_STEP[step])
        assert ids(outcome) == ["stop.confirmed"]
        assert outcome.state is None
        assert outcome.effects == (WithdrawConsent("stop"),)

    @pytest.mark.parametrize("step", ["stranger", "active", "consent", "birthday", "activities"])
    def test_a_stop_typo_stops_where_no_free_text_is_expected(self, step: str) -> None:
        """ "STPO" is STOP on every step that does not expect a name or free text."""
        outcome = route("STPO", EVERY_STEP[step])
        assert outcome.effects == (WithdrawConsent("stop"),)

    @pytest.mark.parametrize("text", ["don't stop", "ikke stopp", "Shop?", "stor"])
    def test_stop_words_that_mean_something_else_do_not_stop(self, text: str) -> None:
        """A sentence that only contains a stop word, or a real word near one, is not STOP."""
        outcome = route(text, ACTIVE_MEMBER)
        assert not any(isinstance(e, WithdrawConsent) for e in outcome.effects)
        assert outcome.not_understood
        # A sentence is passed on to the shop; a single word gets the member's menu.
        assert ids(outcome) == ["unknown.forwarded" if " " in text else "unknown.member"]


class TestStopped:
    """A member who stopped hears nothing more until START or JOIN; privacy is still answered."""

    @pytest.mark.parametrize(
        "text", ["hei", "yes", "HELP", "info", "STOP", "poeng", "Kari", "", "😀", "LANG SV", "1"]
    )
    def test_any_other_text_gets_silence(self, text: str) -> None:
        """No reply, no state change, nothing recorded: STOP was confirmed once already."""
        outcome = route(text, STOPPED_MEMBER)
        assert outcome == Outcome.silence()
        assert outcome.replies == ()

    @pytest.mark.parametrize("text", ["START", "start", "Unstop", "start!"])
    def test_start_comes_back(self, text: str) -> None:
        """START is a new consent to the return wording, confirmed at once."""
        outcome = route(text, STOPPED_MEMBER)
        assert ids(outcome) == ["start.confirmed"]
        assert outcome.effects == (GrantConsent("start.confirmed"),)
        assert outcome.state is None

    @pytest.mark.parametrize("text", ["JOIN", "bli med", "gå med"])
    def test_join_asks_to_confirm_again(self, text: str) -> None:
        """JOIN makes a stopped member pending and asks the opt-in question again."""
        outcome = route(text, STOPPED_MEMBER)
        assert ids(outcome) == ["join.confirm"]
        assert outcome.effects == (RequestJoin(None),)
        assert outcome.state == CONSENT

    @pytest.mark.parametrize("text", ["MYDATA", "mine data", "mina data", "my data"])
    def test_mydata_is_answered(self, text: str) -> None:
        """A data-access request is answered even after STOP."""
        outcome = route(text, STOPPED_MEMBER)
        assert ids(outcome) == ["mydata.summary"]
        assert outcome.effects == ()

    @pytest.mark.parametrize("text", ["DELETE", "slett", "radera"])
    def test_delete_is_answered(self, text: str) -> None:
        """An erasure request is answered even after STOP, and asks to confirm; the consent
        already withdrawn is not withdrawn twice."""
        outcome = route(text, STOPPED_MEMBER)
        assert ids(outcome) == ["delete.ask"]
        assert outcome.state == CONFIRM_DELETE
        assert outcome.effects == ()

    def test_a_stopped_member_can_confirm_delete(self) -> None:
        """YES to the delete question erases a stopped member too."""
        outcome = route("yes", member(STOPPED, state=CONFIRM_DELETE))
        assert ids(outcome) == ["delete.done"]
        assert outcome.effects == (Erase("member_request"),)

    def test_start_while_confirming_delete_comes_back(self) -> None:
        """START from a stopped member asked to confirm DELETE is START, not "keep my data"."""
        outcome = route("START", member(STOPPED, state=CONFIRM_DELETE))
        assert outcome.effects == (GrantConsent("start.confirmed"),)


class TestHelp:
    """HELP answers from anywhere and then asks the pending question again."""

    @pytest.mark.parametrize("step", PROFILE_STEPS)
    @pytest.mark.parametrize("text", ["HELP", "help?", "hjelp", "HJÄLP", "hjalp", "info"])
    def test_help_mid_profile(self, text: str, step: str) -> None:
        """The help text, then the same question again; the member stays on the step."""
        outcome = route(text, EVERY_STEP[step])
        asked_again = replace(ASKS[PROFILE_STEPS[step].id], optional=True)
        assert outcome.replies == (Reply("help.member"), asked_again)
        assert outcome.state is KEEP
        assert outcome.effects == ()

    def test_info_at_the_first_name_question_is_help(self) -> None:
        """Decision (see test_keywords): "Info" is HELP, not a first name."""
        outcome = route("Info", at(FIRST_NAME))
        assert ids(outcome) == ["help.member", "profile.ask.first_name"]
        assert not any(isinstance(e, SetFirstName) for e in outcome.effects)

    def test_help_while_asked_to_consent(self) -> None:
        """A pending number gets the guest help, then the opt-in question again."""
        outcome = route("HELP", PENDING_MEMBER)
        assert ids(outcome) == ["help.guest", "join.confirm.again"]
        assert outcome.state is KEEP

    @pytest.mark.parametrize(
        ("who", "expected"), [(None, "help.guest"), (ACTIVE_MEMBER, "help.member")]
    )
    def test_help_outside_a_flow(self, who: MemberView | None, expected: str) -> None:
        """Members and strangers get their own help text, and nothing else."""
        outcome = route("help", who)
        assert ids(outcome) == [expected]
        assert outcome.effects == ()

    def test_a_help_typo_helps_at_the_birthday_question(self) -> None:
        """ "hjlep" is HELP where no free text is expected."""
        outcome = route("hjlep", at(BIRTHDAY))
        assert ids(outcome) == ["help.member", "profile.ask.birthday"]


class TestLanguage:
    """LANG changes the member's language, and the pending question is asked again in it."""

    @pytest.mark.parametrize(
        ("text", "language", "question", "options"),
        [
            ("LANG SV", "sv", "Vilka aktiviteter gillar du?", "1 Löpning 2 Cykling 3 Skidor"),
            ("språk svenska", "sv", "Vilka aktiviteter gillar du?", "1 Löpning 2 Cykling 3 Skidor"),
            ("svenska", "sv", "Vilka aktiviteter gillar du?", "1 Löpning 2 Cykling 3 Skidor"),
            ("lang en", "en", "Which activities interest you?", "1 Running 2 Cycling 3 Skiing"),
            ("English", "en", "Which activities interest you?", "1 Running 2 Cycling 3 Skiing"),
        ],
    )
    def test_lang_mid_profile_asks_again_in_the_new_language(
        self, text: str, language: str, question: str, options: str
    ) -> None:
        """SetLanguage, lang.changed, then the question worded in the new language."""
        outcome = route(text, at(ACTIVITIES), language="nb")
        assert outcome.effects == (SetLanguage(language),)
        assert outcome.language == language
        assert outcome.replies == (
            Reply("lang.changed"),
            Reply(
                "profile.ask.multichoice", {"question": question, "options": options}, optional=True
            ),
        )
        assert outcome.state is KEEP

    def test_lang_at_the_first_name_question(self) -> None:
        """A language's name at the first-name question is LANG, not a name."""
        outcome = route("Svenska", at(FIRST_NAME))
        assert outcome.effects == (SetLanguage("sv"),)
        assert ids(outcome) == ["lang.changed", "profile.ask.first_name"]
        assert outcome.language == "sv"

    def test_lang_while_asked_to_consent(self) -> None:
        """LANG while pending is kept, and the opt-in question is asked again in it."""
        outcome = route("LANG EN", PENDING_MEMBER)
        assert outcome.effects == (SetLanguage("en"),)
        assert ids(outcome) == ["lang.changed", "join.confirm.again"]
        assert outcome.language == "en"

    @pytest.mark.parametrize("text", ["LANG", "språk", "LANG klingon"])
    def test_lang_without_a_known_language_asks_which(self, text: str) -> None:
        """LANG alone or with an unknown language asks which one, and changes nothing."""
        outcome = route(text, ACTIVE_MEMBER)
        assert ids(outcome) == ["lang.ask"]
        assert outcome.effects == ()
        assert outcome.language is None

    def test_a_stranger_gets_the_menu_in_the_language_named(self) -> None:
        """A number with no record gets its answer in the language, with nothing recorded."""
        outcome = route("english", None)
        assert ids(outcome) == ["menu.guest"]
        assert outcome.language == "en"
        assert outcome.effects == ()

    def test_prompt_as_a_read_only_mapping(self) -> None:
        """A question's wording may be any Mapping, as Question declares."""
        frozen = replace(ACTIVITIES, prompt=MappingProxyType(dict(ACTIVITIES.prompt)))
        outcome = route("LANG SV", at(frozen), questions=(FIRST_NAME, BIRTHDAY, frozen))
        assert outcome.replies[1].params["question"] == "Vilka aktiviteter gillar du?"


class TestProfileAnswers:
    """Each answer is saved and the next question asked; a bad answer asks again."""

    @pytest.mark.parametrize(
        ("text", "name"),
        [
            ("kari", "Kari"),
            ("Jeg heter Ola", "Ola"),
            ("my name is anne-marie", "Anne-Marie"),
            ("Åse", "Åse"),
            ("Joan", "Joan"),
            ("Quin", "Quin"),
            ("Stian", "Stian"),
            ("Jon", "Jon"),
            ("Vera", "Vera"),
            ("Jo", "Jo"),
        ],
    )
    def test_first_name(self, text: str, name: str) -> None:
        """A first name, even one near a keyword, is saved and thanked; the birthday is next."""
        outcome = route(text, at(FIRST_NAME))
        assert outcome.effects == (SetFirstName(name),)
        assert outcome.replies == (
            Reply("profile.thanks", {"first_name": name}),
            Reply("profile.ask.birthday"),
        )
        assert outcome.state == State("profile", "q2")

    @pytest.mark.parametrize("text", ["😀", "1234", "a" * 41, "one two three four"])
    def test_no_first_name_asks_again(self, text: str) -> None:
        """No name in the answer: asked again, nothing saved."""
        outcome = route(text, at(FIRST_NAME))
        assert outcome == Outcome.say(Reply("profile.again.first_name"))

    @pytest.mark.parametrize("text", ["12.03.1990", "1990-03-12", "12 mars 1990", "120390"])
    def test_birthday(self, text: str) -> None:
        """A birthday is saved; the club's own question is next."""
        outcome = route(text, at(BIRTHDAY))
        assert outcome.effects == (SetBirthday(dt.date(1990, 3, 12)),)
        assert outcome.replies == (ASKS[ACTIVITIES.id],)
        assert outcome.state == State("profile", "q3")

    @pytest.mark.parametrize("text", ["i mai", "31.02.1990", "01.01.2030", "12.03"])
    def test_no_birthday_asks_again(self, text: str) -> None:
        """A text that is no birthday is asked again, nothing saved."""
        outcome = route(text, at(BIRTHDAY))
        assert outcome == Outcome.say(Reply("profile.again.birthday"))

    @pytest.mark.parametrize(
        ("club", "born", "too_young"),
        [
            (CLUB, "15.05.2013", True),
            (CLUB, "14.05.2013", False),
            (CLUB, "01.01.2020", True),
            (CLUB_15, "15.05.2011", True),
            (CLUB_15, "14.05.2013", True),
            (CLUB_15, "14.05.2011", False),
        ],
    )
    def test_under_the_clubs_minimum_age(self, club: Club, born: str, too_young: bool) -> None:
        """Under min_age (13, or 15 where the club says so) ends the sign-up and keeps nothing."""
        outcome = route(born, at(BIRTHDAY), club=club)
        if too_young:
            assert outcome.replies == (Reply("profile.too_young", {"min_age": club.min_age}),)
            assert outcome.effects == (Erase("under_age"),)
            assert outcome.state is None
        else:
            assert outcome.effects == (SetBirthday(parse(born)),)
            assert outcome.state == State("profile", "q3")

    @pytest.mark.parametrize(
        ("text", "language", "picked"),
        [
            ("1 3", "nb", ("running", "skiing")),
            ("1 og 3", "nb", ("running", "skiing")),
            ("Løping, ski", "nb", ("running", "skiing")),
            ("Ski", "nb", ("skiing",)),
            ("skidor", "sv", ("skiing",)),
            ("2", "en", ("cycling",)),
        ],
    )
    def test_last_question_saves_and_is_done(
        self, text: str, language: str, picked: tuple[str, ...]
    ) -> None:
        """The last answer is saved and the profile is done; "Ski" is an answer, not SKIP."""
        outcome = route(text, at(ACTIVITIES), language=language)
        assert outcome.effects == (SaveAnswer(3, picked),)
        assert ids(outcome) == ["profile.done"]
        assert outcome.state is None

    @pytest.mark.parametrize("text", ["7", "1 4", "0", "swimming", "yes"])
    def test_bad_multichoice_asks_again_with_the_count(self, text: str) -> None:
        """Out of range or unknown: asked again, naming how many choices there are."""
        outcome = route(text, at(ACTIVITIES))
        assert outcome == Outcome.say(Reply("profile.again.multichoice", {"count": 3}))

    @pytest.mark.parametrize(("text", "picked"), [("2", "majorstuen"), ("torshov", "torshov")])
    def test_single_choice(self, text: str, picked: str) -> None:
        """A single choice takes one pick."""
        outcome = route(text, at(SHOP), questions=(*QUESTIONS, SHOP))
        assert outcome.effects == (SaveAnswer(4, (picked,)),)
        assert ids(outcome) == ["profile.done"]

    @pytest.mark.parametrize("text", ["1 2", "3", "both"])
    def test_bad_single_choice_asks_again_with_the_count(self, text: str) -> None:
        """Two picks or none: asked again, naming how many choices there are."""
        outcome = route(text, at(SHOP), questions=(*QUESTIONS, SHOP))
        assert outcome == Outcome.say(Reply("profile.again.choice", {"count": 2}))

    def test_free_text(self) -> None:
        """A free-text answer is saved with its spaces tidied."""
        outcome = route("  Bergans   of Norway ", at(BRAND), questions=(BRAND,))
        assert outcome.effects == (SaveAnswer(5, ("Bergans of Norway",), free_text=True),)
        assert ids(outcome) == ["profile.done"]

    def test_too_long_free_text_asks_again(self) -> None:
        """Over 100 characters: asked again, naming the limit."""
        outcome = route("x" * 101, at(BRAND), questions=(BRAND,))
        assert outcome == Outcome.say(Reply("profile.again.text", {"max_length": 100}))

    def test_a_removed_question_starts_over(self) -> None:
        """A member on a question the club removed is asked the first question."""
        outcome = route("anything", member(state=State("profile", "q99")))
        assert outcome.replies == (ASKS[FIRST_NAME.id],)
        assert outcome.state == State("profile", "q1")


class TestRemovedQuestion:
    """The question being answered was removed: the answer goes nowhere, and the first
    question the member has not answered is asked (a name or birthday given is not asked
    again)."""

    @pytest.mark.parametrize(
        ("first_name", "has_birthday", "asked", "state"),
        [
            (None, False, ASKS[FIRST_NAME.id], State("profile", "q1")),
            ("Kari", False, ASKS[BIRTHDAY.id], State("profile", "q2")),
            ("Kari", True, None, None),
        ],
    )
    def test_carries_on_with_what_is_not_answered(
        self, first_name: str | None, has_birthday: bool, asked: Reply | None, state: State | None
    ) -> None:
        who = replace(at(ACTIVITIES), first_name=first_name, has_birthday=has_birthday)
        outcome = route("1 3", who, questions=(FIRST_NAME, BIRTHDAY))
        assert outcome.effects == ()
        if asked is None:
            assert outcome.replies == (Reply("profile.done"),)
            assert outcome.state is None
        else:
            assert outcome.replies == (asked,)
            assert outcome.state == state


class TestSkip:
    """SKIP (nb, sv, en) leaves a question unanswered and moves on."""

    @pytest.mark.parametrize(
        "text", ["SKIP", "skip", "hopp over", "Hopp over!", "hoppa över", "neste", "nästa", "pass"]
    )
    @pytest.mark.parametrize(
        ("question", "following"),
        [(FIRST_NAME, BIRTHDAY), (BIRTHDAY, ACTIVITIES), (ACTIVITIES, None)],
    )
    def test_skip(self, text: str, question: Question, following: Question | None) -> None:
        """No answer is saved (a skip of the club's own question is remembered, so it is never
        put again: flows.profile.put); the next question is asked, or the profile is done."""
        outcome = route(text, at(question))
        remembered = (SkipQuestion(question.id),) if question.kind == "multichoice" else ()
        assert outcome.effects == remembered
        if following is None:
            assert ids(outcome) == ["profile.done"]
            assert outcome.state is None
        else:
            assert outcome.replies == (ASKS[following.id],)
            assert outcome.state == profile.state_for(following)

    def test_a_skip_typo_that_is_no_answer_skips(self) -> None:
        """ "skipp" at the birthday question is SKIP."""
        outcome = route("skipp", at(BIRTHDAY))
        assert outcome.effects == ()
        assert outcome.state == State("profile", "q3")


class TestMenu:
    """A text that asks for nothing Klubb knows is marked not understood and answered with what
    the member can text, for members or for guests."""

    @pytest.mark.parametrize("text", ["hei", "what?", "yes", "no", "skip", "12.03.1990", "😀", ""])
    @pytest.mark.parametrize(
        ("who", "menu"),
        [
            (ACTIVE_MEMBER, "unknown.member"),
            (None, "unknown.guest"),
            (member(PENDING), "unknown.guest"),
        ],
    )
    def test_unknown_text(self, text: str, who: MemberView | None, menu: str) -> None:
        """The member's list for an active member, the guest's for anyone else."""
        outcome = route(text, who)
        assert outcome == Outcome((Reply(menu),), not_understood=True)

    @pytest.mark.parametrize(
        "text",
        ["har dere åpent på søndag?", "kan jeg ta med hunden?", "is the café open late?"],
    )
    @pytest.mark.parametrize(
        ("who", "answer"),
        [
            (ACTIVE_MEMBER, "unknown.forwarded"),
            (None, "unknown.guest"),
            (member(PENDING), "unknown.guest"),
        ],
    )
    def test_a_sentence_from_a_member_is_passed_on(
        self, text: str, who: MemberView | None, answer: str
    ) -> None:
        """A member's sentence is told it went to the shop; anyone else still hears how to
        join. Both are marked not understood (the inbox shows them)."""
        outcome = route(text, who)
        assert outcome == Outcome((Reply(answer),), not_understood=True)

    @given(st.text(max_size=40))
    def test_only_a_member_hears_of_the_shop(self, text: str) -> None:
        """Whatever a stranger texts, Klubb never says it passed it on."""
        assert "unknown.forwarded" not in ids(route(text, None))

    @pytest.mark.parametrize(
        ("text", "who"),
        [
            ("HELP", ACTIVE_MEMBER),
            ("HELP", None),
            ("POINTS", ACTIVE_MEMBER),
            ("LANG SV", None),
            ("Kari", "first_name"),
            ("hei", "stopped"),
            ("hei", "consent"),
        ],
    )
    def test_only_a_text_not_understood_is_marked(self, text: str, who: Any) -> None:
        """HELP, a keyword, LANG from a stranger, an answer to a question, the consent step
        asking again and the silence to a stopped member are not "not understood"."""
        named = {"first_name": at(FIRST_NAME), "stopped": STOPPED_MEMBER, "consent": PENDING_MEMBER}
        member_view = named[who] if isinstance(who, str) else who
        assert not route(text, member_view).not_understood


class TestPrivacy:
    """MYDATA is answered at once; DELETE asks to confirm, and only YES erases."""

    @pytest.mark.parametrize("text", ["MYDATA", "mine data", "MINA DATA", "my data"])
    def test_mydata(self, text: str) -> None:
        """A member gets the summary of what the club holds."""
        assert route(text, ACTIVE_MEMBER) == Outcome.say(Reply("mydata.summary"))

    @pytest.mark.parametrize("text", ["MYDATA", "DELETE"])
    def test_a_stranger_is_told_nothing_is_held(self, text: str) -> None:
        """A number with no record is told so, and nothing is recorded."""
        assert route(text) == Outcome.say(Reply("mydata.guest"))

    def test_mydata_mid_profile_asks_the_question_again(self) -> None:
        """The summary, then the pending question."""
        outcome = route("MYDATA", at(BIRTHDAY))
        assert ids(outcome) == ["mydata.summary", "profile.ask.birthday"]
        assert outcome.state is KEEP

    @pytest.mark.parametrize(
        "text", ["DELETE", "delete", "slett", "SLETT MEG", "radera", "radera mig", "DELETE ME"]
    )
    @pytest.mark.parametrize("step", ["active", "birthday", "activities"])
    def test_delete_stops_marketing_and_asks_to_confirm(self, text: str, step: str) -> None:
        """DELETE (nb, sv, en) withdraws marketing consent at once, as STOP does (an objection
        to marketing is absolute), and goes to the confirm step, erasing nothing yet."""
        outcome = route(text, EVERY_STEP[step])
        assert ids(outcome) == ["delete.ask"]
        assert outcome.state == CONFIRM_DELETE
        assert outcome.effects == (WithdrawConsent("delete"),)

    @pytest.mark.parametrize(
        "text", ["kan du slette nummeret mitt", "delete my data please", "radera mina uppgifter"]
    )
    def test_a_delete_sentence_stops_marketing_too(self, text: str) -> None:
        """A deletion asked in a sentence withdraws consent like the keyword."""
        outcome = route(text, ACTIVE_MEMBER)
        assert ids(outcome) == ["delete.ask"]
        assert outcome.effects == (WithdrawConsent("delete"),)

    @pytest.mark.parametrize("text", ["yes", "YES!", "ja", "Ja takk", "JA TACK", "delete", "slett"])
    def test_yes_erases(self, text: str) -> None:
        """YES (or DELETE again) erases the member's data."""
        outcome = route(text, member(state=CONFIRM_DELETE))
        assert ids(outcome) == ["delete.done"]
        assert outcome.effects == (Erase("member_request"),)
        assert outcome.state is None

    @pytest.mark.parametrize("text", ["no", "nei", "nej", "hmm", "1", "", "yse", "JOIN", "LANG SV"])
    def test_anything_else_keeps(self, text: str) -> None:
        """Anything but YES keeps the data, and the confirm step ends."""
        outcome = route(text, member(state=CONFIRM_DELETE))
        assert ids(outcome) == ["delete.kept"]
        assert outcome.effects == ()
        assert outcome.state is None

    def test_help_while_confirming_keeps_the_question_open(self) -> None:
        """HELP is answered and the member may still answer YES to the delete question."""
        outcome = route("help", member(state=CONFIRM_DELETE))
        assert outcome == Outcome.say(Reply("help.member"))

    def test_stop_while_confirming_delete_stops_and_erases_nothing(self) -> None:
        """STOP at the delete question withdraws consent; erasure still needs a YES."""
        outcome = route("STOP", member(state=CONFIRM_DELETE))
        assert outcome.effects == (WithdrawConsent("stop"),)
        assert outcome.state is None


def parse(text: str) -> dt.date:
    day, month, year = (int(part) for part in text.split("."))
    return dt.date(year, month, day)
