"""Keywords: what a whole text asks for, in nb, sv and en, whatever the member's own language."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.keywords import Intent, language_named, match, normalize

# The keyword list of PRODUCT.md, intent by intent.
PRODUCT_SYNONYMS: dict[str, tuple[str, ...]] = {
    "join": ("JOIN", "BLI MED", "MEDLEM", "GÅ MED"),
    "yes": ("YES", "JA"),
    "no": ("NO", "NEI", "NEJ"),
    "stop": (
        "STOP",
        "STOPP",
        "STOPALL",
        "UNSUBSCRIBE",
        "CANCEL",
        "END",
        "QUIT",
        "REVOKE",
        "OPTOUT",
        "AVSLUTT",
        "AVSLUTA",
        "MELD AV",
    ),
    "start": ("START", "UNSTOP"),
    "help": ("HELP", "INFO", "HJELP", "HJÄLP"),
    "points": ("POINTS", "BALANCE", "POENG", "POÄNG", "SALDO"),
    "coupons": ("COUPONS", "KUPONGER"),
    "claim": ("CLAIM", "HENT", "HÄMTA"),
    "invite": ("INVITE", "VERV", "VÄRVA"),
    "lang": ("LANG", "SPRÅK"),
    "mydata": ("MYDATA", "MINE DATA", "MINA DATA"),
    "delete": ("DELETE", "SLETT", "RADERA"),
}
SYNONYMS = [(intent, word) for intent, words in PRODUCT_SYNONYMS.items() for word in words]
CASINGS = {
    "upper": str.upper,
    "lower": str.lower,
    "title": str.title,
    "swapped": lambda w: "".join(
        c.lower() if i % 2 else c.upper() for i, c in enumerate(w.lower())
    ),
}
# How a keyword arrives from a phone: padded, shouted, quoted, with a full stop or a newline.
DRESSINGS = (
    "{}",
    " {} ",
    "{}!",
    "{}.",
    " {}. ",
    "{}?",
    "{}!!!",
    '"{}"',
    "«{}»",
    "({})",
    "...{}",
    "{}\n",
    "\t{} :)",
)


class TestEverySynonym:
    """Every keyword of PRODUCT.md is read in any casing with any punctuation around it."""

    @pytest.mark.parametrize("casing", CASINGS)
    @pytest.mark.parametrize(("intent", "word"), SYNONYMS)
    def test_synonym_in_any_casing_and_dressing(self, intent: str, word: str, casing: str) -> None:
        """A synonym, however cased and dressed, is its intent, to the letter."""
        texts = [dressing.format(CASINGS[casing](word)) for dressing in DRESSINGS]
        assert {t: match(t, fuzzy=False) for t in texts} == {t: Intent(intent) for t in texts}

    @pytest.mark.parametrize(
        ("text", "intent"),
        [
            ("Stopp!", "stop"),
            (" join. ", "join"),
            ("HJÄLP?", "help"),
            ("hjalp", "help"),
            ("poang", "points"),
            ("gå med", "join"),
            ("ga med", "join"),
            ("GÅ MED!", "join"),
            ("MELD AV", "stop"),
            ("meld av.", "stop"),
            ("mine data", "mydata"),
            ("mina data?", "mydata"),
            ("varva", "invite"),
            ("sprak", "lang"),
            ("hamta", "claim"),
        ],
    )
    def test_examples_from_the_brief(self, text: str, intent: str) -> None:
        """The forms members really type, with or without æøåäö, are read to the letter."""
        assert match(text, fuzzy=False) == Intent(intent)

    @pytest.mark.parametrize(
        ("text", "intent"),
        [("MELDAV", "stop"), ("minedata", "mydata"), ("blimed", "join"), ("Opt-out", "stop")],
    )
    def test_multiword_synonyms_match_with_or_without_spaces(self, text: str, intent: str) -> None:
        """A multi-word keyword may be written as one word or with a hyphen."""
        assert match(text, fuzzy=False) == Intent(intent)


class TestArguments:
    """JOIN, LANG and CLAIM take what follows them as their argument."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("JOIN KARI7", Intent("join", "kari7")),
            ("join kari7", Intent("join", "kari7")),
            ("Bli med KARI7", Intent("join", "kari7")),
            ("GÅ MED kari7!", Intent("join", "kari7")),
            ("medlem KARI7", Intent("join", "kari7")),
            ("JOIN KARI7 takk", Intent("join", "kari7")),
        ],
    )
    def test_referral_code_after_join(self, text: str, expected: Intent) -> None:
        """A referral code after JOIN (in any language) is the argument, without polite filler."""
        assert match(text) == expected

    @pytest.mark.parametrize("text", ["join please", "JOIN TAKK", "bli med, tack", "join me"])
    def test_polite_filler_after_join_is_no_referral_code(self, text: str) -> None:
        """JOIN PLEASE is a join without a code, not a referral code PLEASE."""
        intent = match(text)
        assert intent is not None
        assert (intent.name, intent.arg) == ("join", None)

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("LANG SV", Intent("lang", "sv")),
            ("lang en", Intent("lang", "en")),
            ("SPRÅK svenska", Intent("lang", "svenska")),
            ("språk: English", Intent("lang", "english")),
            ("Language norsk", Intent("lang", "norsk")),
            ("lang sv please", Intent("lang", "sv")),
        ],
    )
    def test_language_after_lang(self, text: str, expected: Intent) -> None:
        """LANG / SPRÅK / LANGUAGE carry the language asked for."""
        assert match(text) == expected

    @pytest.mark.parametrize(
        ("name", "code"),
        [
            ("svenska", "sv"),
            ("Swedish", "sv"),
            ("english", "en"),
            ("engelsk", "en"),
            ("norsk", "nb"),
            ("bokmål", "nb"),
        ],
    )
    def test_a_language_named_alone_changes_language(self, name: str, code: str) -> None:
        """A language's name alone ("svenska") is LANG with that language's code."""
        assert match(name) == Intent("lang", code)
        assert language_named(name) == code

    @pytest.mark.parametrize(
        ("word", "code"), [("En", "en"), ("Se", "sv"), ("SV", "sv"), ("NB", "nb"), ("no", "nb")]
    )
    def test_a_code_alone_is_no_language(self, word: str, code: str) -> None:
        """ "En" (one) and "Se" (look) alone never switch language; after LANG they do."""
        assert match(word) is None or match(word).name != "lang"
        assert match(f"LANG {word}") == Intent("lang", word.lower())
        assert language_named(word) == code

    @pytest.mark.parametrize("arg", [None, "", "klingon", "sv please"])
    def test_language_named_knows_only_nb_sv_en(self, arg: str | None) -> None:
        """An argument that names no supported language gives None."""
        assert language_named(arg) is None

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("CLAIM 2", Intent("claim", "2")),
            ("claim 2", Intent("claim", "2")),
            ("HENT 2", Intent("claim", "2")),
            ("hämta 2", Intent("claim", "2")),
            ("claim 2 please", Intent("claim", "2")),
            ("CLAIM", Intent("claim")),
        ],
    )
    def test_claim_number(self, text: str, expected: Intent) -> None:
        """CLAIM / HENT / HÄMTA carry the reward's number."""
        assert match(text) == expected

    def test_an_argument_only_follows_keywords_that_take_one(self) -> None:
        """STOP with a word after it that is no filler is no keyword ("stop the bus")."""
        assert match("stop the bus") is None
        assert match("help KARI7") is None


