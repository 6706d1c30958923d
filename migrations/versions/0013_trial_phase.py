"""trial phase (试运行): a fulfilled application's trial window, billed at a stored rate

Revision ID: 0013_trial_phase
Revises: 0012_close_durations

``resource_trials`` holds the trial a fulfilment asked for: the resource, the department, the window and the
rate (a fraction of the normal price, from ``GOVMETER_TRIAL_RATE_FACTOR`` when the trial was recorded). Bills and
replay read it as a stored fact. Going live early moves ``ends_at`` to that instant, once; the trigger refuses
any other change.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013_trial_phase"
down_revision: Union[str, None] = "0012_close_durations"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TS = postgresql.TIMESTAMP(timezone=True)


def upgrade() -> None:
    op.create_table(
        'resource_trials',
        sa.Column('application_id', sa.BigInteger(), nullable=False),
        sa.Column('department_id', sa.Text(), nullable=False),
        sa.Column('resource_id', sa.Text(), nullable=False),
        sa.Column('starts_at', TS, nullable=False),
        sa.Column('planned_ends_at', TS, nullable=False),
        sa.Column('ends_at', TS, nullable=False),
        sa.Column('rate', sa.Numeric(7, 6), nullable=False),
        sa.Column('recorded_at', TS, nullable=False),
        sa.Column('went_live_by', sa.Text(), nullable=True),
        sa.Column('went_live_at', TS, nullable=True),
        sa.CheckConstraint("rate >= 0 AND rate <= 1", name='rate'),
        sa.CheckConstraint("ends_at > starts_at OR went_live_at IS NOT NULL", name='window'),
        sa.CheckConstraint("ends_at <= planned_ends_at", name='ends_by_plan'),
        sa.ForeignKeyConstraint(['application_id'], ['applications.id'],
                                name=op.f('fk_resource_trials_application_id_applications')),
        sa.ForeignKeyConstraint(['department_id'], ['departments.id'],
                                name=op.f('fk_resource_trials_department_id_departments')),
        sa.PrimaryKeyConstraint('application_id', name=op.f('pk_resource_trials')),
    )
    op.create_index('ix_resource_trials_resource_id', 'resource_trials', ['resource_id'], unique=False)
    op.execute(
        """
        CREATE FUNCTION resource_trials_go_live_once() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF OLD.went_live_at IS NOT NULL OR NEW.went_live_at IS NULL THEN
                RAISE EXCEPTION 'a trial changes only by going live, once';
            END IF;
            RETURN NEW;
        END $$
        """
    )
    op.execute("CREATE TRIGGER resource_trials_go_live_once BEFORE UPDATE ON resource_trials"
               " FOR EACH ROW EXECUTE FUNCTION resource_trials_go_live_once()")


def downgrade() -> None:
    op.execute("DROP TRIGGER resource_trials_go_live_once ON resource_trials")
    op.execute("DROP FUNCTION resource_trials_go_live_once()")
    op.drop_index('ix_resource_trials_resource_id', table_name='resource_trials')
    op.drop_table('resource_trials')
