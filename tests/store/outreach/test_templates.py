"""Saved replies: a template is kept exactly when its texts name only the placeholders the
inbox can fill, each text is named with its language when refused, names are unique per club,
and `fill` writes it for one member in their language without gaps."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from store.clubs import programs
from store.database import Database
from store.errors import NotFound
from store.models import MessageTemplate, Program
from store.outreach import inbox, templates
from tests.conftest import create_club, now

ALLOWED = sorted(templates.PLACEHOLDERS[templates.REPLY])
# Pieces a text is made of, each with whether it is allowed. Stray braces stand between
# spaces, so that no two pieces join into a doubled brace or a placeholder by accident.
PLAIN = st.text(st.sampled_from("abcæøåäö ABC,.!?0123"), min_size=1, max_size=20)
GOOD = st.one_of(
    PLAIN.map(lambda t: (t, True)),
    st.sampled_from(ALLOWED).map(lambda n: ("{" + n + "}", True)),
    st.sampled_from(["{{", "}}"]).map(lambda b: (b, True)),  # a brace as text
)
BAD = st.one_of(
    st.sampled_from(["frist_name", "coupon_code", "name", "0", "", "club.name", "tier[0]"]).map(
        lambda n: ("{" + n + "}", False)
    ),
    st.sampled_from(ALLOWED).map(lambda n: ("{" + n + ":>9}", False)),  # a format spec
    st.sampled_from(ALLOWED).map(lambda n: ("{" + n + "!r}", False)),  # a conversion
    st.sampled_from([" { ", " } "]).map(lambda b: (b, False)),  # a stray brace
)


class _Session:
    """save needs a session only to look for a name taken: none is here."""

    def __init__(self) -> None:
        self.added: list[MessageTemplate] = []

    def scalars(self, _: object) -> SimpleNamespace:
        return SimpleNamespace(all=list)  # the club has no template yet

    def add(self, row: MessageTemplate) -> None:
        self.added.append(row)

    def flush(self) -> None:
        return None


@given(
    pieces=st.lists(st.one_of(GOOD, GOOD, BAD), min_size=1, max_size=8),
    language=st.sampled_from(["nb", "sv", "en"]),
)
def test_save_keeps_exactly_the_texts_with_allowed_placeholders(
    pieces: list[tuple[str, bool]], language: str
) -> None:
    """Whatever is typed (short enough to fit): kept iff every placeholder is one the inbox
    fills and no brace is stray; refused naming the language's field otherwise."""
    text = "".join(piece for piece, _ in pieces)
    allowed = all(ok for _, ok in pieces)
    session = _Session()
    program = Program(id=1, name="Torshov Sport")
    try:
        saved = templates.save(
            session,  # type: ignore[arg-type]
            program,
            name="Svar",
            texts={language: text},
            now=now(),
        )
    except templates.TemplateRefused as exc:
        refused = exc.problems
    else:
        refused = []
    if refused:
        assert not allowed or not text.strip(), (text, refused)
        if text.strip():
            (problem,) = refused
            assert problem.field == f"texts.{language}"
            assert problem.params["language"] == language
            assert problem.code in ("placeholder", "brace")
            assert problem.params["placeholder"]
        return
    assert allowed, text
    assert saved.texts == {language: text.strip()}
    assert session.added == [saved]
    # And it fills: nothing raises, no placeholder is left.
    filled = templates.fill(saved, language, _context(), program.name)
    assert "{" + "first_name}" not in filled


@pytest.mark.parametrize(
    ("texts", "field", "code", "placeholder"),
    [
        ({"nb": "Hei {frist_name}!"}, "texts.nb", "placeholder", "{frist_name}"),
        ({"nb": "Hei!", "sv": "Hej {coupon_code}"}, "texts.sv", "placeholder", "{coupon_code}"),
        ({"en": "Hi {first_name:>10}"}, "texts.en", "placeholder", "{first_name:>10}"),
        ({"en": "Hi {}"}, "texts.en", "placeholder", "{}"),
        ({"en": "Hi {first_name"}, "texts.en", "brace", "{first_name"),
        ({"sv": "Hej } då"}, "texts.sv", "brace", "} då"),
    ],
)
def test_a_bad_placeholder_is_named_with_its_language(
    texts: dict[str, str], field: str, code: str, placeholder: str
) -> None:
    with pytest.raises(templates.TemplateRefused) as refused:
        templates.save(
            _Session(),  # type: ignore[arg-type]
            Program(id=1, name="Torshov"),
            name="x",
            texts=texts,
            now=now(),
        )
    (problem,) = refused.value.problems
    assert (problem.field, problem.code, problem.params["placeholder"]) == (
        field,
        code,
        placeholder,
    )
    assert placeholder in problem.reason


@pytest.mark.parametrize(
    ("name", "texts", "codes"),
    [
        ("", {"nb": "Hei"}, ["name_empty"]),
        ("x" * 81, {"nb": "Hei"}, ["name_too_long"]),
        ("Åpent", {"nb": "  ", "en": ""}, ["no_text"]),
        ("Åpent", {}, ["no_text"]),
        ("Åpent", {"de": "Hallo"}, ["language"]),
        ("Åpent", {"nb": "x" * 641}, ["too_long"]),
        # 630 UCS-2 characters and the club's name at its longest: more than 10 SMS.
        ("Åpent", {"nb": "{club} " + "中" * 630}, ["too_many_sms"]),
        ("", {"nb": "{x}", "en": "{"}, ["name_empty", "placeholder", "brace"]),
    ],
)
def test_every_rule_broken_is_named(name: str, texts: dict[str, str], codes: list[str]) -> None:
    with pytest.raises(templates.TemplateRefused) as refused:
        templates.save(
            _Session(),  # type: ignore[arg-type]
            Program(id=1, name="Torshov"),
            name=name,
            texts=texts,
            now=now(),
        )
    assert [p.code for p in refused.value.problems] == codes


