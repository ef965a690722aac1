"""member links: the tokens behind the links a member taps (their own page)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 19:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.models

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'member_links',
        sa.Column('id', store.models.Id, nullable=False),
        sa.Column('program_id', store.models.Id, nullable=False),
        sa.Column('member_id', store.models.Id, nullable=False),
        sa.Column('purpose', sa.String(length=20), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('ended_at', store.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ['program_id'], ['programs.id'],
            name=op.f('fk_member_links_program_id_programs'), ondelete='CASCADE',
        ),
        sa.ForeignKeyConstraint(
            ['member_id'], ['members.id'],
            name=op.f('fk_member_links_member_id_members'), ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_member_links')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_member_links_token_hash')),
    )
    op.create_index(
        'ix_member_links_member_purpose', 'member_links', ['member_id', 'purpose'], unique=False
    )


def downgrade() -> None:
    op.drop_index('ix_member_links_member_purpose', table_name='member_links')
    op.drop_table('member_links')
