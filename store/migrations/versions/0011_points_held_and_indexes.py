"""the points each member holds kept on their row (open_points, open_points_until), and three
indexes: ledger entries by member and kind, click links by message, inbox conversations by club

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 01:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.models

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = store.models.UTCDateTime(timezone=True)

# Plain columns only (no batch copy): on SQLite a batch copy drops and re-creates the table,
# and dropping a parent table deletes its children (ON DELETE CASCADE).
_COLUMNS = (
    (
        "members",
        sa.Column("open_points", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
    ),
    ("members", sa.Column("open_points_until", UTC, nullable=True)),
)
_INDEXES = (
    ("ix_ledger_entries_member_kind", "ledger_entries", ["member_id", "kind"]),
    ("ix_click_links_message_id", "click_links", ["message_id"]),
    ("ix_inbox_conversations_program_updated", "inbox_conversations", ["program_id", "updated_at"]),
)
# What the ledger keeps from here on (store.loyalty.ledger): the points of the member's lots not
# yet settled, and the earliest end among them.
_FILL = """
UPDATE members SET
    open_points = (
        SELECT COALESCE(SUM(remaining), 0) FROM point_lots
        WHERE point_lots.member_id = members.id AND remaining > 0
    ),
    open_points_until = (
        SELECT MIN(expires_at) FROM point_lots
        WHERE point_lots.member_id = members.id AND remaining > 0
    )
WHERE id IN (SELECT member_id FROM point_lots WHERE remaining > 0)
"""


def upgrade() -> None:
    for table, column in _COLUMNS:
        op.add_column(table, column)
    op.execute(_FILL)
    for name, table, columns in _INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _columns in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
    for table, column in reversed(_COLUMNS):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column.name}")
