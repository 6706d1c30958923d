"""rate cards append-only: a trigger refuses UPDATE, DELETE and TRUNCATE, as on closes, bills and the ledger

Revision ID: 0019_rate_cards_append_only
Revises: 0018_event_key_digest

A new price is a new card (effective-dated): rating, replay and every closed bill's re-pricing check read the
cards as they were inserted, and the bill list remembers what it read of them by their count
(services/bill_reads/memo.py). The app role has only SELECT and INSERT on ``rate_cards`` (services/common/privileges);
this trigger, migration 0002's ``govmeter_append_only``, holds for the owner too, as on the other append-only
tables.
"""
from typing import Sequence, Union

from alembic import op

revision: str = "0019_rate_cards_append_only"
down_revision: Union[str, None] = "0018_event_key_digest"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.execute("CREATE TRIGGER rate_cards_append_only BEFORE UPDATE OR DELETE ON rate_cards "
               "FOR EACH ROW EXECUTE FUNCTION govmeter_append_only()")
    op.execute("CREATE TRIGGER rate_cards_no_truncate BEFORE TRUNCATE ON rate_cards "
               "FOR EACH STATEMENT EXECUTE FUNCTION govmeter_append_only()")


def downgrade() -> None:
    op.execute("DROP TRIGGER rate_cards_no_truncate ON rate_cards")
    op.execute("DROP TRIGGER rate_cards_append_only ON rate_cards")
