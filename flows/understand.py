"""Reads what a member means: an opt-out first (and it wins), else intents scored from cue words.

The word classes are data, one file per language in locales/understand/. Every reading says why
(the cue and the words that decided it), for `klubb understand` and the turn's debug log.
"""

from __future__ import annotations

import functools
import itertools
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources

from flows import keywords
from flows.keywords import Intent

LANGUAGES = ("nb", "sv", "en")
# The states a text can be read in (flows.conversation.state_of names the member's).
FREE_TEXT_STATES = frozenset({"awaiting_name", "awaiting_text"})
YES_STATES = frozenset({"consent", "confirm_delete"})
STATES = frozenset(
    {"none", "consent", "confirm_delete", "awaiting_name", "awaiting_birthday", "profile_answer"}
    | FREE_TEXT_STATES
)
# Only this much of a text is read for what it asks (SMS rarely holds more than a few
# sentences); an opt-out is looked for in the whole text, as it wins wherever it stands.
MAX_READ = 480
MAX_KEYWORD_TEXT = 200  # a longer text is no keyword
THRESHOLD = 2.0  # the best intent's score must reach this …
MARGIN = 1.0  # … and beat the next by this much
LANGUAGE_NAME_WEIGHT = 2.0
YES_WEIGHT = 3.0  # a yes or no word, counted only where a question is open (YES_STATES)
SKIP_STATES = frozenset({"awaiting_name", "awaiting_birthday", "profile_answer", "awaiting_text"})
# In these states a cue of the intent is an answer to the question open: YES.
ANSWERS_YES = {"consent": "join", "confirm_delete": "delete"}
WINDOW = 3  # how many words may stand between a negation and the verb it governs
COMPOUND_MIN = 9  # a word this long may be a compound ending in a cue word
TYPO_MIN = 5  # one typo is forgiven in words of this many letters or more
NEVER_BY_TYPO = frozenset({"yes", "no", "start"})  # consent is given in words typed as they are

_FOLD = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "ß": "ss", "đ": "d", "ł": "l"})
_JOINED = re.compile(r"(?<=\w)[:'’`´](?=\w)")  # "sms:a", "don't", "sms'er" are one word
_TOKEN = re.compile(r"[a-z0-9]+|[.!?;,\n]+")
_CLAUSE_END = frozenset(".!?;,\n")


@dataclass(frozen=True, slots=True)
class Reading:
    """What a text asks for (None: not understood), why, and the language it is written in."""

    intent: Intent | None
    why: str
    language: str | None = None  # set only when the text is clearly in one language


@dataclass(frozen=True, slots=True)
class _Clause:
    words: tuple[str, ...]
    question: bool


# --- the data ---


@dataclass(frozen=True)
class _Class:
    """A word class: single words and phrases, looked up by their first word."""

    by_first: dict[str, tuple[tuple[str, ...], ...]]
    # The entries of one word: `in` is asked of every word of a text, so it is a set lookup.
    singles: frozenset[str] = frozenset()

    def match(self, words: Sequence[str], i: int) -> int:
        """The number of words of the longest entry at words[i:], 0 when none is there."""
        if i >= len(words):
            return 0
        for entry in self.by_first.get(words[i], ()):
            if tuple(words[i : i + len(entry)]) == entry:
                return len(entry)
        return 0

    def __contains__(self, word: str) -> bool:
        return word in self.singles


@dataclass(frozen=True)
class _Pattern:
    text: str
    items: tuple[tuple[str, str, bool], ...]  # (kind "w" or "c", word or class, optional)
    # A complaint that names no object of its own ("wrong number", "I didn't ask for this"): it
    # is about something else when a loyalty or other noun follows ("wrong number of points")
    # or a verb of the member's own typing comes before ("skrev feil nummer").
    about: bool = False


@dataclass(frozen=True)
class _Cue:
    words: tuple[str, ...]
    weights: tuple[tuple[str, float], ...]
    language: str


@dataclass(frozen=True)
class _Data:
    classes: dict[str, _Class]
    stop_patterns: dict[str, tuple[_Pattern, ...]]  # by the words they can start with
    rhetorical: dict[str, tuple[_Pattern, ...]]
    dialect: dict[str, tuple[str, ...]]
    cues: dict[str, tuple[_Cue, ...]]  # by first word, longest first
    markers: dict[str, _Class]  # language → its marker words
    language_of_name: dict[tuple[str, ...], str]
    lexicon: frozenset[str]  # every word the data knows: never corrected as a typo
    by_deletion: dict[str, tuple[str, ...]]  # typo candidates (see keywords._deletions)
    # What a word means to the matcher (its classes and cues): typo candidates that mean the
    # same ("avslutt", "avslutte" for "avsluttt") are one correction, not an ambiguity.
    meaning: dict[str, frozenset[str]] = field(default_factory=dict)
    pairs: frozenset[tuple[str, str]] = frozenset()  # neighbours in a phrase ("forget", "me")
    # Consent words: a typo near one is never read as it ("yse" is no YES), only kept as typed.
    consent: frozenset[str] = frozenset()
    stop_starts: frozenset[str] = frozenset()  # the words a stop cue can start with
    marker_starts: dict[str, tuple[str, ...]] = field(default_factory=dict)  # word → languages
    filler: frozenset[str] = frozenset()  # the filler class's words and the keyword table's


