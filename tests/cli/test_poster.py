"""`klubb poster`, run in this process on both databases: a printable A4 or A6 PDF in the club's
language with its join keyword, number and a QR code that fills in the SMS; a club that is not
there is exit 2, saying so. The content rule itself (store.clubs.poster) is tested here too."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pypdf
import pytest

from bot.cli.main import main
from store.clubs import poster
from store.database import open_database
from store.models import Program
from tests.conftest import CLUB_NUMBER, create_club

SWEDISH_NUMBER = "+46701234567"
# Points, as PDF measures a page: A4 is 210 x 297 mm, A6 105 x 148 mm.
PAGE_SIZES = {"a4": (595, 842), "a6": (298, 420)}


@pytest.fixture
def url(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ("KLUBB_GATEWAY", "KLUBB_CONSOLE_OUTBOX", "KLUBB_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KLUBB_DATABASE_URL", database_url)

    async def set_up() -> None:
        db = open_database(database_url)
        try:
            await create_club(db)
            await create_club(db, name="Kafé Kari", numbers=[SWEDISH_NUMBER], country="SE")
        finally:
            await db.close()

    asyncio.run(set_up())
    return database_url


def page(path: Path) -> tuple[tuple[int, int], str]:
    """The PDF's one page: its size in whole points and its text."""
    data = path.read_bytes()
    assert data.startswith(b"%PDF-")
    reader = pypdf.PdfReader(path)
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    return (round(float(box.width)), round(float(box.height))), reader.pages[0].extract_text()


@pytest.mark.parametrize("size", ["a4", "a6"])
def test_the_poster_is_a_pdf_page_of_its_size_in_the_clubs_language(
    url: str, tmp_path: Path, size: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "poster.pdf"
    code = main(["poster", "--club-number", CLUB_NUMBER, "--out", str(out), "--size", size])
    assert code == 0, capsys.readouterr().err
    dimensions, text = page(out)
    assert dimensions == PAGE_SIZES[size]
    assert "Torshov Sport" in text
    assert "Send BLI MED til 2020" in text
    assert "JA" in text  # consent stays an SMS act: the member answers YES
    assert "example.com/privacy" in text
    assert "SMSTO:2020:BLI MED" in capsys.readouterr().out


def test_a4_is_the_default_size(url: str, tmp_path: Path) -> None:
    out = tmp_path / "poster.pdf"
    assert main(["poster", "--club-number", CLUB_NUMBER, "--out", str(out)]) == 0
    assert page(out)[0] == PAGE_SIZES["a4"]


def test_a_swedish_club_gets_a_swedish_poster_for_its_number_written_nationally(
    url: str, tmp_path: Path
) -> None:
    out = tmp_path / "affisch.pdf"
    assert main(["poster", "--club-number", "070-123 45 67", "--out", str(out)]) == 0
    text = page(out)[1]
    assert "Kafé Kari" in text
    assert "Skicka GÅ MED till +46 70 123 45 67" in text
    assert "Integritet: example.com/privacy" in text


def test_the_club_can_be_named_by_its_id(url: str, tmp_path: Path) -> None:
    out = tmp_path / "poster.pdf"
    assert main(["poster", "--club", "2", "--out", str(out), "--size", "a6"]) == 0
    assert "Kafé Kari" in page(out)[1]


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--club-number", "9999"], "no club answers on 9999"),
        (["--club", "77"], "no club with id 77"),
        ([], "there are several clubs"),
    ],
)
def test_a_club_that_is_not_there_is_exit_2_saying_so(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], said: str
) -> None:
    out = tmp_path / "poster.pdf"
    assert main(["poster", *flags, "--out", str(out)]) == 2
    assert said in capsys.readouterr().err
    assert not out.exists()


def test_an_unwritable_file_is_exit_1_naming_it(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "missing" / "poster.pdf"
    assert main(["poster", "--club-number", CLUB_NUMBER, "--out", str(out)]) == 1
    assert f"--out: No such file or directory: {out}" in capsys.readouterr().err


def test_a_size_that_is_not_a4_or_a6_is_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["poster", "--out", str(tmp_path / "p.pdf"), "--size", "a3"])
    assert exited.value.code == 2


