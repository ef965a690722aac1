"""the seeds' mechanics and production: receipts and birthday changes on members, structured
offers and bonus cheques on coupon templates, recurring broadcasts, profile questions put to
existing members, and sender heartbeats (with who claimed an outbox row)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 22:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.models

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = store.models.UTCDateTime(timezone=True)
Id = store.models.Id

# Plain columns only (no batch copy): on SQLite a batch copy drops and re-creates the table,
# and dropping a parent table deletes its children (ON DELETE CASCADE).
_COLUMNS = (
    ("members", sa.Column("receipts", sa.Boolean(), server_default=sa.false(), nullable=False)),
    ("members", sa.Column("birthday_changed_at", UTC, nullable=True)),
    ("coupon_templates", sa.Column("offer", sa.JSON(), nullable=True)),
    (
        "coupon_templates",
        sa.Column("automatic", sa.Boolean(), server_default=sa.false(), nullable=False),
    ),
    ("campaigns", sa.Column("recurrence", sa.JSON(), nullable=True)),
    ("campaigns", sa.Column("parent_id", Id, nullable=True)),
    ("campaigns", sa.Column("occurrence", sa.String(length=20), nullable=True)),
    ("outbox_messages", sa.Column("claimed_by", sa.String(length=64), nullable=True)),
)


def upgrade() -> None:
    for table, column in _COLUMNS:
        op.add_column(table, column)
    op.create_index(
        "ix_campaigns_parent_occurrence", "campaigns", ["parent_id", "occurrence"], unique=True
    )
    op.create_table(
        "profile_prompts",
        sa.Column("id", Id, nullable=False),
        sa.Column("program_id", Id, nullable=False),
        sa.Column("member_id", Id, nullable=False),
        sa.Column("question_id", Id, nullable=False),
        sa.Column("asked_at", UTC, nullable=False),
        sa.Column("skipped_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_profile_prompts_program_id_programs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_profile_prompts_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["question_id"],
            ["profile_questions.id"],
            name=op.f("fk_profile_prompts_question_id_profile_questions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profile_prompts")),
        sa.UniqueConstraint(
            "member_id", "question_id", name=op.f("uq_profile_prompts_member_id_question_id")
        ),
    )
    op.create_table(
        "sender_heartbeats",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=100), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", UTC, nullable=False),
        sa.Column("seen_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sender_heartbeats")),
    )


def downgrade() -> None:
    op.drop_table("sender_heartbeats")
    op.drop_table("profile_prompts")
    op.drop_index("ix_campaigns_parent_occurrence", table_name="campaigns")
    for table, column in reversed(_COLUMNS):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column.name}")
