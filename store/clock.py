"""The one clock every layer reads: now, in UTC (tests replace it where they import it)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    """This moment, timezone-aware in UTC (what every stored time is)."""
    return dt.datetime.now(dt.UTC)