def fold(text: str) -> str:
    """Lower case, æ/ø/å and accents folded to a-z, "sms:a" and "don't" kept as one word."""
    text = _JOINED.sub("", text.casefold()).translate(_FOLD)
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in text if not unicodedata.combining(c))
    return text


def _word(token: str) -> str:
    # "aa" is the old and the keyboard-less spelling of "å", which folds to "a" ("jaa" is not).
    return token.replace("aa", "a") if "aa" in token and token not in _not_aa() else token


@functools.cache
def _not_aa() -> frozenset[str]:
    return frozenset(
        fold(word)
        for code in LANGUAGES
        for word in tomllib.loads(
            resources.files("locales").joinpath(f"understand/{code}.toml").read_text("utf-8")
        )["classes"].get("not_aa", ())
    )


def _words_of(text: str) -> tuple[str, ...]:
    return tuple(_word(t) for t in _TOKEN.findall(fold(text)) if t[0] not in _CLAUSE_END)


@functools.cache
def _data() -> _Data:
    raw = {
        code: tomllib.loads(
            resources.files("locales").joinpath(f"understand/{code}.toml").read_text("utf-8")
        )
        for code in LANGUAGES
    }
    entries: dict[str, set[tuple[str, ...]]] = {}
    markers: dict[str, _Class] = {}
    language_of_name: dict[tuple[str, ...], str] = {}
    dialect: dict[str, tuple[str, ...]] = {}
    lexicon: set[str] = set()
    for code, data in raw.items():
        for name, words in data["classes"].items():
            phrases = {_words_of(w) for w in words} - {()}
            lexicon.update(w for p in phrases for w in p)
            if name == "markers":
                markers[code] = _class(phrases)
            elif name in ("language_names", "language_codes"):
                for phrase in phrases:
                    language_of_name[phrase] = code
                entries.setdefault(name, set()).update(phrases)
            else:
                entries.setdefault(name, set()).update(phrases)
    for code, data in raw.items():
        # A dialect form that is a word of another language is left as it is ("ur" is Swedish).
        others = _words_in(raw[other] for other in LANGUAGES if other != code)
        for form, word in data["dialect"].items():
            key = _word(fold(form).replace("-", ""))
            if key not in others:
                dialect[key] = _words_of(word)
                lexicon.update(_words_of(form) + _words_of(word))
    classes = {name: _class(phrases) for name, phrases in entries.items()}
    patterns = [_pattern(p) for data in raw.values() for p in data["patterns"]["stop"]]
    patterns += [
        _pattern(p, about=True) for data in raw.values() for p in data["patterns"]["stop_about"]
    ]
    rhetorical = [_pattern(p) for data in raw.values() for p in data["patterns"]["rhetorical"]]
    for p in (*patterns, *rhetorical):
        lexicon.update(word for kind, word, _ in p.items if kind == "w")
    cues: dict[str, list[_Cue]] = {}
    for code, data in raw.items():
        for phrase, weights in data["cues"].items():
            words = _words_of(phrase)
            lexicon.update(words)
            cue = _Cue(words, tuple(sorted(weights.items())), code)
            cues.setdefault(words[0], []).append(cue)
    # Consent words and their near neighbours are never reached by a typo.
    no_typo = {
        phrase[0] for name in ("yes", "no") for phrase in entries.get(name, ()) if len(phrase) == 1
    } | {
        w
        for group in cues.values()
        for cue in group
        for w in cue.words
        # only a word that gives consent by itself ("start"), not one that helps ("again")
        if any(intent in NEVER_BY_TYPO and weight >= THRESHOLD for intent, weight in cue.weights)
    }
    by_deletion: dict[str, set[str]] = {}
    for word in lexicon:
        if len(word) >= TYPO_MIN - 1 and word.isalpha():
            for variant in keywords._deletions(word):
                by_deletion.setdefault(variant, set()).add(word)
    return _Data(
        classes=classes,
        stop_patterns=_by_first_word(patterns, classes),
        rhetorical=_by_first_word(rhetorical, classes),
        dialect=dialect,
        cues={k: tuple(sorted(v, key=lambda c: -len(c.words))) for k, v in cues.items()},
        markers=markers,
        language_of_name=language_of_name,
        lexicon=frozenset(lexicon),
        by_deletion={k: tuple(sorted(v)) for k, v in by_deletion.items()},
        meaning=_meanings(classes, cues, patterns, rhetorical),
        pairs=_pairs(classes, cues, patterns),
        consent=frozenset(no_typo),
        stop_starts=frozenset(
            {w for p in (patterns,) for w in _by_first_word(p, classes)}
            | {
                w
                for name in ("stop_weak", "stop_strong", "stop_present", "send", "neg", "none")
                for w in classes[name].by_first
            }
        ),
        marker_starts={
            w: tuple(code for code in LANGUAGES if w in markers[code].by_first)
            for code in LANGUAGES
            for w in markers[code].by_first
        },
        filler=classes["filler"].singles | keywords.filler_words(),
    )


