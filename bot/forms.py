"""Reading a posted form, the one way every route does: bytes that can't be read are the
sender's mistake (a 400 naming it), never a 500."""

from __future__ import annotations

from aiohttp import web
from multidict import MultiDictProxy

# What aiohttp's request.post() gives: text fields, and files of a multipart form.
Form = MultiDictProxy[str | bytes | bytearray | web.FileField]


class FormUnreadable(web.HTTPBadRequest):
    """A form whose bytes can't be decoded: not UTF-8 or not the charset it names, or a charset
    Python does not know; its text names which, for the JSON answer."""


async def posted_form(request: web.Request) -> Form:
    """The request's form (aiohttp keeps it: a second call reads nothing again), or
    FormUnreadable: bytes not in the charset named (UnicodeDecodeError, a ValueError), a charset
    Python does not know (LookupError), a multipart field with either."""
    try:
        return await request.post()
    except (ValueError, LookupError) as exc:
        what = "an unknown charset" if isinstance(exc, LookupError) else "bytes not in its charset"
        raise FormUnreadable(text=f"the form could not be read: {what} (send UTF-8)") from None
