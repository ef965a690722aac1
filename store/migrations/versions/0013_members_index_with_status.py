"""on PostgreSQL, the members' (program_id, id) index carries their status (INCLUDE): segment
counts over purchases and lines merge with the club's members from the index alone

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 04:40:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEX = "ix_members_program_id"


def upgrade() -> None:
    # SQLite has no INCLUDE, and its plans are measured with the index as it is.
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(_INDEX, table_name="members")
    op.create_index(_INDEX, "members", ["program_id", "id"], postgresql_include=["status"])


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(_INDEX, table_name="members")
    op.create_index(_INDEX, "members", ["program_id", "id"])
