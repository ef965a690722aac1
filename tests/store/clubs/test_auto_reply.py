"""The club's own automatic reply to a text not understood: kept only when it names nothing
but the club and fits one SMS with any club name up to the longest allowed."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from locales.sms import segments
from store.clubs import programs
from store.models import Program

GSM_LETTERS = st.sampled_from("abcdefghijklmnopqrstuvwxyzæøåäöABCXYZÆØÅ &-.")


class _Session:
    """set_auto_reply only flushes: the rule needs no database."""

    def flush(self) -> None:
        return None


def _program(name: str = "Torshov Sport") -> Program:
    return Program(name=name, auto_reply=None)


@given(
    wording=st.lists(
        st.one_of(st.text(GSM_LETTERS, max_size=40), st.just("{club}"), st.text(max_size=3)),
        max_size=6,
    ).map("".join),
    name=st.text(GSM_LETTERS, min_size=1, max_size=programs.MAX_NAME),
)
def test_a_kept_reply_is_one_sms_for_any_name(wording: str, name: str) -> None:
    """Whatever is typed: refused, or as sent it is one segment whatever the club is called
    (a GSM-7 name up to the longest allowed), and names no placeholder but the club."""
    program = _program()
    try:
        programs.set_auto_reply(_Session(), program, {"nb": wording})  # type: ignore[arg-type]
    except programs.AutoReplyRefused as exc:
        refused = set(exc.over)
    else:
        refused = set()
    if refused:
        assert refused == {"nb"}
        assert program.auto_reply is None
        return
    if not wording.split():
        assert program.auto_reply is None
        return
    program.name = name
    sent = programs.auto_reply(program, "nb")
    assert sent is not None
    rest = sent.replace(name, "")
    assert "{" not in rest
    assert "}" not in rest
    assert segments(sent).segments == 1


@pytest.mark.parametrize(
    ("texts", "over"),
    [
        ({"sv": "Hej {first_name}!"}, {"sv": 0}),
        ({"en": "Hi {club"}, {"en": 0}),
        ({"nb": "{club} " + "x" * 100}, {"nb": 1}),  # a 60-character name + 101: 161
        ({"nb": "{club} " + "x" * 99, "en": "{0}"}, {"en": 0}),
    ],
)
def test_refused_names_each_language(texts: dict[str, str], over: dict[str, int]) -> None:
    program = _program()
    with pytest.raises(programs.AutoReplyRefused) as refused:
        programs.set_auto_reply(_Session(), program, texts)  # type: ignore[arg-type]
    assert refused.value.over == over
    assert program.auto_reply is None


def test_the_longest_that_fits_is_kept() -> None:
    program = _program()
    texts = {"nb": "{club} " + "x" * 99}
    programs.set_auto_reply(_Session(), program, texts)  # type: ignore[arg-type]
    assert program.auto_reply == texts


def test_whitespace_is_tidied_and_an_empty_language_left_out() -> None:
    program = _program()
    texts: dict[str, Any] = {"nb": "  Hei\n fra  {club}! ", "sv": "   ", "en": ""}
    programs.set_auto_reply(_Session(), program, texts)  # type: ignore[arg-type]
    assert program.auto_reply == {"nb": "Hei fra {club}!"}
    assert programs.auto_reply(program, "nb") == "Hei fra Torshov Sport!"
    assert programs.auto_reply(program, "sv") is None


class _Club(_Session):
    """update_club reads the club's questions: this club has none."""

    def scalars(self, *_: Any) -> Any:
        return _Nothing()


class _Nothing:
    def all(self) -> list[Any]:
        return []


ANY_LETTERS = st.one_of(GSM_LETTERS, st.sampled_from("ŁłóźćęŚ€[]{}^~⚽😀ü"))
CLUB = {"contact": "post@torshovsport.no", "privacy_url": "https://example.com/privacy"}


@given(
    wording=st.lists(
        st.one_of(st.text(GSM_LETTERS, max_size=40), st.just("{club}")), max_size=6
    ).map("".join),
    name=st.text(ANY_LETTERS, min_size=1, max_size=programs.MAX_NAME).filter(str.strip),
)
def test_a_rename_keeps_every_saved_reply_one_sms_or_is_refused(wording: str, name: str) -> None:
    """Whatever the new name (letters outside GSM-7, GSM-7's two-septet characters, emoji):
    the rename is refused naming the language, or the reply as sent is still one segment."""
    program = _program()
    try:
        programs.set_auto_reply(_Session(), program, {"nb": wording})  # type: ignore[arg-type]
    except programs.AutoReplyRefused:
        return
    refused: programs.NameTooLongForAutoReply | None = None
    try:
        programs.update_club(_Club(), program, name=name, **CLUB)  # type: ignore[arg-type]
    except programs.NameTooLongForAutoReply as exc:
        refused = exc
    if refused is not None:
        assert (refused.language, refused.over > 0) == ("nb", True)
        assert program.name == "Torshov Sport"
        return
    assert program.name == name.strip()
    sent = programs.auto_reply(program, "nb")
    if sent is not None:
        assert segments(sent).segments == 1


def test_the_issues_reply_and_a_polish_name_are_refused_by_three_characters() -> None:
    program = _program()
    wording = "Takk! Vi har sendt meldingen din til {club}, og svarer i åpningstiden."
    programs.set_auto_reply(_Session(), program, {"nb": wording, "en": "Thanks from {club}!"})  # type: ignore[arg-type]
    with pytest.raises(programs.NameTooLongForAutoReply) as refused:
        programs.update_club(_Club(), program, name="Łódź Café", **CLUB)  # type: ignore[arg-type]
    assert (refused.value.language, refused.value.over) == ("nb", 3)
    assert refused.value.problems == {
        "name": "the automatic reply (nb) would be 3 characters too long for one SMS"
    }
    programs.update_club(_Club(), program, name="Łódź", **CLUB)  # type: ignore[arg-type]
    assert programs.auto_reply(program, "nb") == wording.replace("{club}", "Łódź")


def test_a_club_named_outside_gsm7_may_name_itself_in_a_reply_that_fits() -> None:
    """Measured with its own name (UCS-2) and a GSM-7 name of the longest, not with its own
    name padded to 60 UCS-2 characters, which would leave {club} no room at all."""
    program = _program("Łódź Café")
    programs.set_auto_reply(_Session(), program, {"nb": "Takk! {club} svarer deg snart."})  # type: ignore[arg-type]
    assert programs.auto_reply(program, "nb") == "Takk! Łódź Café svarer deg snart."
    with pytest.raises(programs.AutoReplyRefused) as refused:
        programs.set_auto_reply(_Session(), program, {"nb": "Takk! {club} " + "x" * 55})  # type: ignore[arg-type]
    assert refused.value.over == {"nb": 1}  # 6 + 9 + 1 + 55 = 71 UCS-2 characters
