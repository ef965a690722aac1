"""Import and export in a real browser: upload a CSV with two bad rows, see both named by line,
import the good rows with progress shown, then export the members and read the download."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Demo, LiveServer, Screens, sign_in

# Line 3 is not a number; line 5 repeats line 2's number.
CSV = (
    "\ufeffTelefon;Fornavn;Språk;Fødselsdato;Samtykkedato;Kilde\r\n"
    "41 00 00 01;Nora;nb;12.03.1990;01.02.2024;papirskjema i kassen\r\n"
    "ring meg;Per;;;01.02.2024;papirskjema i kassen\r\n"
    "41 00 00 02;Emil;;;01.02.2024 12:30;avkrysning i nettbutikken\r\n"
    "+47 41 00 00 01;Nora igjen;;;01.02.2024;papirskjema i kassen\r\n"
    "+46 70 123 45 67;Åsa;sv;;2024-02-03;kryssruta i webbutiken\r\n"
)


def test_import_a_file_with_two_bad_rows_then_export_the_members(
    page: Any, live_server: LiveServer, demo: Demo, screens: Screens, tmp_path: Path
) -> None:
    sign_in(page)
    page.get_by_role("link", name="Import og eksport").click()
    expect(page).to_have_url(re.compile(r"/admin/transfer$"))
    expect(page.get_by_role("heading", name="Importer medlemmer")).to_be_visible()
    screens(page, "transfer")
    screens.on_phone(page, "transfer-phone")

    upload = tmp_path / "medlemmer.csv"
    upload.write_bytes(CSV.encode())
    page.get_by_label("CSV-fil").set_input_files(str(upload))
    page.get_by_role("button", name="Sjekk filen").click()

    expect(page.get_by_role("heading", name="Sjekk importen", level=1)).to_be_visible()
    expect(page.locator('[data-fact="encoding"]')).to_have_text("UTF-8 med BOM")
    expect(page.locator('[data-fact="delimiter"]')).to_have_text("semikolon (;)")
    expect(page.locator('[data-count="good"]')).to_have_text("3 rader kan importeres")
    expect(page.locator('[data-count="bad"]')).to_have_text("2 rader kan ikke")
    expect(page.locator('tr[data-line="3"]')).to_contain_text("Ikke et telefonnummer")
    expect(page.locator('tr[data-line="5"]')).to_contain_text("Samme nummer som linje 2")
    expect(page.get_by_label("Telefonnummer")).to_have_value("0")
    expect(page.get_by_label("Bevis for samtykke")).to_have_value("5")
    screens(page, "preview")
    screens.on_phone(page, "preview-phone")

    page.get_by_label("Importer de riktige radene og hopp over de feil").check()
    page.get_by_role("button", name="Importer", exact=True).click()
    expect(page).to_have_url(re.compile(r"/admin/transfer/import/[\w-]+$"))
    expect(page.locator('[data-result="done"]')).to_have_text("3 medlemmer importert.")
    expect(page.locator('[data-result="skipped"]')).to_have_text("2 rader hoppet over.")
    expect(page.locator('tr[data-line="3"]')).to_be_visible()
    screens(page, "result")

    with page.expect_download() as report_download:
        page.get_by_role("link", name="Last ned de feil radene (CSV)").click()
    report = Path(report_download.value.path()).read_bytes().decode("utf-8-sig").splitlines()
    assert report[1:] == [
        "3;ring meg;Ikke et telefonnummer",
        "5;'+47 41 00 00 01;Samme nummer som linje 2",
    ]

    page.goto("/admin/transfer")
    with page.expect_download() as members_download:
        page.get_by_role("link", name="Medlemmer", exact=True).last.click()
    download = members_download.value
    assert re.fullmatch(
        r"torshov-sport-members-\d{4}-\d{2}-\d{2}\.csv", download.suggested_filename
    )
    body = Path(download.path()).read_bytes()
    assert body.startswith(b"\xef\xbb\xbf")
    rows = [line.split(";") for line in body.decode("utf-8-sig").splitlines()]
    assert rows[0][:3] == ["member_id", "phone", "first_name"]
    assert {(r[1], r[2]) for r in rows[1:]} == {
        ("+4791234567", "Kari"),
        ("+4798765432", "Ola"),
        ("+4741000001", "Nora"),
        ("+4741000002", "Emil"),
        ("+46701234567", "Åsa"),
    }
    assert len(screens.taken) == 5