class TestTypos:
    """One small typo is forgiven when asked to (fuzzy), never in a free-text answer."""

    @pytest.mark.parametrize(
        ("text", "intent"),
        [
            ("STPO", "stop"),
            ("sotp", "stop"),
            ("Stopo", "stop"),
            ("unsubscibe", "stop"),
            ("cancle", "stop"),
            ("avslut", "stop"),
            ("hjlep", "help"),
            ("hepl", "help"),
            ("Joinn", "join"),
            ("jion", "join"),
            ("kupomger", "coupons"),
            ("poemg", "points"),
            ("deleet", "delete"),
        ],
    )
    def test_one_typo_is_forgiven_with_fuzzy(self, text: str, intent: str) -> None:
        """A keyword one edit away is read, marked as not exact."""
        assert match(text, fuzzy=True) == Intent(intent, exact=False)

    @pytest.mark.parametrize(
        "text", ["STPO", "sotp", "unsubscibe", "hjlep", "hepl", "Joinn", "jion", "kupomger"]
    )
    def test_no_typo_is_forgiven_without_fuzzy(self, text: str) -> None:
        """With fuzzy=False only the keyword itself counts."""
        assert match(text, fuzzy=False) is None

    @pytest.mark.parametrize("text", ["yse", "yess", "jaa", "nej!!x", "neii", "strat", "statr"])
    def test_consent_is_never_given_or_refused_by_a_typo(self, text: str) -> None:
        """YES, NO and START answer the opt-in question, so they must be typed as they are."""
        assert match(text, fuzzy=True) is None

    @pytest.mark.parametrize(
        "text", ["Shop", "step", "stor", "stol", "quite", "quiet", "suit", "atop", "ansluta"]
    )
    def test_a_real_word_near_stop_is_no_typo_of_it(self, text: str) -> None:
        """A real word one letter from a stop word ("Shop?", "stor") never ends a membership."""
        assert match(text, fuzzy=True) is None

    @pytest.mark.parametrize("text", ["stop kari7 now please hello", "pleese stpo"])
    def test_typos_are_only_read_in_one_or_two_word_messages(self, text: str) -> None:
        """Longer messages are not combed for near-keywords."""
        assert match(text, fuzzy=True) is None


