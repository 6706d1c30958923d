"""webhook subscriptions and their deliveries

Revision ID: 0006_webhooks
Revises: 0005_closing_instance

Budget alerts and spend warnings stay where they are (their tables are the outbox); a delivery row per alert or
warning and subscription carries the body sent on every attempt and the state of its retries (attempts,
next_attempt_at), so retries survive a restart of the billing API.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0006_webhooks'
down_revision: Union[str, None] = '0005_closing_instance'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('webhook_subscriptions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('owner_role', sa.Text(), nullable=False),
    sa.Column('owner_subject', sa.Text(), nullable=False),
    sa.Column('owner_department', sa.Text(), nullable=True),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('events', postgresql.ARRAY(sa.Text()), nullable=False),
    sa.Column('alert_kinds', postgresql.ARRAY(sa.Text()), nullable=True),
    sa.Column('department_id', sa.Text(), nullable=True),
    sa.Column('secret', sa.Text(), nullable=False),
    sa.Column('created_at', postgresql.TIMESTAMP(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("owner_role <> 'department' OR coalesce(department_id = owner_department, false)", name='department_scope'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_subscriptions'))
    )
    op.create_table('webhook_deliveries',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('subscription_id', sa.Uuid(), nullable=False),
    sa.Column('event_type', sa.Text(), nullable=False),
    sa.Column('item_id', sa.BigInteger(), nullable=False),
    sa.Column('department_id', sa.Text(), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_attempt_at', postgresql.TIMESTAMP(timezone=True), nullable=False),
    sa.Column('delivered_at', postgresql.TIMESTAMP(timezone=True), nullable=True),
    sa.Column('failed_at', postgresql.TIMESTAMP(timezone=True), nullable=True),
    sa.Column('last_status', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', postgresql.TIMESTAMP(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['subscription_id'], ['webhook_subscriptions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries')),
    sa.UniqueConstraint('subscription_id', 'event_type', 'item_id',
                        name='uq_webhook_deliveries_subscription_id')
    )
    op.create_index('ix_webhook_deliveries_due', 'webhook_deliveries', ['next_attempt_at'], unique=False,
                    postgresql_where='delivered_at IS NULL AND failed_at IS NULL')


def downgrade() -> None:
    op.drop_index('ix_webhook_deliveries_due', table_name='webhook_deliveries',
                  postgresql_where='delivered_at IS NULL AND failed_at IS NULL')
    op.drop_table('webhook_deliveries')
    op.drop_table('webhook_subscriptions')
