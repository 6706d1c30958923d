"""resource applications and their steps (Art. 8-10)

Revision ID: 0009_applications
Revises: 0008_disputes

An application keeps its state and its two working-day clocks (approval, fulfilment); every step (who, when,
why) is a row of application_steps, which the app role may only insert.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009_applications"
down_revision: Union[str, None] = "0008_disputes"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TS = postgresql.TIMESTAMP(timezone=True)


def upgrade() -> None:
    op.create_table('applications',
    sa.Column('id', sa.BigInteger(), sa.Identity(), nullable=False),
    sa.Column('department_id', sa.Text(), nullable=False),
    sa.Column('system', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('items', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('spec', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('wanted_by', sa.Date(), nullable=True),
    sa.Column('state', sa.Text(), nullable=False),
    sa.Column('estimate', sa.Numeric(), nullable=False),
    sa.Column('estimate_rate_card', sa.Text(), nullable=True),
    sa.Column('submitted_by', sa.Text(), nullable=False),
    sa.Column('submitted_at', TS, nullable=False),
    sa.Column('approval_due_at', TS, nullable=False),
    sa.Column('approval_calendar', sa.Text(), nullable=False),
    sa.Column('decided_at', TS, nullable=True),
    sa.Column('fulfilment_due_at', TS, nullable=True),
    sa.Column('fulfilment_calendar', sa.Text(), nullable=True),
    sa.Column('fulfilled_at', TS, nullable=True),
    sa.Column('resource_id', sa.Text(), nullable=True),
    sa.CheckConstraint("state IN ('submitted', 'accepted', 'approved', 'rejected', 'fulfilled', 'withdrawn')",
                       name='state'),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'],
                            name=op.f('fk_applications_department_id_departments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_applications'))
    )
    op.create_index('ix_applications_department_id', 'applications', ['department_id', 'id'], unique=False)
    op.create_index('ix_applications_open', 'applications', ['state'], unique=False,
                    postgresql_where="state IN ('submitted', 'accepted', 'approved')")
    op.create_table('application_steps',
    sa.Column('application_id', sa.BigInteger(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('action', sa.Text(), nullable=False),
    sa.Column('state', sa.Text(), nullable=False),
    sa.Column('actor', sa.Text(), nullable=False),
    sa.Column('role', sa.Text(), nullable=False),
    sa.Column('at', TS, server_default=sa.text('now()'), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['application_id'], ['applications.id'],
                            name=op.f('fk_application_steps_application_id_applications')),
    sa.PrimaryKeyConstraint('application_id', 'seq', name=op.f('pk_application_steps'))
    )


def downgrade() -> None:
    op.drop_table('application_steps')
    op.drop_index('ix_applications_open', table_name='applications',
                  postgresql_where="state IN ('submitted', 'accepted', 'approved')")
    op.drop_index('ix_applications_department_id', table_name='applications')
    op.drop_table('applications')
