"""billing periods bills adjustments budgets alerts ledger

Revision ID: 0002
Revises: 0001
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: Union[str, None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# Closed periods, final bills, manual adjustments, usage baselines and the ledger are append-only: the database
# refuses UPDATE, DELETE and TRUNCATE on them (the ledger's hash chain also detects anyone who bypasses this).
APPEND_ONLY = ('billing_periods', 'bills', 'adjustments', 'usage_baselines', 'ledger_entries')


def upgrade() -> None:
    op.create_table('adjustments',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('department_id', sa.Text(), nullable=False),
    sa.Column('period', sa.Text(), nullable=False),
    sa.Column('amount', sa.Numeric(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('reference', sa.Text(), nullable=True),
    sa.Column('created_by', sa.Text(), nullable=False),
    sa.Column('created_at', postgresql.TIMESTAMP(timezone=True), nullable=False),
    sa.Column('ledger_seq', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_adjustments'))
    )
    op.create_index('ix_adjustments_period_department', 'adjustments', ['period', 'department_id'], unique=False)
    op.create_table('billing_periods',
    sa.Column('period', sa.Text(), nullable=False),
    sa.Column('close_seq', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('closed_at', postgresql.TIMESTAMP(timezone=True), nullable=False),
    sa.Column('open_at_close', postgresql.ARRAY(postgresql.TIMESTAMP(timezone=True)), nullable=False),
    sa.Column('closed_by', sa.Text(), nullable=False),
    sa.Column('bills', sa.Integer(), nullable=False),
    sa.Column('total', sa.Numeric(), nullable=False),
    sa.Column('ledger_seq', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('period', name=op.f('pk_billing_periods')),
    sa.UniqueConstraint('close_seq', name=op.f('uq_billing_periods_close_seq'))
    )
    op.create_table('bills',
    sa.Column('bill_id', sa.Text(), nullable=False),
    sa.Column('period', sa.Text(), nullable=False),
    sa.Column('department_id', sa.Text(), nullable=False),
    sa.Column('total', sa.Numeric(), nullable=False),
    sa.Column('content_hash', sa.Text(), nullable=False),
    sa.Column('document', sa.LargeBinary(), nullable=False),
    sa.Column('csv', sa.LargeBinary(), nullable=False),
    sa.Column('closed_at', postgresql.TIMESTAMP(timezone=True), nullable=False),
    sa.Column('ledger_seq', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('bill_id', name=op.f('pk_bills')),
    sa.UniqueConstraint('period', 'department_id', name='uq_bills_period_department_id')
    )
    op.create_index(op.f('ix_bills_department_id'), 'bills', ['department_id'], unique=False)
    op.create_table('budget_alerts',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('department_id', sa.Text(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('period', sa.Text(), nullable=True),
    sa.Column('budget', sa.Numeric(), nullable=False),
    sa.Column('spend', sa.Numeric(), nullable=False),
    sa.Column('projected', sa.Numeric(), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('created_at', postgresql.TIMESTAMP(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('published_at', postgresql.TIMESTAMP(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_budget_alerts'))
    )
    op.create_index('ix_budget_alerts_unpublished', 'budget_alerts', ['id'], unique=False, postgresql_where='published_at IS NULL')
    op.create_index('uq_budget_alerts_key', 'budget_alerts', ['department_id', 'year', 'kind', 'period'], unique=True, postgresql_nulls_not_distinct=True)
    op.create_table('budgets',
    sa.Column('department_id', sa.Text(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('amount', sa.Numeric(), nullable=False),
    sa.Column('updated_by', sa.Text(), nullable=False),
    sa.Column('updated_at', postgresql.TIMESTAMP(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('department_id', 'year', name=op.f('pk_budgets'))
    )
    op.create_table('ledger_entries',
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('department_id', sa.Text(), nullable=False),
    sa.Column('period', sa.Text(), nullable=False),
    sa.Column('bill_id', sa.Text(), nullable=True),
    sa.Column('original_period', sa.Text(), nullable=True),
    sa.Column('meter', sa.Text(), nullable=True),
    sa.Column('quantity', sa.Numeric(), nullable=True),
    sa.Column('amount', sa.Numeric(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('reference', sa.Text(), nullable=True),
    sa.Column('content_hash', sa.Text(), nullable=True),
    sa.Column('created_by', sa.Text(), nullable=False),
    sa.Column('created_at', postgresql.TIMESTAMP(timezone=True), nullable=False),
    sa.Column('prev_hash', sa.Text(), nullable=False),
    sa.Column('hash', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_ledger_entries'))
    )
    op.create_index('ix_ledger_entries_bill', 'ledger_entries', ['bill_id'], unique=False)
    op.create_index('ix_ledger_entries_department_original', 'ledger_entries', ['department_id', 'original_period'], unique=False)
    op.create_table('usage_baselines',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('department_id', sa.Text(), nullable=False),
    sa.Column('period', sa.Text(), nullable=False),
    sa.Column('digest', sa.Text(), nullable=False),
    sa.Column('close_seq', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_baselines'))
    )
    op.create_index('ix_usage_baselines_department_period', 'usage_baselines', ['department_id', 'period'], unique=False)

    op.execute("""
        CREATE FUNCTION govmeter_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
                USING ERRCODE = 'integrity_constraint_violation';
        END $$
    """)
    for table in APPEND_ONLY:
        op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION govmeter_append_only()")
        op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION govmeter_append_only()")


def downgrade() -> None:
    op.drop_index('ix_usage_baselines_department_period', table_name='usage_baselines')
    op.drop_table('usage_baselines')
    op.drop_index('ix_ledger_entries_department_original', table_name='ledger_entries')
    op.drop_index('ix_ledger_entries_bill', table_name='ledger_entries')
    op.drop_table('ledger_entries')
    op.drop_table('budgets')
    op.drop_index('uq_budget_alerts_key', table_name='budget_alerts', postgresql_nulls_not_distinct=True)
    op.drop_index('ix_budget_alerts_unpublished', table_name='budget_alerts', postgresql_where='published_at IS NULL')
    op.drop_table('budget_alerts')
    op.drop_index(op.f('ix_bills_department_id'), table_name='bills')
    op.drop_table('bills')
    op.drop_table('billing_periods')
    op.drop_index('ix_adjustments_period_department', table_name='adjustments')
    op.drop_table('adjustments')

    op.execute("DROP FUNCTION govmeter_append_only()")
