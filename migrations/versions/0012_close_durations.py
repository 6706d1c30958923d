"""record when each period close started and finished

Revision ID: 0012_close_durations
Revises: 0011_rate_card_approval

A close runs in one transaction that first waits for the billing and attribution locks, then computes every
department's final bill. ``close_started_at`` is that transaction's start (lock waits included, as the
``govmeter_period_close_seconds`` histogram counts them) and ``close_finished_at`` the instant its period row was
written, once the bills were computed and their ledger entries appended, so the operations page can show how long
each close took. NULL for periods closed before this migration.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012_close_durations"
down_revision: Union[str, None] = "0011_rate_card_approval"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column('billing_periods', sa.Column('close_started_at', postgresql.TIMESTAMP(timezone=True), nullable=True))
    op.add_column('billing_periods', sa.Column('close_finished_at', postgresql.TIMESTAMP(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('billing_periods', 'close_finished_at')
    op.drop_column('billing_periods', 'close_started_at')