def _meanings(
    classes: dict[str, _Class],
    cues: dict[str, list[_Cue]],
    patterns: Sequence[_Pattern],
    rhetorical: Sequence[_Pattern],
) -> dict[str, frozenset[str]]:
    meaning: dict[str, set[str]] = {}
    for name, cls in classes.items():
        for entries in cls.by_first.values():
            for entry in entries:
                for word in entry:
                    # A word inside a phrase is itself (the phrase needs that very word).
                    meaning.setdefault(word, set()).add(name if len(entry) == 1 else "=" + word)
    for group in cues.values():
        for cue in group:
            for word in cue.words:
                if len(cue.words) == 1:  # what it weighs most for ("points": POINTS)
                    top, weight = max(cue.weights, key=lambda iw: iw[1])
                    meaning.setdefault(word, set()).add(f"cue:{top}:{weight:g}")
                else:
                    meaning.setdefault(word, set()).add("=" + word)
    for p in (*patterns, *rhetorical):
        for kind, word, _ in p.items:
            if kind == "w":
                meaning.setdefault(word, set()).add("=" + word)
    return {word: frozenset(m) for word, m in meaning.items()}


def _pairs(
    classes: dict[str, _Class], cues: dict[str, list[_Cue]], patterns: Sequence[_Pattern]
) -> frozenset[tuple[str, str]]:
    phrases = [e for cls in classes.values() for es in cls.by_first.values() for e in es]
    phrases += [cue.words for group in cues.values() for cue in group]
    pairs = {pair for phrase in phrases for pair in itertools.pairwise(phrase)}
    for p in patterns:
        # Words next to each other, or with only optional items between ("fjern <det>?
        # nummeret"); a class next to a word would pair it with too much.
        for i, (k1, w1, _) in enumerate(p.items):
            for k2, w2, optional in p.items[i + 1 :]:
                if k1 == k2 == "w":
                    pairs.add((w1, w2))
                if not optional:
                    break
    return frozenset(pairs)


def _words_in(files: Iterable[dict]) -> set[str]:
    words: set[str] = set()
    for data in files:
        for entries in data["classes"].values():
            words.update(w for entry in entries for w in _words_of(entry))
        for entries in data["patterns"].values():
            words.update(w for entry in entries for w in _words_of(entry))
        for cue in data["cues"]:
            words.update(_words_of(cue))
    return words


def _class(phrases: Iterable[tuple[str, ...]]) -> _Class:
    by_first: dict[str, list[tuple[str, ...]]] = {}
    for phrase in phrases:
        by_first.setdefault(phrase[0], []).append(phrase)
    return _Class(
        {k: tuple(sorted(v, key=len, reverse=True)) for k, v in by_first.items()},
        frozenset(k for k, v in by_first.items() if any(len(e) == 1 for e in v)),
    )


def _by_first_word(
    patterns: Sequence[_Pattern], classes: dict[str, _Class]
) -> dict[str, tuple[_Pattern, ...]]:
    index: dict[str, list[_Pattern]] = {}
    for pattern in patterns:
        for kind, value, optional in pattern.items:
            firsts = {value} if kind == "w" else set(classes[value].by_first)
            for word in firsts:
                index.setdefault(word, []).append(pattern)
            if not optional:
                break
    return {word: tuple(dict.fromkeys(found)) for word, found in index.items()}


def _pattern(text: str, *, about: bool = False) -> _Pattern:
    items = []
    for item in text.split():
        optional = item.endswith("?")
        item = item.rstrip("?")
        if item.startswith("<"):
            items.append(("c", item.strip("<>"), optional))
        else:
            items.extend(("w", w, optional) for w in _words_of(item))
    return _Pattern(text, tuple(items), about)


# --- reading a text ---


