"""Statuses are a table: move() follows it, and no status is written as a bare literal."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from store import states
from store.states import (
    TRANSITIONS,
    BadTransition,
    CampaignStatus,
    ImportState,
    MemberStatus,
    OutboxStatus,
    move,
)

ROOT = Path(__file__).resolve().parents[2]
# Every value some lifecycle knows, so that a sequence can try any of them.
STATUSES_OF = {
    "member": list(MemberStatus),
    "broadcast": [
        s for s in CampaignStatus if s not in (CampaignStatus.ACTIVE, CampaignStatus.PAUSED)
    ],
    "journey": [CampaignStatus.ACTIVE, CampaignStatus.PAUSED],
    "series": [CampaignStatus.ACTIVE, CampaignStatus.PAUSED, CampaignStatus.CANCELLED],
    "outbox": list(OutboxStatus),
    "coupon": list(states.CouponState),
    "import": list(ImportState),
}


def test_every_lifecycle_has_its_statuses() -> None:
    assert set(STATUSES_OF) == set(TRANSITIONS)
    for kind, table in TRANSITIONS.items():
        for current, targets in table.items():
            assert current in STATUSES_OF[kind]
            assert targets <= set(STATUSES_OF[kind]), kind


def test_an_allowed_move_returns_the_new_status_and_logs_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="store.states"):
        assert move("member", "pending", MemberStatus.ACTIVE, what=7) == "active"
        assert move("broadcast", CampaignStatus.SCHEDULED, CampaignStatus.PLANNING) == "planning"
        assert move("journey", "paused", CampaignStatus.ACTIVE) == "active"
    assert "member 7: pending -> active" in caplog.text


def test_staying_put_is_allowed_and_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="store.states"):
        assert move("member", "stopped", MemberStatus.STOPPED) == "stopped"
    assert caplog.text == ""


@pytest.mark.parametrize(
    ("kind", "current", "new"),
    [
        ("member", MemberStatus.ACTIVE, MemberStatus.PENDING),
        ("broadcast", CampaignStatus.DONE, CampaignStatus.SENDING),
        ("broadcast", CampaignStatus.CANCELLED, CampaignStatus.SCHEDULED),
        ("broadcast", CampaignStatus.SCHEDULED, CampaignStatus.DONE),
        ("outbox", OutboxStatus.SENT, OutboxStatus.QUEUED),
        ("outbox", OutboxStatus.HELD_OUT, OutboxStatus.QUEUED),
        ("import", ImportState.DONE, ImportState.RUNNING),
        ("member", MemberStatus.ACTIVE, "asleep"),
    ],
)
def test_a_move_the_table_does_not_allow_raises(kind: str, current: str, new: str) -> None:
    with pytest.raises(BadTransition, match=f"from '{current}' to '{new}'"):
        move(kind, current, new)


def test_require_checks_bulk_updates_at_import() -> None:
    states.require("outbox", (OutboxStatus.QUEUED, OutboxStatus.SENDING))
    with pytest.raises(BadTransition):
        states.require("outbox", (OutboxStatus.SENT, OutboxStatus.SENDING))


@st.composite
def walks(draw: st.DrawFn) -> tuple[str, list[str]]:
    kind = draw(st.sampled_from(sorted(TRANSITIONS)))
    return kind, draw(st.lists(st.sampled_from(STATUSES_OF[kind]), min_size=1, max_size=12))


@given(walks())
def test_a_sequence_is_accepted_exactly_when_the_table_allows_every_step(
    walk: tuple[str, list[str]],
) -> None:
    kind, path = walk
    table = TRANSITIONS[kind]
    current = path[0]
    for new in path[1:]:
        ok = new == current or new in table.get(current, frozenset())  # type: ignore[call-overload]
        if ok:
            assert move(kind, current, new) == new
            current = new
        else:
            with pytest.raises(BadTransition):
                move(kind, current, new)
            return


# --- no bare status literal --------------------------------------------------------------------

_VALUES = "|".join(
    sorted({str(s) for s in (*MemberStatus, *CampaignStatus, *OutboxStatus)}, key=len, reverse=True)
)
# A status written out where a status is compared, set or assigned: `status == "active"`,
# `.status != "sent"`, `status="queued"`, `.status = "done"`, `status in ("queued", ...)`,
# `"status": "active"`, `c.status == "x"` in SQL; a count by status read by its key:
# `by_status.get("queued", 0)`, `statuses["sent"]`, `tally.get("failed", 0)`.
_STATUS_CONTEXT = re.compile(
    r"""(?:status\w*|\btally)["']?\s*"""
    r"""(?:==|!=|=|:|\bin\b|\bnot\s+in\b|\.in_\(|\.not_in\(|\.get\(|\[)\s*[\(\[\{]*\s*["'](?:"""
    + _VALUES
    + r""")["']"""
)
SCANNED = ("bot", "flows", "scheduler", "store")
SKIPPED = ("store/migrations/", "store/states.py")


def _scanned() -> list[Path]:
    files = []
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if not rel.startswith(SKIPPED):
                files.append(path)
    return files


def test_the_pattern_finds_what_it_should() -> None:
    for line in (
        'if member.status == "active":',
        '.where(_OUTBOX.c.status != "sent")',
        'row.status = "sent"',
        'update(x).values(status="skipped")',
        '_OUTBOX.c.status.in_(("queued", "sending"))',
        '{"status": "held_out"}',
        'waiting = outcome.by_status.get("queued", 0)',
        "f\"{outcome.by_status.get('sent', 0):,}\"",
        'statuses["sent"]',
        'failed=tally.get("failed", 0) + tally.get("delivery:failed", 0)',
    ):
        assert _STATUS_CONTEXT.search(line), line
    for line in (
        'if result.outcome == "sent":',
        'return "cancelled"',
        'active = form.get("active") == "on"',
        "status=422",
        "Member.status == MemberStatus.ACTIVE",
        "outcome.by_status.get(OutboxStatus.QUEUED, 0)",
        'delivered=tally.get("delivery:delivered", 0)',
        'totally.get("sent")',
    ):
        assert not _STATUS_CONTEXT.search(line), line


def test_no_status_is_written_as_a_bare_literal() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in _scanned()
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if _STATUS_CONTEXT.search(line)
    ]
    assert found == [], "use store.states:\n" + "\n".join(found)
