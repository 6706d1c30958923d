"""disputes of final bill lines (Art. 13)

Revision ID: 0008_disputes
Revises: 0007_source_watermarks

A department disputes a line of its own final bill; finance or admin answers once: rejected with a reply, or
upheld with an amount that becomes an ordinary adjustment (a credit) on the department's next open bill
(services/billing/disputes.py). The row is opened once and answered once: a trigger refuses any other UPDATE
(an answered dispute, or a change to what was disputed) and every DELETE and TRUNCATE, for the owner too.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0008_disputes'
down_revision: Union[str, None] = '0007_source_watermarks'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

OPENING = ('id', 'department_id', 'bill_id', 'period', 'meter', 'line_quantity', 'line_amount', 'reason',
           'opened_by', 'opened_at')


def upgrade() -> None:
    op.create_table('disputes',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('department_id', sa.Text(), nullable=False),
    sa.Column('bill_id', sa.Text(), nullable=False),
    sa.Column('period', sa.Text(), nullable=False),
    sa.Column('meter', sa.Text(), nullable=False),
    sa.Column('line_quantity', sa.Text(), nullable=False),
    sa.Column('line_amount', sa.Numeric(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('opened_by', sa.Text(), nullable=False),
    sa.Column('opened_at', postgresql.TIMESTAMP(timezone=True), nullable=False),
    sa.Column('answered_by', sa.Text(), nullable=True),
    sa.Column('answered_at', postgresql.TIMESTAMP(timezone=True), nullable=True),
    sa.Column('reply', sa.Text(), nullable=True),
    sa.Column('credit', sa.Numeric(), nullable=True),
    sa.Column('credit_period', sa.Text(), nullable=True),
    sa.Column('adjustment_id', sa.BigInteger(), nullable=True),
    sa.CheckConstraint("status IN ('open', 'rejected', 'upheld')", name='disputes_status'),
    sa.CheckConstraint(
        "(status = 'open' AND answered_by IS NULL AND answered_at IS NULL AND credit IS NULL"
        " AND adjustment_id IS NULL)"
        " OR (status = 'rejected' AND answered_by IS NOT NULL AND answered_at IS NOT NULL AND reply IS NOT NULL"
        " AND credit IS NULL AND adjustment_id IS NULL)"
        " OR (status = 'upheld' AND answered_by IS NOT NULL AND answered_at IS NOT NULL AND credit > 0"
        " AND credit <= line_amount AND adjustment_id IS NOT NULL AND credit_period IS NOT NULL)",
        name='disputes_answer'),
    sa.ForeignKeyConstraint(['adjustment_id'], ['adjustments.id']),
    sa.ForeignKeyConstraint(['bill_id'], ['bills.bill_id']),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_disputes'))
    )
    op.create_index('ix_disputes_department', 'disputes', ['department_id', 'id'], unique=False)
    op.create_index('uq_disputes_open_line', 'disputes', ['bill_id', 'meter'], unique=True,
                    postgresql_where="status = 'open'")
    unchanged = " AND ".join(f"NEW.{c} IS NOT DISTINCT FROM OLD.{c}" for c in OPENING)
    op.execute(f"""
        CREATE FUNCTION govmeter_dispute_answered_once() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'UPDATE' AND OLD.status = 'open' AND NEW.status <> 'open' AND {unchanged} THEN
                RETURN NEW;
            END IF;
            RAISE EXCEPTION 'disputes: % refused (a dispute is opened once and answered once)', TG_OP
                USING ERRCODE = 'integrity_constraint_violation';
        END $$
    """)
    op.execute("CREATE TRIGGER disputes_answered_once BEFORE UPDATE OR DELETE ON disputes "
               "FOR EACH ROW EXECUTE FUNCTION govmeter_dispute_answered_once()")
    op.execute("CREATE TRIGGER disputes_no_truncate BEFORE TRUNCATE ON disputes "
               "FOR EACH STATEMENT EXECUTE FUNCTION govmeter_append_only()")


def downgrade() -> None:
    op.drop_index('uq_disputes_open_line', table_name='disputes', postgresql_where="status = 'open'")
    op.drop_index('ix_disputes_department', table_name='disputes')
    op.drop_table('disputes')
    op.execute("DROP FUNCTION govmeter_dispute_answered_once()")
