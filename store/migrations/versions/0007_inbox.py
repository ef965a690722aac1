"""inbox: what staff did with a number's texts, who sent each staff reply, and an index of the
texts not understood per number

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 19:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.models

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbox_conversations",
        sa.Column("id", store.models.Id, nullable=False),
        sa.Column("program_id", store.models.Id, nullable=False),
        sa.Column("first_inbound_id", store.models.Id, nullable=False),
        sa.Column("answered_at", store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("done_at", store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", store.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_inbox_conversations_program_id_programs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["first_inbound_id"],
            ["inbound_messages.id"],
            name=op.f("fk_inbox_conversations_first_inbound_id_inbound_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_conversations")),
        sa.UniqueConstraint(
            "first_inbound_id", name=op.f("uq_inbox_conversations_first_inbound_id")
        ),
    )
    op.create_table(
        "staff_replies",
        sa.Column("id", store.models.Id, nullable=False),
        sa.Column("program_id", store.models.Id, nullable=False),
        sa.Column("outbox_id", store.models.Id, nullable=False),
        sa.Column("account_id", store.models.Id, nullable=True),
        sa.Column("created_at", store.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_staff_replies_program_id_programs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["outbox_id"],
            ["outbox_messages.id"],
            name=op.f("fk_staff_replies_outbox_id_outbox_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["admin_accounts.id"],
            name=op.f("fk_staff_replies_account_id_admin_accounts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_replies")),
        sa.UniqueConstraint("outbox_id", name=op.f("uq_staff_replies_outbox_id")),
    )
    op.create_index(
        op.f("ix_staff_replies_account_id"), "staff_replies", ["account_id"], unique=False
    )

    op.create_index(
        "ix_inbound_messages_inbox",
        "inbound_messages",
        ["program_id", "not_understood", "from_number", "received_at", "id"],
        unique=False,
        sqlite_where=sa.text("not_understood = 1"),
        postgresql_where=sa.text("not_understood"),
    )


def downgrade() -> None:
    op.drop_index("ix_inbound_messages_inbox", table_name="inbound_messages")
    op.drop_index(op.f("ix_staff_replies_account_id"), table_name="staff_replies")
    op.drop_table("staff_replies")
    op.drop_table("inbox_conversations")
