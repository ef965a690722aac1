"""texts not understood, server-side admin sessions

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 16:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

import store.models
from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'admin_sessions',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('account_id', store.models.Id, nullable=False),
        sa.Column('created_at', store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('last_seen_at', store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('address', sa.String(length=64), nullable=True),
        sa.Column('user_agent', sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ['account_id'], ['admin_accounts.id'],
            name=op.f('fk_admin_sessions_account_id_admin_accounts'), ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_admin_sessions')),
    )
    with op.batch_alter_table('admin_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_admin_sessions_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_admin_sessions_expires_at'), ['expires_at'], unique=False)

    # A plain ADD COLUMN (not batch mode): batch mode would copy the table on SQLite.
    op.add_column(
        'inbound_messages',
        sa.Column('not_understood', sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_index(
        'ix_inbound_messages_program_not_understood',
        'inbound_messages',
        ['program_id', 'not_understood', 'received_at'],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index('ix_inbound_messages_program_not_understood', table_name='inbound_messages')
    op.drop_column('inbound_messages', 'not_understood')
    with op.batch_alter_table('admin_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_admin_sessions_expires_at'))
        batch_op.drop_index(batch_op.f('ix_admin_sessions_account_id'))
    op.drop_table('admin_sessions')
