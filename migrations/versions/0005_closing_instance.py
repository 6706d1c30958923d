"""record which billing API instance closed a period

Revision ID: 0005_closing_instance
Revises: 0004

``closed_by`` says who asked (an admin's subject, or ``auto-close``); with several billing API instances running
the background close, ``closed_by_instance`` says which process did it (host:pid, or the name it was given), so
that "closed once across instances" can be observed, not only inferred from the end state. NULL for periods
closed before this column existed and for closes by hand.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0005_closing_instance'
down_revision: Union[str, None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column('billing_periods', sa.Column('closed_by_instance', sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column('billing_periods', 'closed_by_instance')
