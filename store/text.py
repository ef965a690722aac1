"""Text from outside (an admin form, a flag, a JSON value): the one rule for what is text."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from store.errors import InvalidInput

# Half of a UTF-16 pair (a JSON "\ud800" escape, or bytes that were not UTF-8 in a command's
# argument) can't be written as UTF-8, so no database keeps it; nor PostgreSQL a NUL. Other
# control characters are no one's text either. Tabs and line breaks are (a campaign's text).
_NOT_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
REASON = "is not text: it holds a control character or half of a character (a lone surrogate)"


def check_text(field: str, value: str) -> str:
    """The value as given; InvalidInput naming `field` if it is not text by the rule above."""
    if _NOT_TEXT.search(value):
        raise InvalidInput(field, REASON)
    return value


def is_text(value: str) -> bool:
    return _NOT_TEXT.search(value) is None


def text_only(value: str) -> str:
    """The value without what the rule above says is not text (a NUL, a lone surrogate)."""
    return _NOT_TEXT.sub("", value)


def check_texts(values: Mapping[str, Any]) -> None:
    """check_text for every text among named values (a form's fields, a command's flags): the
    first that breaks the rule is named. Values that are not text (a file, a number) pass."""
    for name, value in values.items():
        for one in value if isinstance(value, list | tuple) else (value,):
            if isinstance(one, str):
                check_text(name, one)