def understand(text: str, *, state: str | None = None) -> Reading:
    """What `text` asks for, read in `state` (see STATES), in nb, sv and en alike (a member
    may write in any of them whatever their own language).

    An opt-out nothing blocks is STOP whatever else the text says. Otherwise a keyword typed as
    one (JOIN KARI7, CLAIM 2) is read to the letter; else intents are scored from cue words and
    the best is taken when it clears THRESHOLD by MARGIN over the next; else None.
    """
    data = _data()
    free_text = state in FREE_TEXT_STATES
    short = len(text) <= MAX_KEYWORD_TEXT
    whole = keywords.match(text, fuzzy=not free_text) if short else None
    if whole is not None and whole.exact and whole.arg is None:
        # The whole text is one keyword ("POINTS", "Stopp!", "mine data"): a third of all
        # texts, read at once; a keyword never holds a stop cue that is not itself a stop.
        return Reading(whole, f'keyword {whole.name} "{keywords.normalize(text)}"')
    # Folded and split once: the clauses read the first MAX_READ characters, the keyword
    # checks below the whole text (the same tokens, for all but the longest texts).
    tokens = _TOKEN.findall(fold(text))
    read = tokens if len(text) <= MAX_READ else _TOKEN.findall(fold(text[:MAX_READ]))
    clauses = _clauses(read, data, correct=not free_text)
    written_in = _language(clauses, data)
    # A long complaint that ends "… so please stop" stops: the law asks for every opt-out,
    # not only one in the first sentences (a few ms, for the rare text past MAX_READ).
    whole_text = clauses if read is tokens else _clauses(tokens, data, correct=not free_text)
    if stop := _stop(whole_text, data):
        return Reading(Intent("stop", exact=False), stop, written_in)
    word = whole
    all_words = tuple(_word(t) for t in tokens if t[0] not in _CLAUSE_END)
    filler = data.filler
    kept = [w for w in all_words if w not in filler]
    if word is None and short and kept and len(kept) < len(all_words):
        # Filler never changes what a keyword asks: "hlep takk" is "hlep" (a typo of HELP).
        word = keywords.match(" ".join(kept), fuzzy=not free_text)
    if word is None and not free_text and short:
        # The words as corrected ("ämta 2" is "hämta 2"): a keyword with one typo in it.
        corrected = " ".join(w for clause in clauses for w in clause.words)
        if corrected != " ".join(all_words):
            word = keywords.match(corrected, fuzzy=False)
    if word is not None and word.name == "stop" and not word.exact and len(kept) > 1:
        word = None  # a stop among other words is the opt-out reading's to decide, above
    if word is not None:
        if word.name == "lang" and word.arg:
            named = keywords.language_named(word.arg)
            if named is None and not free_text:  # "LANG nglish": one typo in the language
                named = keywords.language_named(" ".join(map(_corrected, _words_of(word.arg))))
            word = Intent("lang", named or word.arg, word.exact)
        why = f'keyword {word.name} "{" ".join(kept or all_words)}"' + (
            "" if word.exact else " (among filler or one typo)"
        )
        return Reading(word, why, written_in)
    return _scored(clauses, data, state, written_in)


def _clauses(tokens: Sequence[str], data: _Data, *, correct: bool) -> tuple[_Clause, ...]:
    """The folded text's tokens (_TOKEN) as clauses of words, typos corrected if `correct`."""
    clauses: list[_Clause] = []
    words: list[str] = []
    ambiguous: dict[int, tuple[str, ...]] = {}  # typos with several readings, by position
    boundary = data.classes["boundary"]
    for token in tokens:
        if token[0] in _CLAUSE_END:
            if words:
                clauses.append(_Clause(_in_context(words, ambiguous, data), "?" in token))
            words = []
            ambiguous = {}
            continue
        raw, token = token, _word(token)
        if token != raw and correct and token not in data.lexicon and _corrected(raw) != raw:
            token = _corrected(raw)  # "raatter": a typo of "rabatter", not "rå" in it
        if token in data.dialect:
            words.extend(data.dialect[token])
        elif correct:
            fixed = _corrected(token)
            if fixed in data.dialect:
                words.extend(data.dialect[fixed])
            else:
                words.append(fixed)
            if len(options := _candidates(token)) > 1:
                ambiguous[len(words) - 1] = options
        else:
            # In a free-text answer only a stop verb is read from a typo ("Stpo"): a name is
            # never a typo of another word ("Joan" is no JOIN).
            fixed = _corrected(token)
            stops = data.meaning.get(fixed, frozenset()) & {"stop_weak", "stop_strong"}
            words.append(fixed if stops else token)
    if words:
        clauses.append(_Clause(_in_context(words, ambiguous, data), False))
    out: list[_Clause] = []
    for clause in clauses:  # "… men stopp": a boundary word starts a clause of its own
        start = 0
        for i, w in enumerate(clause.words):
            if w in boundary and i > start:
                out.append(_Clause(clause.words[start:i], False))
                start = i + 1
        if clause.words[start:]:
            out.append(_Clause(clause.words[start:], clause.question))
    return tuple(out)


_STOP_CLASSES = frozenset({"stop_weak", "stop_strong", "send"})
# The classes that change a reading; two typo candidates that differ only in others (a pronoun
# that may stand between, a marker of the language) mean the same.
_MEANINGFUL = frozenset(
    {
        "stop_weak",
        "stop_strong",
        "stop_present",
        "send",
        "neg",
        "none",
        "more",
        "longer",
        "msg",
        "member",
        "list",
        "loyalty",
        "data",
        "blocking",
        "yes",
        "no",
        "want",
        "get",
        "me",
        "to",
        "preps",
        "language_names",
        "language_codes",
        "filler",
    }
)


def _sense(word: str, data: _Data) -> frozenset[str]:
    """What a word means, as classes and cues; a word known only inside phrases is itself."""
    sense = frozenset(
        m for m in data.meaning.get(word, ()) if m.startswith("cue:") or m in _MEANINGFUL
    )
    return sense or frozenset({word})


def _in_context(
    words: list[str], ambiguous: dict[int, tuple[str, ...]], data: _Data
) -> tuple[str, ...]:
    """A typo with several readings takes the one that makes a phrase with its neighbours
    ("orget me": "forget me", not "ordet me")."""
    for i, options in ambiguous.items():
        fits = [
            w
            for w in options
            if (i > 0 and (words[i - 1], w) in data.pairs)
            or (i + 1 < len(words) and (w, words[i + 1]) in data.pairs)
        ]
        if len(fits) == 1 and fits[0] not in data.consent:
            words[i] = fits[0]
    return tuple(words)


