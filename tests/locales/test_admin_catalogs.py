"""The web admin's words: admin*.po in nb, sv and en hold the same ids and placeholders, and
every id the admin's code and templates ask for is there (and nothing nobody asks for)."""

import re
import string
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

import bot.admin
import locales
from locales import LANGUAGES, message_ids, text

CATALOG_DIR = Path(locales.__file__).parent
ADMIN_DIR = Path(bot.admin.__file__).parent
# "admin.x.y" as a whole string literal in Python or Jinja; one ending in "." is a prefix that
# code completes at run time ("admin.status." ~ member.status).
LITERAL = re.compile(r"""["'](admin\.[a-z0-9_.]+)["']""")


def admin_files(language: str) -> list[str]:
    return sorted(p.name for p in (CATALOG_DIR / language / "LC_MESSAGES").glob("admin*.po"))


def placeholders(language: str) -> dict[str, set[str]]:
    result: dict[str, set[str]] = {}
    for name in admin_files(language):
        with (CATALOG_DIR / language / "LC_MESSAGES" / name).open("rb") as po:
            for message in list(read_po(po, abort_invalid=True))[1:]:
                forms = message.string if message.pluralizable else [message.string]
                key = message.id[0] if message.pluralizable else message.id
                result[key] = {
                    name
                    for form in forms
                    for _, name, _, _ in string.Formatter().parse(form)
                    if name
                }
    return result


def used_in_code() -> tuple[set[str], set[str]]:
    ids: set[str] = set()
    prefixes: set[str] = set()
    sources = [*ADMIN_DIR.rglob("*.py"), *ADMIN_DIR.rglob("*.html"), *ADMIN_DIR.rglob("*.js")]
    for source in sources:
        for found in LITERAL.findall(source.read_text()):
            (prefixes if found.endswith(".") else ids).add(found)
    return ids, prefixes


def test_every_language_has_the_same_admin_files():
    assert admin_files("nb")
    assert admin_files("nb") == admin_files("sv") == admin_files("en")


@pytest.mark.parametrize("language", ["sv", "en"])
def test_the_same_ids_and_placeholders_as_norwegian(language):
    assert placeholders(language) == placeholders("nb")


def test_every_admin_id_starts_with_admin():
    assert all(message_id.startswith("admin.") for message_id in placeholders("nb"))


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_id_the_admin_asks_for_is_in_the_catalog(language):
    ids, _ = used_in_code()
    assert ids, "no admin ids found in bot/admin: has the layout changed?"
    assert sorted(ids - message_ids(language)) == []


def test_every_admin_text_is_asked_for_by_the_admin():
    ids, prefixes = used_in_code()
    unused = [
        message_id
        for message_id in placeholders("nb")
        if message_id not in ids and not message_id.startswith(tuple(prefixes))
    ]
    assert unused == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_admin_text_renders_with_its_placeholders(language):
    for message_id, names in placeholders(language).items():
        params: dict[str, object] = dict.fromkeys(names, 1)
        if "count" not in params:
            params["count"] = 1
        assert text(message_id, language, **params)
