"""click links and their clicks, saved message templates, and two club settings (the page link
in welcome and reward SMS; how long message bodies are kept)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 22:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.models

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = store.models.UTCDateTime(timezone=True)
Id = store.models.Id


def upgrade() -> None:
    op.add_column(
        "programs",
        sa.Column("page_link_in_sms", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column(
        "programs",
        sa.Column("retention_months", sa.Integer(), server_default="13", nullable=False),
    )
    op.create_table(
        "click_links",
        sa.Column("id", Id, nullable=False),
        sa.Column("program_id", Id, nullable=False),
        sa.Column("campaign_id", Id, nullable=False),
        sa.Column("message_id", Id, nullable=True),
        sa.Column("member_id", Id, nullable=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_click_links_program_id_programs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_click_links_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["outbox_messages.id"],
            name=op.f("fk_click_links_message_id_outbox_messages"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_click_links_member_id_members"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_click_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_click_links_token_hash")),
    )
    op.create_index("ix_click_links_campaign_id", "click_links", ["campaign_id"])
    op.create_index("ix_click_links_member_id", "click_links", ["member_id"])
    op.create_table(
        "link_clicks",
        sa.Column("id", Id, nullable=False),
        sa.Column("link_id", Id, nullable=False),
        sa.Column("clicked_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["link_id"],
            ["click_links.id"],
            name=op.f("fk_link_clicks_link_id_click_links"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_link_clicks")),
    )
    op.create_index("ix_link_clicks_link_id", "link_clicks", ["link_id"])
    op.create_table(
        "message_templates",
        sa.Column("id", Id, nullable=False),
        sa.Column("program_id", Id, nullable=False),
        sa.Column("purpose", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("texts", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_message_templates_program_id_programs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_templates")),
        sa.UniqueConstraint(
            "program_id",
            "purpose",
            "name",
            name=op.f("uq_message_templates_program_id_purpose_name"),
        ),
    )


def downgrade() -> None:
    op.drop_table("message_templates")
    op.drop_index("ix_link_clicks_link_id", table_name="link_clicks")
    op.drop_table("link_clicks")
    op.drop_index("ix_click_links_member_id", table_name="click_links")
    op.drop_index("ix_click_links_campaign_id", table_name="click_links")
    op.drop_table("click_links")
    # Not a batch copy of programs: on SQLite that drops the table, and its members with it
    # (ON DELETE CASCADE). Both SQLite (3.35+) and PostgreSQL drop a plain column in place.
    op.execute("ALTER TABLE programs DROP COLUMN retention_months")
    op.execute("ALTER TABLE programs DROP COLUMN page_link_in_sms")
