"""rate card approval (maker/checker): proposals wait for a second person; approval stamps on the card

Revision ID: 0011_rate_card_approval
Revises: 0010_department_hierarchy

``rate_card_proposals`` holds every proposed rate card: pending until someone other than its proposer approves
or rejects it (services/billing/rate_card_approvals.py). Only an approval stores the card in ``rate_cards`` (which
then carries who proposed it and when, and who approved it and when) and re-prices; a pending card changes no
figure. The database keeps the rule too: a decision by the proposer is refused (CHECK), and a decided proposal
never changes again (trigger). Rate card decisions are ledger entries that belong to no department, so
``ledger_entries.department_id`` may be NULL.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011_rate_card_approval"
down_revision: Union[str, None] = "0010_department_hierarchy"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'rate_card_proposals',
        sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column('version', sa.Text(), nullable=False),
        sa.Column('effective_from', postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column('currency', sa.Text(), nullable=False),
        sa.Column('prices', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('status', sa.Text(), server_default='pending', nullable=False),
        sa.Column('proposed_by', sa.Text(), nullable=False),
        sa.Column('proposed_at', postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column('decided_by', sa.Text(), nullable=True),
        sa.Column('decided_role', sa.Text(), nullable=True),
        sa.Column('decided_at', postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('rate_card_id', sa.Integer(), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'approved', 'rejected')",
                           name='rate_card_proposals_status'),
        sa.CheckConstraint("(status = 'pending') = (decided_by IS NULL AND decided_at IS NULL)",
                           name='rate_card_proposals_decided'),
        sa.CheckConstraint("decided_by IS DISTINCT FROM proposed_by", name='rate_card_proposals_checker'),
        sa.CheckConstraint("status <> 'rejected' OR reason IS NOT NULL", name='rate_card_proposals_reason'),
        sa.CheckConstraint("(status = 'approved') = (rate_card_id IS NOT NULL)",
                           name='rate_card_proposals_card'),
        sa.ForeignKeyConstraint(['rate_card_id'], ['rate_cards.id'],
                                name='rate_card_proposals_rate_card_id_fkey'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_rate_card_proposals')),
    )
    op.create_index('uq_rate_card_proposals_version', 'rate_card_proposals', ['version'], unique=True,
                    postgresql_where=sa.text("status <> 'rejected'"))
    op.create_index('ix_rate_card_proposals_pending', 'rate_card_proposals', ['proposed_at'], unique=False,
                    postgresql_where=sa.text("status = 'pending'"))
    op.execute("""
        CREATE FUNCTION govmeter_decided_once() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' OR OLD.status <> 'pending' THEN
                RAISE EXCEPTION 'rate card proposal % is decided: % refused', OLD.id, TG_OP
                    USING ERRCODE = 'integrity_constraint_violation';
            END IF;
            RETURN NEW;
        END $$
    """)
    op.execute("CREATE TRIGGER rate_card_proposals_decided_once BEFORE UPDATE OR DELETE ON rate_card_proposals "
               "FOR EACH ROW EXECUTE FUNCTION govmeter_decided_once()")
    op.add_column('rate_cards', sa.Column('proposed_at', postgresql.TIMESTAMP(timezone=True), nullable=True))
    op.add_column('rate_cards', sa.Column('approved_by', sa.Text(), nullable=True))
    op.add_column('rate_cards', sa.Column('approved_at', postgresql.TIMESTAMP(timezone=True), nullable=True))
    op.alter_column('ledger_entries', 'department_id', existing_type=sa.Text(), nullable=True)


def downgrade() -> None:
    op.alter_column('ledger_entries', 'department_id', existing_type=sa.Text(), nullable=False)
    op.drop_column('rate_cards', 'approved_at')
    op.drop_column('rate_cards', 'approved_by')
    op.drop_column('rate_cards', 'proposed_at')
    op.execute("DROP TRIGGER rate_card_proposals_decided_once ON rate_card_proposals")
    op.execute("DROP FUNCTION govmeter_decided_once()")
    op.drop_index('ix_rate_card_proposals_pending', table_name='rate_card_proposals',
                  postgresql_where=sa.text("status = 'pending'"))
    op.drop_index('uq_rate_card_proposals_version', table_name='rate_card_proposals',
                  postgresql_where=sa.text("status <> 'rejected'"))
    op.drop_table('rate_card_proposals')
