"""Reads what a member's text asks for: keyword intents, tolerant of case, accents and typos."""

from __future__ import annotations

import functools
import re
import tomllib
import unicodedata
from dataclasses import dataclass
from importlib import resources

# A keyword's intent and its argument ("lang", "sv"), and whether it matched to the letter.
MAX_SHORT_MESSAGE_WORDS = 6
_FOLD = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "ß": "ss", "đ": "d", "ł": "l"})
_NOT_WORD = re.compile(r"[^a-z0-9]+")
# Consent must be a clear act: a typo may ask the opt-in question (JOIN), never answer it.
NEVER_BY_TYPO = frozenset({"yes", "no", "start"})


@dataclass(frozen=True, slots=True)
class Intent:
    name: str
    arg: str | None = None
    exact: bool = True


def normalize(text: str) -> str:
    """Lower case, no accents, words of letters and digits separated by single spaces."""
    text = text.casefold().translate(_FOLD)
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in text if not unicodedata.combining(c))
    return _NOT_WORD.sub(" ", text).strip()


def match(text: str, *, fuzzy: bool = True) -> Intent | None:
    """The keyword intent of a whole message, or None when it is not a keyword.

    A message is a keyword when it is one (JOIN, "meld av", "Stopp!"), starts with one that
    takes an argument (LANG SV, CLAIM 2, JOIN KARI7), or is a short message of one keyword among
    polite filler ("stopp takk", "please stop sending me messages", "ja takk"). With `fuzzy`,
    one typo is forgiven in keywords of four letters or more ("STPO", "hjlep").
    """
    words = normalize(text).split()
    if not words:
        return None
    table = _table()
    compact = "".join(words)
    if intent := table.exact.get(compact):
        return Intent(intent)
    if lang := table.languages.get(compact):
        return Intent("lang", lang)
    if found := _with_argument(words, table):
        return found
    if len(words) <= MAX_SHORT_MESSAGE_WORDS and (found := _among_filler(words, table)):
        return found
    if fuzzy and len(words) <= 2:
        return _typo(compact, table)
    return None


def language_named(arg: str | None) -> str | None:
    """The language code an argument names ("svenska" → "sv"), or None."""
    if not arg:
        return None
    table = _table()
    compact = normalize(arg).replace(" ", "")
    return table.languages.get(compact) or table.codes.get(compact)


def filler_words() -> frozenset[str]:
    """Words that may stand around a keyword without changing what it asks ("takk", "pls")."""
    return _table().filler


@dataclass(frozen=True)
class _Table:
    exact: dict[str, str]  # compact synonym → intent
    multiword: dict[tuple[str, ...], str]
    arguments: frozenset[str]
    languages: dict[str, str]  # a language's name: alone it is LANG with that language
    codes: dict[str, str]  # a language's code: only as LANG's argument
    filler: frozenset[str]
    not_typos: frozenset[str]  # real words, never read as a typo of a keyword
    by_deletion: dict[str, tuple[tuple[str, str], ...]]  # typo candidates, see _deletions


@functools.cache
def _table() -> _Table:
    data = tomllib.loads(resources.files("locales").joinpath("keywords.toml").read_text("utf-8"))
    exact: dict[str, str] = {}
    multiword: dict[tuple[str, ...], str] = {}
    for intent, synonyms in data["intents"].items():
        for synonym in synonyms:
            words = tuple(normalize(synonym).split())
            exact["".join(words)] = intent
            multiword[words] = intent
            multiword[("".join(words),)] = intent  # "blimed takk" as "bli med takk"
    languages = {
        "".join(normalize(name).split()): code
        for code, names in data["languages"].items()
        for name in names
    }
    codes = {
        "".join(normalize(name).split()): code
        for code, names in data["language_codes"].items()
        for name in names
    }
    by_deletion: dict[str, list[tuple[str, str]]] = {}
    for synonym, intent in exact.items():
        if intent not in NEVER_BY_TYPO:
            for variant in _deletions(synonym):
                by_deletion.setdefault(variant, []).append((synonym, intent))
    return _Table(
        by_deletion={variant: tuple(pairs) for variant, pairs in by_deletion.items()},
        exact=exact,
        multiword=multiword,
        arguments=frozenset(data["arguments"]["intents"]),
        languages=languages,
        codes=codes,
        filler=frozenset(normalize(w).replace(" ", "") for w in data["filler"]["words"]),
        not_typos=frozenset(normalize(w).replace(" ", "") for w in data["not_typos"]["words"]),
    )


def _with_argument(words: list[str], table: _Table) -> Intent | None:
    for size in (2, 1):
        head = tuple(words[:size])
        intent = table.multiword.get(head)
        # Polite filler is no argument: JOIN PLEASE is a join, not the referral code PLEASE.
        arg = [w for w in words[size:] if w not in table.filler]
        if intent in table.arguments and arg:
            return Intent(intent, " ".join(arg))
    return None


def _among_filler(words: list[str], table: _Table) -> Intent | None:
    # Any word that is neither a keyword nor filler makes it a sentence, not a keyword: a
    # negation ("ikke stopp", "don't stop") never is filler, while "ikke flere" is a stop phrase.
    found: set[str] = set()
    i = 0
    while i < len(words):
        pair = tuple(words[i : i + 3])
        for size in (3, 2, 1):
            intent = table.multiword.get(pair[:size])
            if intent and len(pair) >= size:
                found.add(intent)
                i += size
                break
        else:
            if words[i] not in table.filler:
                return None
            i += 1
    if "stop" in found:
        # An objection to marketing is absolute: it wins over anything else in the message.
        return Intent("stop", exact=False)
    if len(found) == 1:
        return Intent(found.pop(), exact=False)
    return None


def _typo(compact: str, table: _Table) -> Intent | None:
    if compact in table.not_typos:
        return None
    candidates = {
        intent
        for variant in _deletions(compact)
        for synonym, intent in table.by_deletion.get(variant, ())
        if _close(compact, synonym)
    }
    if len(candidates) == 1:
        return Intent(candidates.pop(), exact=False)
    return None


def _deletions(word: str) -> set[str]:
    """The word and every form of it with one letter left out: two words one edit apart
    always share one of these (the idea behind SymSpell), so candidates are a set lookup."""
    return {word, *(word[:i] + word[i + 1 :] for i in range(len(word)))}


def _close(text: str, synonym: str) -> bool:
    """One edit (insert, delete, substitute, swap) apart; three-letter words only by a swap."""
    if len(synonym) < 3 or abs(len(text) - len(synonym)) > 1:
        return False
    if len(synonym) == 3:
        return (
            len(text) == 3
            and sorted(text) == sorted(synonym)
            and text != synonym
            and (sum(a != b for a, b in zip(text, synonym, strict=True)) == 2)
        )
    if len(text) < 3:
        return False
    return _one_edit(text, synonym)


def _one_edit(a: str, b: str) -> bool:
    """Exactly one insert, delete, substitution or swap of neighbours apart (linear time)."""
    if a == b:
        return False
    if len(a) == len(b):
        diffs = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
        if len(diffs) == 1:
            return True
        return (
            len(diffs) == 2
            and diffs[1] == diffs[0] + 1
            and a[diffs[0]] == b[diffs[1]]
            and a[diffs[1]] == b[diffs[0]]
        )
    shorter, longer = (a, b) if len(a) < len(b) else (b, a)
    i = next(
        (k for k, (x, y) in enumerate(zip(shorter, longer, strict=False)) if x != y), len(shorter)
    )
    return shorter[i:] == longer[i + 1 :]
