"""source watermarks: how far each event source's data has arrived; watermark overrides on closed periods

Revision ID: 0007_source_watermarks
Revises: 0006_webhooks

``source_watermarks`` holds one row per CloudEvents source, kept by the metering worker in the transaction that
stores the source's events: the newest usage interval end stored (``complete_up_to``), when an event of the source
was last stored, and how many. A period closes only once every active source has passed its end
(services/billing/watermarks.py); an admin who closes it anyway records why on the period
(``billing_periods.watermark_override``: who, when, the reason, the sources that were behind).
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0007_source_watermarks'
down_revision: Union[str, None] = '0006_webhooks'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'source_watermarks',
        sa.Column('source', sa.Text(), nullable=False),
        sa.Column('complete_up_to', postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column('last_seen_at', postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column('events', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('source', name=op.f('pk_source_watermarks')),
    )
    # Sources of the events stored before this table existed (a no-op on a new database).
    op.execute(
        """
        INSERT INTO source_watermarks (source, complete_up_to, last_seen_at, events)
        SELECT source, max(end_at) FILTER (WHERE type = 'gov.cloud.usage.v1'), max(received_at), count(*)
        FROM events GROUP BY source
        """
    )
    op.add_column('billing_periods',
                  sa.Column('watermark_override', postgresql.JSONB(astext_type=sa.Text()), nullable=True))


def downgrade() -> None:
    op.drop_column('billing_periods', 'watermark_override')
    op.drop_table('source_watermarks')