class TestFirstNames:
    """A first name given as an answer is read with fuzzy=False and is not a keyword."""

    @pytest.mark.parametrize(
        "name", ["Joan", "Quin", "Stian", "Jon", "Sop", "Vera", "Kari", "Ola", "Siv", "Stig"]
    )
    def test_names_are_not_keywords_when_read_exactly(self, name: str) -> None:
        """Joan is not JOIN, Quin is not QUIT, Stian is not STOP."""
        assert match(name, fuzzy=False) is None
        assert match(name.upper(), fuzzy=False) is None

    def test_with_fuzzy_a_name_can_look_like_a_typo(self) -> None:
        """Vera is one letter from VERV: why a first-name step must read keywords exactly."""
        assert match("Vera", fuzzy=True) == Intent("invite", exact=False)

    def test_info_is_help_even_as_an_answer(self) -> None:
        """Decision: INFO stays an exact HELP synonym, in free-text answers too.

        It is on PRODUCT.md's keyword list and is the carriers' standard help word, and it is
        no first name a Nordic member gives; a member who texts "Info" at the first-name
        question gets the help text and the question again (see test_router).
        """
        assert match("Info", fuzzy=False) == Intent("help")
        assert match("INFO?", fuzzy=False) == Intent("help")


class TestIntentInShortMessages:
    """A short message that clearly asks for one thing is read as that; a sentence is not."""

    @pytest.mark.parametrize(
        "text",
        [
            "stopp takk",
            "Stopp, takk!",
            "please stop",
            "Please STOP.",
            "stop sending me messages",
            "STOP!!!",
            "stop it",
            "unsubscribe me please",
            "meld meg av takk",
            "meld meg av nå",
            "sluta skicka sms tack",
            "avslutt medlemskapet",
            "vær så snill stopp",
            "no more messages",
            "No more texts please",
            "ingen flere meldinger",
            "inga fler sms",
        ],
    )
    def test_polite_stop_stops(self, text: str) -> None:
        """Leaving is as easy as joining: "stopp takk" and "please stop" stop."""
        intent = match(text, fuzzy=False)
        assert intent is not None
        assert intent.name == "stop"

    @pytest.mark.parametrize(
        "text",
        [
            "I can't stop eating your cinnamon buns",
            "don't stop",
            "Don't stop!",
            "ikke stopp",
            "Ikke stopp meldingene",
            "stopp ikke",
            "aldri stopp",
            "never stop",
            "when does the shop stop selling skis?",
            "stop by the shop tomorrow and pick up my order please",
            "stop the bus",
            "is the shop open until the end of may?",
            "I will quit smoking",
        ],
    )
    def test_a_keyword_inside_a_sentence_does_not_stop(self, text: str) -> None:
        """A stop word inside a sentence that means something else is no keyword."""
        assert match(text, fuzzy=True) is None
        assert match(text, fuzzy=False) is None

    def test_stop_wins_over_any_other_keyword_in_the_message(self) -> None:
        """An objection to marketing is absolute: "yes stop" stops."""
        assert match("yes stop please") == Intent("stop", exact=False)

    @pytest.mark.parametrize(
        ("text", "intent"),
        [
            ("ja takk", "yes"),
            ("Ja, takk!", "yes"),
            ("yes please", "yes"),
            ("ja tack", "yes"),
            ("ja gjerne", "yes"),
            ("nei takk", "no"),
            ("nej tack", "no"),
            ("no thanks", "no"),
            ("help me please", "help"),
            ("hjelp meg", "help"),
            ("I want to join", "join"),
        ],
    )
    def test_polite_answers(self, text: str, intent: str) -> None:
        """A keyword among polite filler is that keyword, marked as not exact."""
        assert match(text, fuzzy=False) == Intent(intent, exact=False)

    def test_two_different_keywords_are_no_intent(self) -> None:
        """ "yes no" asks for nothing clear."""
        assert match("yes no") is None


