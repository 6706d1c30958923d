"""reports utilisation warnings

Revision ID: 0003
Revises: 0002
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision: str = '0003'
down_revision: Union[str, None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('utilization_hourly',
    sa.Column('hour', postgresql.TIMESTAMP(timezone=True), nullable=False),
    sa.Column('resource_id', sa.Text(), nullable=False),
    sa.Column('samples', sa.Integer(), nullable=False),
    sa.Column('observed_ms', sa.BigInteger(), nullable=False),
    sa.Column('cpu_sum', sa.Numeric(), nullable=False),
    sa.Column('memory_sum', sa.Numeric(), nullable=False),
    sa.Column('cpu_max', sa.Numeric(), nullable=False),
    sa.Column('memory_max', sa.Numeric(), nullable=False),
    sa.Column('cpu_hist', postgresql.ARRAY(sa.Integer()), nullable=False),
    sa.Column('memory_hist', postgresql.ARRAY(sa.Integer()), nullable=False),
    sa.PrimaryKeyConstraint('hour', 'resource_id', name=op.f('pk_utilization_hourly'))
    )
    op.create_index('ix_utilization_hourly_resource_hour', 'utilization_hourly', ['resource_id', 'hour'], unique=False)
    op.create_table('spend_warnings',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('department_id', sa.Text(), nullable=False),
    sa.Column('meter', sa.Text(), nullable=False),
    sa.Column('spend', sa.Numeric(), nullable=False),
    sa.Column('median', sa.Numeric(), nullable=False),
    sa.Column('mad', sa.Numeric(), nullable=False),
    sa.Column('mad_used', sa.Numeric(), nullable=False),
    sa.Column('robust_z', sa.Numeric(), nullable=False),
    sa.Column('threshold', sa.Numeric(), nullable=False),
    sa.Column('baseline', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', postgresql.TIMESTAMP(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('published_at', postgresql.TIMESTAMP(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_spend_warnings')),
    sa.UniqueConstraint('department_id', 'meter', 'day', name='uq_spend_warnings_department_meter_day')
    )
    op.create_index('ix_spend_warnings_day', 'spend_warnings', ['day'], unique=False)
    op.create_index('ix_spend_warnings_unpublished', 'spend_warnings', ['id'], unique=False, postgresql_where='published_at IS NULL')
    # The platform report counts a dead letter in the month of its event's time when that can be read.
    op.execute("""
        CREATE FUNCTION govmeter_event_time(payload text) RETURNS timestamptz
        LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
        BEGIN
            RETURN (payload::jsonb ->> 'time')::timestamptz;
        EXCEPTION WHEN others THEN
            RETURN NULL;
        END $$
    """)


def downgrade() -> None:
    op.execute("DROP FUNCTION govmeter_event_time(text)")
    op.drop_index('ix_spend_warnings_unpublished', table_name='spend_warnings', postgresql_where='published_at IS NULL')
    op.drop_index('ix_spend_warnings_day', table_name='spend_warnings')
    op.drop_table('spend_warnings')
    op.drop_index('ix_utilization_hourly_resource_hour', table_name='utilization_hourly')
    op.drop_table('utilization_hourly')