@functools.lru_cache(maxsize=8192)
def _candidates(token: str) -> tuple[str, ...]:
    """The known words one typo away from `token`, when _corrected could not choose."""
    data = _data()
    if len(token) < TYPO_MIN - 1 or token in data.lexicon or not token.isalpha():
        return ()
    short = len(token) < TYPO_MIN
    return tuple(
        sorted(
            {
                word
                for variant in keywords._deletions(token)
                for word in data.by_deletion.get(variant, ())
                if keywords._one_edit(token, word)
                # A four-letter word is read as a longer word with a letter left out, or as a
                # word of its length with two neighbours swapped ("stpo"): "shop" is no "stop".
                and (not short or len(word) > len(token) or _swapped(token, word))
            }
        )
    )


def _swapped(a: str, b: str) -> bool:
    diffs = [i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y]
    return len(a) == len(b) and len(diffs) == 2 and diffs[1] == diffs[0] + 1


@functools.lru_cache(maxsize=8192)
def _corrected(token: str) -> str:
    """The known word one typo away from `token` (five letters or more), if exactly one is."""
    data = _data()
    if len(token) < TYPO_MIN - 1 or token in data.lexicon or not token.isalpha():
        return token
    # A word of four letters is read as a typo only of a longer one ("lutt" for "slutt"):
    # "shop" or "stor" are never "stop".
    candidates = set(_candidates(token))
    # Filler is what members type most ("lease" is "please"); else, in doubt between a stop or
    # send verb and another word, the verb ("avsluttt" is "avslutt", not "avsluttet").
    filler = {w for w in candidates if "filler" in data.meaning.get(w, ()) and len(w) > len(token)}
    stops = {w for w in candidates if data.meaning.get(w, frozenset()) & _STOP_CLASSES}
    # A letter typed twice is the likeliest slip of all ("hjelpp", "avsluttt").
    doubled = {
        w
        for k in range(1, len(token))
        if token[k] == token[k - 1]
        for w in candidates
        if w == token[:k] + token[k + 1 :]
    }
    # A letter left out or mistyped is likelier than one typed too many.
    longer = {w for w in candidates if len(w) >= len(token)}
    for group in (doubled, filler, stops, longer, candidates):
        if group and len({_sense(w, data) for w in group}) == 1:
            return token if min(group) in data.consent else min(group)
    return token


def _language(clauses: Sequence[_Clause], data: _Data) -> str | None:
    """The language a text is clearly written in: two marker words or more, two ahead."""
    counts = dict.fromkeys(LANGUAGES, 0)
    for clause in clauses:
        words = clause.words
        for code in {code for w in words for code in data.marker_starts.get(w, ())}:
            markers = data.markers[code]
            starts = markers.by_first
            i = 0
            while i < len(words):
                size = markers.match(words, i) if words[i] in starts else 0
                counts[code] += size > 0
                i += size or 1
    if max(counts.values()) < 2:
        return None  # most texts: too few markers to tell
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    (best, first), (_, second) = ranked[0], ranked[1]
    return best if first >= 2 and first >= second + 2 else None


# --- opt-out ---


def _stop(clauses: Sequence[_Clause], data: _Data) -> str | None:
    """Why the text is an opt-out (the first cue nothing blocks), or None."""
    for clause in clauses:
        if why := _stop_in(clause, data):
            return why
    return None


def _stop_in(clause: _Clause, data: _Data) -> str | None:
    words = clause.words
    starts = data.stop_starts
    if not any(w in starts for w in words):
        return None
    negations = _negations(words, data)
    for i in range(len(words)):
        if words[i] not in starts:
            continue
        for cue in (_stop_phrase, _stop_verb, _send_verb, _no_more):
            if why := cue(clause, i, negations, data):
                return why
    return None


def _stop_phrase(clause: _Clause, i: int, negations: dict[int, int], data: _Data) -> str | None:
    """ "meld meg av", "ta bort mig", "opt me out": a stop unless a negation governs it."""
    words = clause.words
    for pattern in data.stop_patterns.get(words[i], ()):
        end = _match(pattern.items, words, i, data.classes)
        if end <= i or _governed(words, i, negations, data, skip_pattern=pattern):
            continue
        if pattern.about and _about_else(words, i, end, data):
            continue
        return f'stop phrase "{pattern.text}" in "{" ".join(words[i:end])}"'
    return None


def _about_else(words: Sequence[str], i: int, end: int, data: _Data) -> bool:
    """A complaint phrase (words[i:end]) about something other than the texts: a loyalty or
    blocking noun after it, with at most three articles or prepositions between ("wrong number
    of points", "feil nummer på kupongen"), or the member's own typing before it ("I typed the
    wrong number", "skrev feil nummer")."""
    c = data.classes
    j = end
    for _ in range(3):
        size = c["det"].match(words, j) or c["preps"].match(words, j)
        if not size:
            break
        j += size
    if _any(words, j, data, "loyalty", "blocking"):
        return True
    k = i - 1
    while k > 0 and words[k] in c["det"]:
        k -= 1
    return k >= 0 and words[k] in c["typed"]


