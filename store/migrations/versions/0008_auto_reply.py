"""auto reply: the club's own wording, per language, of the reply to a text not understood

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 20:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("programs", sa.Column("auto_reply", sa.JSON(), nullable=True))


def downgrade() -> None:
    # Not a batch copy of programs: on SQLite that drops the table, and its members with it
    # (ON DELETE CASCADE). Both SQLite (3.35+) and PostgreSQL drop a plain column in place.
    op.execute("ALTER TABLE programs DROP COLUMN auto_reply")