def test_640_characters_are_the_limit() -> None:
    kept = templates.check({"nb": "x" * 640}, club="Torshov")
    assert kept.problems == []
    assert templates.check({"nb": "x" * 641}, club="Torshov").problems[0].params["max"] == 640


def _context(
    name: str | None = "Kari",
    language: str = "nb",
    points: int | None = 1234,
    tier: str | None = "Gull",
) -> inbox.Context:
    return inbox.Context(
        member_id=1 if points is not None else None,
        name=name,
        status="active",
        language=language,
        tier=tier,
        points=points,
        last_purchase_at=None,
        coupons=(),
    )


TEXTS = {
    "nb": "Hei {first_name}, du har {points} poeng og er {tier} i {club}.",
    "sv": "Hej {first_name}!",
}


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        (_context(), "Hei Kari, du har 1\u00a0234 poeng og er Gull i Torshov."),
        (_context(name=None), "Hei, du har 1\u00a0234 poeng og er Gull i Torshov."),
        (_context(language="sv"), "Hej Kari!"),
        (_context(name="", language="sv"), "Hej!"),
    ],
)
def test_fill_writes_the_members_language_without_gaps(
    context: inbox.Context, expected: str
) -> None:
    template = MessageTemplate(texts=TEXTS)
    filled = templates.fill(template, context.language, context, "Torshov")
    assert filled.replace(" ", "\u00a0") == expected.replace(" ", "\u00a0")


@pytest.mark.parametrize(
    ("texts", "language", "expected"),
    [
        ({"nb": "Hei", "en": "Hi", "sv": "Hej"}, "sv", "Hej"),
        ({"nb": "Hei", "en": "Hi"}, "sv", "Hi"),  # English when theirs is missing
        ({"sv": "Hej", "nb": "Hei"}, "en", "Hei"),  # else the first in nb, sv, en order
    ],
)
def test_fill_picks_theirs_else_english_else_the_first(
    texts: dict[str, str], language: str, expected: str
) -> None:
    template = MessageTemplate(texts=texts)
    assert templates.fill(template, language, _context(language=language), "X") == expected


def test_a_stranger_gets_no_points_nor_tier() -> None:
    template = MessageTemplate(texts={"en": "Hi {first_name}! {club} here."})
    stranger = _context(name=None, language="en", points=None, tier=None)
    assert templates.fill(template, "en", stranger, "Torshov") == "Hi! Torshov here."


async def test_save_change_list_and_delete_in_the_club(db: Database, club: int) -> None:
    other = await create_club(db, name="Kafé Kari", numbers=["3030"], country="SE")

    def work(session: Session) -> dict[str, Any]:
        program = programs.get(session, club)
        elsewhere = programs.get(session, other)
        assert program is not None
        assert elsewhere is not None
        first = templates.save(
            session, program, name="  Åpningstider ", texts={"nb": "Hei {first_name}"}, now=now()
        )
        templates.save(session, program, name="Bursdag", texts={"en": "Hi"}, now=now())
        # The same name in another club is that club's own.
        theirs = templates.save(
            session, elsewhere, name="Åpningstider", texts={"sv": "Hej"}, now=now()
        )
        with pytest.raises(templates.TemplateRefused) as taken:
            templates.save(session, program, name="ÅPNINGSTIDER", texts={"nb": "x"}, now=now())
        changed = templates.save(
            session,
            program,
            name="Åpningstider",
            texts={"nb": "Hei {first_name}!", "en": "Hi!"},
            now=now(),
            template_id=first.id,
        )
        with pytest.raises(NotFound):
            templates.get(session, program, theirs.id)
        with pytest.raises(NotFound):
            templates.save(
                session, program, name="x", texts={"nb": "x"}, now=now(), template_id=theirs.id
            )
        with pytest.raises(NotFound):
            templates.delete(session, program, theirs.id)
        found = templates.by_name(session, program, "åpningstider")
        names = [t.name for t in templates.of_club(session, program)]
        gone = templates.delete(session, program, found.id)
        return {
            "taken": [p.code for p in taken.value.problems],
            "changed": (changed.id == first.id, changed.texts),
            "names": names,
            "gone": gone,
            "left": [t.name for t in templates.of_club(session, program)],
            "theirs": [t.name for t in templates.of_club(session, elsewhere)],
        }

    result = await db.run(work)
    assert result == {
        "taken": ["name_taken"],
        "changed": (True, {"nb": "Hei {first_name}!", "en": "Hi!"}),
        "names": ["Bursdag", "Åpningstider"],
        "gone": "Åpningstider",
        "left": ["Bursdag"],
        "theirs": ["Åpningstider"],
    }

    def reread(session: Session) -> dict[str, Any]:
        program = programs.get(session, club)
        assert program is not None
        return {t.name: t.texts for t in templates.of_club(session, program)}

    assert await db.run(reread) == {"Bursdag": {"en": "Hi"}}
