"""The database out of reach (stopped, restarting, dropped, a network cut), told apart from a
bug, and said once an outage rather than once a try.

Whatever asks the database again and again (the scheduler's jobs, the sender's heartbeat, the
leadership check, the readiness probe) keeps an `Outage`: one WARNING line, without a
traceback, when the database stops answering; DEBUG while it still does not; one INFO line
when it answers again. A failure that is not `unreachable` is a bug, and its caller still logs
it as one (ERROR, with its traceback)."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator

from sqlalchemy.exc import DBAPIError, OperationalError

# PostgreSQL's SQLSTATEs of a server that can't be reached or is going away, besides class 08
# (connection_exception): shut down, crashed, starting up, the database dropped (57P01-57P04),
# no such database (3D000: dropped, or not made yet), too many connections (53300). asyncpg's
# errors reach SQLAlchemy as a plain DBAPIError, so the code is what tells them apart.
_UNREACHABLE_STATES = frozenset({"57P01", "57P02", "57P03", "57P04", "3D000", "53300"})
# SQLite raises OperationalError for wrong SQL too (SQLITE_ERROR: "no such table", a syntax
# error): only these primary result codes are the file out of reach (locked by another process
# past the busy timeout, unreadable, gone).
_SQLITE_UNREACHABLE = frozenset(
    {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN}
)
# How far down an exception's causes to look (a DBAPIError's driver error, the driver's own).
_DEPTH = 8


def unreachable(exc: BaseException) -> bool:
    """Whether `exc` says the database could not be reached or dropped the connection, rather
    than that the work itself is wrong: an OSError (refused, reset, no route, a name that does
    not resolve, a timeout, a Unix socket that is gone), a connection SQLAlchemy invalidated,
    a driver's OperationalError, or one of PostgreSQL's connection SQLSTATEs."""
    for each in _causes(exc):
        if isinstance(each, OSError):
            return True
        if isinstance(each, sqlite3.Error):
            return each.sqlite_errorcode & 0xFF in _SQLITE_UNREACHABLE
        if isinstance(each, DBAPIError):
            if each.connection_invalidated:
                return True
            if isinstance(each, OperationalError) and not isinstance(each.orig, sqlite3.Error):
                return True
        state = getattr(each, "sqlstate", None) or getattr(each, "pgcode", None)
        if isinstance(state, str) and (state.startswith("08") or state in _UNREACHABLE_STATES):
            return True
    return False


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then what it wraps: a DBAPIError's driver error, then each `__cause__` (or the
    exception being handled when it was raised)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < _DEPTH:
        seen.add(id(current))
        yield current
        orig = current.orig if isinstance(current, DBAPIError) else None
        if isinstance(orig, BaseException) and id(orig) not in seen:
            current = orig
        else:
            current = current.__cause__ or current.__context__


def reason(exc: BaseException) -> str:
    """What went wrong in one line: no traceback, no SQL, no parameters (a DBAPIError's own
    text carries both), and the driver's error rather than SQLAlchemy's wrapper."""
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    first_line = lines[0] if lines else ""
    return f"{type(original).__name__}: {first_line}".rstrip(": ")


class Outage:
    """One user of the database (`what`: "scheduler job outbox-sender") and whether it meets
    an outage: `failed` on each try the database did not answer, `answered` on each that went
    through. Logs on `logger` once when an outage begins and once when it ends."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self.log = logger
        self.what = what
        self.failures = 0
        self._since: float | None = None

    @property
    def down(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException, why: str | None = None) -> None:
        """A try the database did not answer: a WARNING if it is the first of an outage, else
        DEBUG. `why`: the reason in words, when the caller knows it better than `exc` says."""
        why = why or reason(exc)
        self.failures += 1
        if self._since is None:
            self._since = time.monotonic()
            self.log.warning(
                "%s: the database is unreachable (%s); said again once it answers",
                self.what,
                why,
            )
        else:
            self.log.debug("%s: the database is still unreachable (%s)", self.what, why)

    def answered(self) -> None:
        """A try that went through: an INFO line if an outage ends with it."""
        if self._since is None:
            return
        seconds = time.monotonic() - self._since
        self.log.info(
            "%s: the database answers again (unreachable for %.0f s, %d failed %s)",
            self.what,
            seconds,
            self.failures,
            "try" if self.failures == 1 else "tries",
        )
        self._since = None
        self.failures = 0
