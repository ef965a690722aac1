"""on PostgreSQL, an index of the members' columns segments read (program_id, status,
last_purchase_at, with the rest INCLUDEd): a count planned without statistics reads the club
from it, not the rows through a bitmap of a million

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 13:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEX = "ix_members_segments"
_KEY = ["program_id", "status", "last_purchase_at"]
_INCLUDE = [
    "id",
    "tier_id",
    "open_points",
    "open_points_until",
    "previous_purchase_at",
    "purchase_count",
    "purchase_total_minor",
    "joined_at",
    "birthday",
    "language",
]


def upgrade() -> None:
    # SQLite plans its counts from the table (segments.in_club) and has no INCLUDE.
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_index(_INDEX, "members", _KEY, postgresql_include=_INCLUDE)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(_INDEX, table_name="members")
