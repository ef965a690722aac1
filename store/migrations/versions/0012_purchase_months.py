"""each member's purchases per month of the club's zone (purchase_months), kept by
purchases.record: the dashboard's buyers of a month without making a year of purchases distinct

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 04:00:00.000000
"""

import datetime as dt
import itertools
from collections.abc import Sequence
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

import store.models

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = store.models.UTCDateTime(timezone=True)
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# A plain new table (no batch copy of an old one); clustered by month on SQLite.
_TABLE = "purchase_months"
_MEMBER_INDEX = "ix_purchase_months_member_id"
# Each club's purchases so far, a month of its zone at a time (a range of the purchases'
# (program_id, occurred_at, ...) index each); purchases.record keeps them from here on. The
# month is its first instant and the next month's local midnight, as seconds since 1970: as
# store.loyalty.purchases.month_of cuts them.
_FILL = sa.text(
    "INSERT INTO purchase_months "
    "(program_id, month_start, month_end, member_id, purchases, revenue_minor) "
    "SELECT program_id, CAST(:month_start AS BIGINT), CAST(:month_end AS BIGINT), member_id, "
    "count(*), sum(total_minor) "
    "FROM purchases WHERE program_id = :program AND occurred_at >= :since "
    "AND occurred_at < :until GROUP BY program_id, member_id"
).bindparams(sa.bindparam("since", type_=UTC), sa.bindparam("until", type_=UTC))
_SPANS = sa.text(
    "SELECT programs.id, programs.timezone, min(occurred_at), max(occurred_at) "
    "FROM programs JOIN purchases ON purchases.program_id = programs.id "
    "GROUP BY programs.id, programs.timezone"
).columns(sa.column("id"), sa.column("timezone"), sa.column("first", UTC), sa.column("last", UTC))


def _midnight(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=zone).astimezone(dt.UTC)


def _months(first: dt.datetime, last: dt.datetime, zone: ZoneInfo) -> list[dt.date]:
    """The first days of the local months from the one holding `first` to the one holding
    `last`, and of the month after."""
    day = first.astimezone(zone).date().replace(day=1)
    end = last.astimezone(zone).date()
    out = [day]
    while out[-1] <= end:
        month = out[-1]
        out.append(dt.date(month.year + month.month // 12, month.month % 12 + 1, 1))
    return out


def upgrade() -> None:
    op.create_table(
        _TABLE,
        sa.Column("program_id", _ID, nullable=False),
        sa.Column("month_start", sa.BigInteger(), nullable=False),
        sa.Column("month_end", sa.BigInteger(), nullable=False),
        sa.Column("member_id", _ID, nullable=False),
        sa.Column("purchases", sa.Integer(), nullable=False),
        sa.Column("revenue_minor", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_purchase_months_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_purchase_months_program_id_programs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "program_id", "month_start", "month_end", "member_id", name=op.f("pk_purchase_months")
        ),
        sqlite_with_rowid=False,
    )
    op.create_index(_MEMBER_INDEX, _TABLE, ["member_id"])
    conn = op.get_bind()
    for program, timezone, first, last in conn.execute(_SPANS).all():
        zone = ZoneInfo(timezone)
        months = _months(first, last, zone)
        for start, end in itertools.pairwise(months):
            since, until = _midnight(start, zone), _midnight(end, zone)
            conn.execute(
                _FILL,
                {
                    "program": program,
                    "month_start": int(since.timestamp()),
                    "month_end": int(until.timestamp()),
                    "since": since,
                    "until": until,
                },
            )


def downgrade() -> None:
    op.drop_index(_MEMBER_INDEX, table_name=_TABLE)
    op.drop_table(_TABLE)
