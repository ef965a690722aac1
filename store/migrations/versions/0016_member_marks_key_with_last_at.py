"""on PostgreSQL, member_marks' key carries last_at (INCLUDE): a segment's category or store in
a window of days reads its range of the key alone, as SQLite reads its clustered rows

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 12:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEY = ("program_id", "kind", "name", "member_id")


def _key(include: list[str]) -> None:
    # One statement: the table is never without its key.
    columns = ", ".join(_KEY)
    included = f" INCLUDE ({', '.join(include)})" if include else ""
    op.execute(
        "ALTER TABLE member_marks DROP CONSTRAINT pk_member_marks, "
        f"ADD CONSTRAINT pk_member_marks PRIMARY KEY ({columns}){included}"
    )


def upgrade() -> None:
    # SQLite keeps the table clustered by its key (WITHOUT ROWID): last_at is in the range.
    if op.get_bind().dialect.name != "postgresql":
        return
    _key(["last_at"])


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _key([])