def _stop_verb(clause: _Clause, i: int, negations: dict[int, int], data: _Data) -> str | None:
    """A strong stop verb ("avregistrera") unless negated; a weak one ("stopp", "cancel")
    unless negated, used as a noun, given another object, or asking when something ends;
    a present-tense form ("slutter") only with "jeg" as its subject."""
    words = clause.words
    c = data.classes
    size = c["stop_strong"].match(words, i)
    if size and not _governed(words, i, negations, data) and (i + size) not in negations:
        return f'stop verb "{" ".join(words[i : i + size])}"'
    size = c["stop_weak"].match(words, i)
    if size and _weak_verb(clause, i, size, negations, data) is None:
        return f'stop verb "{" ".join(words[i : i + size])}"'
    size = c["stop_present"].match(words, i)
    if size and _after_i(words, i, data) and _weak_verb(clause, i, size, negations, data) is None:
        return f'stop "{" ".join(words[max(0, i - 1) : i + size])}"'
    return None


def _send_verb(clause: _Clause, i: int, negations: dict[int, int], data: _Data) -> str | None:
    """A negation governing a sending verb: "ikke send …", "skicka inte …", "don't text …"."""
    words = clause.words
    size = data.classes["send"].match(words, i)
    if not size:
        return None
    neg = _governing(words, i, negations, data)
    if neg is not None and neg > 0 and _any(words, neg - 1, data, "stop_weak", "stop_strong"):
        neg = None  # "sluta inte skicka": the negation is the stop verb's
    after = i + size + (1 if data.classes["me"].match(words, i + size) else 0)
    if neg is None and after not in negations:  # "send meg ikke", "skicka mig inte"
        return None
    if _object_blocks_send(clause, i + size, data) is not None:
        return None
    by = words[neg] if neg is not None else words[after]
    return f'negation "{by}" governs send verb "{words[i]}"'


def _negations(words: Sequence[str], data: _Data) -> dict[int, int]:
    """Where each negation that blocks or governs starts → where it ends; a rhetorical one
    ("kan dere ikke bare …?", "can't you …") asks for something and is left out."""
    c = data.classes
    found: dict[int, int] = {}
    neg = c["neg"]
    i = 0
    while i < len(words):
        size = neg.match(words, i) if words[i] in neg.by_first else 0
        if size:
            found[i] = i + size
        i += size or 1
    if found:
        for start in range(len(words)):
            for pattern in data.rhetorical.get(words[start], ()):
                end = _match(pattern.items, words, start, c)
                if end > start:
                    for n in [n for n in found if start <= n < end]:
                        del found[n]
    return found


def _governing(words: Sequence[str], i: int, negations: dict[int, int], data: _Data) -> int | None:
    """The start of the negation that governs the word at i: right before it, with at most
    WINDOW words of `between` (pronouns, modals, adverbs) in between."""
    ends = {end: start for start, end in negations.items()}
    between = data.classes["between"]
    k = i
    for _ in range(WINDOW + 1):
        if k in ends:
            return ends[k]
        if k == 0 or words[k - 1] not in between:
            return None
        k -= 1
    return None


def _governed(
    words: Sequence[str],
    i: int,
    negations: dict[int, int],
    data: _Data,
    skip_pattern: _Pattern | None = None,
) -> bool:
    if skip_pattern is not None and skip_pattern.items and skip_pattern.items[0][1] == "neg":
        return False  # the pattern holds its own negation ("ikke interessert")
    return _governing(words, i, negations, data) is not None


def _after_i(words: Sequence[str], i: int, data: _Data) -> bool:
    """A present-tense stop form counts only with "jeg"/"jag"/"I" as its subject."""
    c = data.classes
    # "jeg slutter", or asked the other way round: "hvordan slutter jeg …?", "hur slutar jag"
    return any(w in c["i"] for w in words[max(0, i - 2) : i + 2] if w != words[i])


def _weak_verb(
    clause: _Clause, i: int, size: int, negations: dict[int, int], data: _Data
) -> str | None:
    """Why a weak stop verb ("stopp", "cancel", "slutt") is blocked here, or None."""
    words = clause.words
    c = data.classes
    if (neg := _governing(words, i, negations, data)) is not None:
        return f'negation "{words[neg]}"'
    if (i + size) in negations:
        return f'negation "{words[i + size]}" after it'
    if i > 0 and words[i - 1] in c["copula"]:
        return f'used as a noun after "{words[i - 1]}"'
    after = _object(clause, i + size, data)
    if after is not None:
        return after
    # "when does the sale end?" asks about the sale; "how do I cancel?" is the member's own act.
    if (
        any(words[k] in c["when"] for k in range(i))
        and not _about_us(words, data)
        and not any(w in c["i"] for w in words)
    ):
        return "asks when something else ends"
    return None