class TestNothingToRead:
    """Texts with no keyword give None, never an error."""

    @pytest.mark.parametrize(
        "text",
        [
            "",
            " ",
            "\n\t  \r\n",
            "😀",
            "👍👍👍",
            "🙂 🙂",
            "...!?",
            "x" * 1600,
            ("Hei! Jeg lurer på om dere har ski på lager. " * 40)[:1600],
            "'; DROP TABLE members; --",
            "1 OR 1=1",
            "SELECT * FROM members WHERE phone = '' OR ''=''",
            "<script>alert(1)</script>",
            "\x00\x01\x02",
        ],
    )
    def test_no_keyword(self, text: str) -> None:
        """Empty, blank, emoji-only, very long and SQL-looking texts are no keyword."""
        assert match(text) is None
        assert match(text, fuzzy=False) is None


_NORMAL_FORM = re.compile(r"^([a-z0-9]+( [a-z0-9]+)*)?$")


class TestProperties:
    """match() and normalize() hold for any text at all."""

    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=400), st.booleans())
    def test_match_never_raises(self, text: str, fuzzy: bool) -> None:
        """Any text gives None or an Intent of a known name."""
        intent = match(text, fuzzy=fuzzy)
        assert intent is None or intent.name in {*PRODUCT_SYNONYMS, "skip"}

    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=200))
    def test_normalize_is_idempotent(self, text: str) -> None:
        """Normalizing twice is normalizing once, and gives plain words of a-z and 0-9."""
        once = normalize(text)
        assert normalize(once) == once
        assert _NORMAL_FORM.match(once)

    @settings(max_examples=100, deadline=None)
    @given(
        st.sampled_from(SYNONYMS),
        st.sampled_from(DRESSINGS),
        st.text(alphabet=".,!?:; \n", max_size=3),
    )
    def test_punctuation_never_changes_a_keyword(
        self, synonym: tuple[str, str], dressing: str, noise: str
    ) -> None:
        """A keyword with any punctuation around it is still that keyword."""
        intent, word = synonym
        assert match(noise + dressing.format(word) + noise) == Intent(intent)
