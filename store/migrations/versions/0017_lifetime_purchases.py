"""each member's purchases in all (members.purchase_count and purchase_total_minor, kept by
purchases.record): a segment's purchase count or amount without a window of days is a
comparison on the member's row instead of a grouping of every purchase of the club

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 12:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("purchase_count", "purchase_total_minor")

# Every member who bought (ix_purchases_member_occurred: the member's purchases in one range).
# A refund leaves its purchase as it was, so these are the purchases' own count and sum.
_FILL = sa.text(
    "UPDATE members SET "
    "purchase_count = (SELECT count(*) FROM purchases AS p WHERE p.member_id = members.id), "
    "purchase_total_minor = ("
    "SELECT coalesce(sum(p.total_minor), 0) FROM purchases AS p WHERE p.member_id = members.id"
    ") WHERE last_purchase_at IS NOT NULL"
)


def upgrade() -> None:
    # Not in batch mode: on SQLite that copies the table (a column with a constant default
    # is added in place).
    op.add_column(
        "members",
        sa.Column("purchase_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column(
        "members",
        sa.Column(
            "purchase_total_minor", sa.BigInteger(), server_default=sa.text("0"), nullable=False
        ),
    )
    conn = op.get_bind()
    conn.execute(_FILL)
    if conn.dialect.name == "postgresql":
        # The planner's figures for the new columns now, not when autovacuum comes round.
        conn.execute(sa.text("ANALYZE members"))


def downgrade() -> None:
    # In place, not in batch mode: on SQLite a copy of members and a drop of the old table
    # would cascade to every member's purchases, points and messages.
    for column in _COLUMNS:
        op.execute(f"ALTER TABLE members DROP COLUMN {column}")
