"""each member's purchase before the last (members.previous_purchase_at, kept by
purchases.record with last_purchase_at): a segment's purchase count of at least two, or at most
one, in a window or ever, is a comparison on the member's row instead of a count of purchases

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.models

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The second latest purchase of each member who bought (ix_purchases_member_occurred, read
# backwards from their last one).
_FILL = sa.text(
    "UPDATE members SET previous_purchase_at = ("
    "SELECT p.occurred_at FROM purchases AS p WHERE p.member_id = members.id "
    "ORDER BY p.occurred_at DESC LIMIT 1 OFFSET 1"
    ") WHERE last_purchase_at IS NOT NULL"
)


def upgrade() -> None:
    # Not in batch mode: on SQLite that copies the table (a nullable column is added in place).
    op.add_column(
        "members",
        sa.Column("previous_purchase_at", store.models.UTCDateTime(timezone=True), nullable=True),
    )
    conn = op.get_bind()
    conn.execute(_FILL)
    if conn.dialect.name == "postgresql":
        # The planner's figures for the new column now, not when autovacuum comes round.
        conn.execute(sa.text("ANALYZE members"))


def downgrade() -> None:
    # In place, not in batch mode: on SQLite a copy of members and a drop of the old table
    # would cascade to every member's purchases, points and messages.
    op.execute("ALTER TABLE members DROP COLUMN previous_purchase_at")
