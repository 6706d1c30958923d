"""event store, rollups, reference data

Revision ID: 0001
Revises: 
Create Date: 2026-11-26 09:17:30.736448
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: Union[str, None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

def upgrade() -> None:
    op.create_table('dead_letters',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('dedupe_key', sa.Text(), nullable=False),
    sa.Column('source', sa.Text(), nullable=True),
    sa.Column('event_id', sa.Text(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('errors', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('topic', sa.Text(), nullable=True),
    sa.Column('partition', sa.Integer(), nullable=True),
    sa.Column('offset', sa.BigInteger(), nullable=True),
    sa.Column('created_at', postgresql.TIMESTAMP(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dead_letters')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_dead_letters_dedupe_key'))
    )
    op.create_table('departments',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('created_at', postgresql.TIMESTAMP(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_departments'))
    )
    op.create_table('events',
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('event_id', sa.Text(), nullable=False),
    sa.Column('type', sa.Text(), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('event_time', postgresql.TIMESTAMP(timezone=True), nullable=False),
    sa.Column('meter', sa.Text(), nullable=True),
    sa.Column('quantity', sa.Numeric(), nullable=True),
    sa.Column('start_at', postgresql.TIMESTAMP(timezone=True), nullable=True),
    sa.Column('end_at', postgresql.TIMESTAMP(timezone=True), nullable=True),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('received_at', postgresql.TIMESTAMP(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('source', 'event_id', name=op.f('pk_events'))
    )
    op.create_index('ix_events_lifecycle_subject', 'events', ['subject'], unique=False, postgresql_where="type = 'gov.cloud.resource.v1'")
    op.create_index('ix_events_usage_subject_end', 'events', ['subject', 'end_at'], unique=False, postgresql_where="type = 'gov.cloud.usage.v1'")
    op.create_table('projection_state',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ownership_version', sa.BigInteger(), nullable=False),
    sa.Column('rate_card_version', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_projection_state'))
    )
    op.execute("INSERT INTO projection_state (id, ownership_version, rate_card_version) VALUES (1, 0, 0)")
    op.create_table('rate_cards',
    sa.Column('id', sa.Integer(), sa.Identity(always=False), nullable=False),
    sa.Column('version', sa.Text(), nullable=False),
    sa.Column('effective_from', postgresql.TIMESTAMP(timezone=True), nullable=False),
    sa.Column('currency', sa.Text(), nullable=False),
    sa.Column('prices', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_by', sa.Text(), nullable=False),
    sa.Column('created_at', postgresql.TIMESTAMP(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rate_cards')),
    sa.UniqueConstraint('version', name=op.f('uq_rate_cards_version'))
    )
    op.create_table('resource_intervals',
    sa.Column('resource_id', sa.Text(), nullable=False),
    sa.Column('valid_from', postgresql.TIMESTAMP(timezone=True), nullable=False),
    sa.Column('valid_to', postgresql.TIMESTAMP(timezone=True), nullable=True),
    sa.Column('department_id', sa.Text(), nullable=False),
    sa.Column('system', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('spec', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.PrimaryKeyConstraint('resource_id', 'valid_from', name=op.f('pk_resource_intervals'))
    )
    op.create_index(op.f('ix_resource_intervals_department_id'), 'resource_intervals', ['department_id'], unique=False)
    op.create_table('usage_daily',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('department_id', sa.Text(), nullable=True),
    sa.Column('system', sa.Text(), nullable=True),
    sa.Column('meter', sa.Text(), nullable=False),
    sa.Column('quantity', sa.Numeric(), nullable=False),
    sa.Column('amount', sa.Numeric(), nullable=False),
    sa.Column('unpriced_quantity', sa.Numeric(), nullable=False),
    )
    op.create_index('ix_usage_daily_department_day', 'usage_daily', ['department_id', 'day'], unique=False)
    op.create_index('uq_usage_daily_key', 'usage_daily', ['day', 'department_id', 'system', 'meter'], unique=True, postgresql_nulls_not_distinct=True)
    op.create_table('usage_department_daily',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('department_id', sa.Text(), nullable=True),
    sa.Column('meter', sa.Text(), nullable=False),
    sa.Column('quantity', sa.Numeric(), nullable=False),
    sa.Column('amount', sa.Numeric(), nullable=False),
    sa.Column('unpriced_quantity', sa.Numeric(), nullable=False),
    )
    op.create_index('ix_usage_department_daily_day', 'usage_department_daily', ['day'], unique=False)
    op.create_index('uq_usage_department_daily_key', 'usage_department_daily', ['department_id', 'day', 'meter'], unique=True, postgresql_nulls_not_distinct=True)
    op.create_table('usage_monthly',
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('department_id', sa.Text(), nullable=True),
    sa.Column('meter', sa.Text(), nullable=False),
    sa.Column('quantity', sa.Numeric(), nullable=False),
    sa.Column('amount', sa.Numeric(), nullable=False),
    sa.Column('unpriced_quantity', sa.Numeric(), nullable=False),
    )
    op.create_index('uq_usage_monthly_key', 'usage_monthly', ['month', 'department_id', 'meter'], unique=True, postgresql_nulls_not_distinct=True)
    op.create_table('usage_hourly',
    sa.Column('hour', postgresql.TIMESTAMP(timezone=True), nullable=False),
    sa.Column('resource_id', sa.Text(), nullable=False),
    sa.Column('meter', sa.Text(), nullable=False),
    sa.Column('department_id', sa.Text(), nullable=True),
    sa.Column('system', sa.Text(), nullable=True),
    sa.Column('rate_card_id', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.Numeric(), nullable=False),
    sa.Column('amount', sa.Numeric(), nullable=False),
    sa.Column('unpriced_quantity', sa.Numeric(), nullable=False),
    )
    op.create_index('ix_usage_hourly_department_hour', 'usage_hourly', ['department_id', 'hour'], unique=False)
    op.create_index('ix_usage_hourly_hour', 'usage_hourly', ['hour'], unique=False)
    op.create_index('uq_usage_hourly_key', 'usage_hourly', ['resource_id', 'hour', 'meter', 'department_id', 'system', 'rate_card_id'], unique=True, postgresql_nulls_not_distinct=True)



def downgrade() -> None:
    op.drop_table('usage_monthly')
    op.drop_table('usage_department_daily')
    op.drop_index('uq_usage_hourly_key', table_name='usage_hourly', postgresql_nulls_not_distinct=True)
    op.drop_index('ix_usage_hourly_hour', table_name='usage_hourly')
    op.drop_index('ix_usage_hourly_department_hour', table_name='usage_hourly')
    op.drop_table('usage_hourly')
    op.drop_index('uq_usage_daily_key', table_name='usage_daily', postgresql_nulls_not_distinct=True)
    op.drop_index('ix_usage_daily_department_day', table_name='usage_daily')
    op.drop_table('usage_daily')
    op.drop_index(op.f('ix_resource_intervals_department_id'), table_name='resource_intervals')
    op.drop_table('resource_intervals')
    op.drop_table('rate_cards')
    op.drop_table('projection_state')
    op.drop_index('ix_events_usage_subject_end', table_name='events', postgresql_where="type = 'gov.cloud.usage.v1'")
    op.drop_index('ix_events_lifecycle_subject', table_name='events', postgresql_where="type = 'gov.cloud.resource.v1'")
    op.drop_table('events')
    op.drop_table('departments')
    op.drop_table('dead_letters')