def _about_us(words: Sequence[str], data: _Data) -> bool:
    c = data.classes
    return any(
        c[name].match(words, k) for k in range(len(words)) for name in ("me", "msg", "member")
    )


def _object(clause: _Clause, j: int, data: _Data) -> str | None:
    """Why what follows a stop verb makes it mean something else, or None."""
    words = clause.words
    c = data.classes
    j = _skip(words, j, c["det"], keep=("me",), data=data)
    if j >= len(words):
        return None
    word = words[j]
    if _any(words, j, data, "me", "msg", "member", "send", "loyalty", "list", "filler", "neg"):
        return None
    if got := c["get"].match(words, j):  # "stop receiving these", "slutt å få …"
        k = _skip(words, j + got, c["det"], keep=("me",), data=data)
        if k >= len(words) or _any(words, k, data, "msg", "loyalty", "me", "filler"):
            return None
    if c["to"].match(words, j) or c["preps"].match(words, j):
        size = c["to"].match(words, j) or c["preps"].match(words, j)
        k = _skip(words, j + size, c["det"], keep=("me",), data=data)
        if words[j] in c["to"] and (got := c["get"].match(words, k)):
            # "slutte å få disse meldingene": stop getting them
            k = _skip(words, k + got, c["det"], keep=("me",), data=data)
        if k < len(words) and _any(words, k, data, "send", "msg", "member", "me", "loyalty"):
            return None
        if k >= len(words) and size and words[j] in c["to"]:
            return None
        return f'goes on to "{" ".join(words[j : k + 1])}"'
    if c["blocking"].match(words, j):
        return f'object "{word}"'
    if word.endswith("ing") and len(word) > 5:
        return f'object "{word}"'
    return None


def _object_blocks_send(clause: _Clause, j: int, data: _Data) -> str | None:
    words = clause.words
    c = data.classes
    for skipped in ("neg", "det", "me", "neg", "det"):  # "skicka inte paketet", "send me the …"
        j = _skip(words, j, c[skipped], keep=("me",) if skipped == "det" else (), data=data)
    if j < len(words) and c["blocking"].match(words, j):
        return f'object "{words[j]}"'
    return None


def _no_more(clause: _Clause, i: int, negations: dict[int, int], data: _Data) -> str | None:
    """ "ikke flere …", "no more …", "ingen sms", "vil ikke ha … lenger": a stop unless what
    follows is something else, or it asks about points or coupons."""
    words = clause.words
    c = data.classes
    if i not in negations and not c["none"].match(words, i):
        return None
    start = i
    j = negations.get(i) or i + c["none"].match(words, i)
    # "jeg vil ikke ha flere": want and get verbs may stand between.
    wanted = False  # a want or get verb between: "vil ikke ha", "don't want to receive"
    while (
        j < len(words)
        and (words[j] in c["between"] or c["get"].match(words, j) or c["want"].match(words, j))
        and not c["more"].match(words, j)
    ):
        size = c["get"].match(words, j) or c["want"].match(words, j)
        wanted = wanted or size > 0
        j += max(1, size)
    wants = any(c["want"].match(words, k) for k in range(len(words)))
    if size := c["more"].match(words, j):
        k = j + size
        while k < len(words) and _any(words, k, data, "det", "filler", "you"):
            # "no more, thanks", "ikke mer fra dere": what stands around no object
            if _any(words, k, data, "me", "msg", "loyalty"):
                break
            k += 1
        cue = " ".join(words[start : j + size])
        if k >= len(words) or _any(words, k, data, "msg", "me", "member", "send"):
            return f'"want no more" cue "{cue}"'
        # "no more coupons?" asks about them; "no more offers please" asks to stop them.
        if c["loyalty"].match(words, k) and (wants or not _asks(clause, data)):
            return f'"want no more" cue "{cue}" ({words[k]})'
        return None
    if start in negations and wanted and j < len(words):
        j = _skip(words, j, c["det"], keep=("me",), data=data)
        if c["msg"].match(words, j) or (wants and c["loyalty"].match(words, j)):
            # "vil ikke ha sms", "jag vill inte ha några erbjudanden"
            return f'"want no …" cue "{" ".join(words[start : j + 1])}"'
    if start not in negations and (c["msg"].match(words, j)):
        return f'"no …" cue "{words[start]} {words[j]}"'
    if (
        start in negations
        and wants
        and _any_at(words, c["longer"])
        and not _any_at(words, c["loyalty"])
    ):
        return f'"no longer" cue "{words[start]} … {words[-1]}"'
    return None


def _asks(clause: _Clause, data: _Data) -> bool:
    """A question: a question mark, a question word, or a verb first ("har jeg ikke …")."""
    c = data.classes
    words = clause.words
    return (
        clause.question or _any_at(words, c["question"]) or bool(words and c["ask"].match(words, 0))
    )


def _any_at(words: Sequence[str], cls: _Class) -> bool:
    return any(cls.match(words, k) for k in range(len(words)))


def _any(words: Sequence[str], j: int, data: _Data, *names: str) -> bool:
    return any(data.classes[name].match(words, j) for name in names)