@pytest.mark.parametrize(
    ("number", "keyword", "payload"),
    [
        ("2020", "BLI MED", "SMSTO:2020:BLI MED"),
        ("+46701234567", "GÅ MED", "SMSTO:+46701234567:GÅ MED"),
        ("+447700900123", "JOIN", "SMSTO:+447700900123:JOIN"),
    ],
)
def test_the_qr_payload_opens_the_sms_app_with_number_and_keyword(
    number: str, keyword: str, payload: str
) -> None:
    assert poster.sms_payload(number, keyword) == payload
    # What a phone's camera reads back: the number between the colons, the text after them.
    scheme, to, body = payload.split(":", 2)
    assert (scheme, to, body) == ("SMSTO", number, keyword)


@pytest.mark.parametrize(
    ("country", "language"), [("NO", "nb"), ("SE", "sv"), ("DK", "en"), ("GB", "en")]
)
def test_a_club_speaks_its_countrys_language(country: str, language: str) -> None:
    assert poster.club_language(Program(country=country)) == language


# Names beyond Latin-1 (the standard PDF fonts' reach): each comes out of the PDF as it went in,
# set in the embedded Noto Sans; an emoji, which no font of the poster has, is left out.
NAMES = [
    ("Łódź Kaffe", "Łódź Kaffe"),  # Polish
    ("Kavinė „Ąžuolas“ Ženklas", "Kavinė „Ąžuolas“ Ženklas"),  # Lithuanian
    ("Καφενείο Αθήνα", "Καφενείο Αθήνα"),  # Greek
    ("Кав'ярня «Київ»", "Кав'ярня «Київ»"),  # Cyrillic (Ukrainian)
    ("Kafé ☕ Oslo 🍰", "Kafé Oslo"),  # emoji: left out, the words closed up
    ("Cafe\u0301 Noe\u0308l", "Café Noël"),  # accents typed as combining marks: composed
]


def fonts(path: Path) -> list[pypdf.generic.DictionaryObject]:
    """The fonts the poster's page uses."""
    resources = pypdf.PdfReader(path).pages[0]["/Resources"]
    return [font.get_object() for font in resources["/Font"].values()]


@pytest.mark.parametrize(("name", "printed"), NAMES)
def test_a_club_name_in_any_european_script_is_printed_in_an_embedded_font(
    url: str, tmp_path: Path, name: str, printed: str
) -> None:
    asyncio.run(_club_named(url, name, "4040"))
    out = tmp_path / "poster.pdf"
    assert main(["poster", "--club-number", "4040", "--out", str(out), "--size", "a6"]) == 0
    text = page(out)[1]
    assert text.splitlines()[0] == printed
    assert "\x00" not in text  # no character drawn as the font's empty box
    used = fonts(out)
    assert used
    for font in used:
        # Embedded as a TrueType subset with a ToUnicode map (what makes the text extractable):
        # no font the reader's machine would have to stand in for.
        assert font["/Subtype"] == "/TrueType"
        assert font["/BaseFont"].split("+")[1] in ("NotoSans-Regular", "NotoSans-Bold")
        assert "/FontFile2" in font["/FontDescriptor"]
        assert "/ToUnicode" in font


def test_a_letter_no_font_of_the_poster_has_shows_as_a_question_mark(
    url: str, tmp_path: Path
) -> None:
    asyncio.run(_club_named(url, "Café שלום", "4040"))
    out = tmp_path / "poster.pdf"
    assert main(["poster", "--club-number", "4040", "--out", str(out)]) == 0
    assert page(out)[1].splitlines()[0] == "Café ????"


async def _club_named(url: str, name: str, number: str) -> None:
    db = open_database(url)
    try:
        # No profile questions: their SMS would have to fit in UCS-2 with these names.
        await create_club(db, name=name, numbers=[number], questions=[])
    finally:
        await db.close()