def _skip(words: Sequence[str], j: int, cls: _Class, *, keep: tuple[str, ...], data: _Data) -> int:
    while j < len(words) and (size := cls.match(words, j)):
        if any(data.classes[name].match(words, j) for name in keep):
            break
        j += size
    return j


def _match(items: Sequence[tuple[str, str, bool]], words: Sequence[str], i: int, c: dict) -> int:
    """The end of the pattern matched at words[i:], or -1."""
    if not items:
        return i
    kind, value, optional = items[0]
    if i < len(words):
        size = (1 if words[i] == value else 0) if kind == "w" else c[value].match(words, i)
        if size:
            end = _match(items[1:], words, i + size, c)
            if end >= 0:
                return end
    return _match(items[1:], words, i, c) if optional else -1


# --- everything else, by score ---


def _scored(
    clauses: Sequence[_Clause], data: _Data, state: str | None, written_in: str | None
) -> Reading:
    c = data.classes
    names, codes = c["language_names"], c["language_codes"]
    scores: dict[str, float] = {}
    found: dict[str, list[str]] = {}
    lang_arg: str | None = None
    numbers: list[str] = []
    for clause in clauses:
        words = clause.words
        # "jeg snakker ikke svensk" asks for no language
        negated = any(w in c["neg"] for w in words)
        i = 0
        while i < len(words):
            word = words[i]
            if word.isdigit() and len(word) <= 3:
                numbers.append(word)
            took = 0
            compound = () if word in data.cues else _compound(word)
            for cue in data.cues.get(word, ()) or compound:
                if compound or tuple(words[i : i + len(cue.words)]) == cue.words:
                    for intent, weight in cue.weights:
                        _add(scores, found, intent, weight, " ".join(cue.words))
                    took = len(cue.words)
                    break
            for name in ("yes", "no") if state in YES_STATES else ():
                size = c[name].match(words, i)
                if size and not c["more"].match(words, i + size):  # "no more" is no answer
                    _add(scores, found, name, YES_WEIGHT, " ".join(words[i : i + size]))
                    took = max(took, size)
            if negated or (word not in names.by_first and word not in codes.by_first):
                pass
            elif size := names.match(words, i):
                lang_arg = data.language_of_name[tuple(words[i : i + size])]
                _add(scores, found, "lang", LANGUAGE_NAME_WEIGHT, " ".join(words[i : i + size]))
                took = max(took, size)
            elif (size := codes.match(words, i)) and scores.get("lang"):
                # A code ("sv", "en") names a language only after LANG / SPRÅK.
                lang_arg = data.language_of_name[tuple(words[i : i + size])]
                took = max(took, size)
            i += took or 1
    if state not in SKIP_STATES:
        scores.pop("skip", None)  # "neste uke" outside a question is no skip
    if (asked := ANSWERS_YES.get(state or "")) and asked in scores and "no" not in scores:
        # At the opt-in question asking to join says yes; at the delete question, deleting.
        _add(scores, found, "yes", max(scores.pop(asked), 0.0), f"{asked} cue")
    if "yes" in scores and "no" in scores:
        scores.pop("yes")  # "ja nei" gives no consent
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    if not ranked or ranked[0][1] < THRESHOLD:
        best = f" (best {ranked[0][0]} {ranked[0][1]:g} < {THRESHOLD:g})" if ranked else ""
        return Reading(None, f"no cue{best}", written_in)
    (name, score), runner = ranked[0], ranked[1] if len(ranked) > 1 else ("-", 0.0)
    if score - runner[1] < MARGIN:
        why = f"{name} {score:g} too close to {runner[0]} {runner[1]:g}"
        return Reading(None, why, written_in)
    arg = None
    if name == "lang":
        arg = lang_arg
    elif name == "claim" and numbers:
        arg = numbers[0]
    elif name == "join":
        arg = _referral_code(clauses)
    why = f"{name} {score:g} ({', '.join(found[name])})"
    if runner[1]:
        why += f" over {runner[0]} {runner[1]:g}"
    return Reading(Intent(name, arg, exact=False), why, written_in)


@functools.lru_cache(maxsize=8192)
def _compound(word: str) -> tuple[_Cue, ...]:
    """The cue a compound ends in ("rabattkuponger", "bonuspoeng"): nb and sv join nouns."""
    if len(word) < COMPOUND_MIN:
        return ()
    cues = _data().cues
    for start in range(3, len(word) - TYPO_MIN + 1):
        found = tuple(c for c in cues.get(word[start:], ()) if len(c.words) == 1)
        if found:
            return found
    return ()


def _add(
    scores: dict[str, float], found: dict[str, list[str]], intent: str, weight: float, cue: str
) -> None:
    if cue in found.get(intent, ()):
        return  # a cue counts once however often it is written
    scores[intent] = scores.get(intent, 0.0) + weight
    found.setdefault(intent, []).append(cue)


def _referral_code(clauses: Sequence[_Clause]) -> str | None:
    """A referral code in a join sentence: a word of letters and digits ("kari7")."""
    for clause in clauses:
        for word in clause.words:
            if any(ch.isdigit() for ch in word) and any(ch.isalpha() for ch in word):
                return word
    return None
