"""change notifications for the response cache

Revision ID: 0004
Revises: 0003

Statement-level triggers NOTIFY ``govmeter_changes`` (payload: the table) on any change to a table that a cached
API answer reads (services/common/response_cache.py). Statement-level and deduplicated by PostgreSQL within a
transaction, so a worker batch costs one notification per table, not one per row.
"""
from typing import Sequence, Union

from alembic import op

revision: str = '0004'
down_revision: Union[str, None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# What /v1/usage and /v1/bills read: the rollups, ownership, prices, and the billing history.
TABLES = (
    "usage_hourly", "usage_daily", "usage_department_daily", "usage_monthly", "resource_intervals", "rate_cards",
    "departments", "billing_periods", "bills", "adjustments", "ledger_entries", "usage_baselines",
)


def upgrade() -> None:
    op.execute("""
        CREATE FUNCTION govmeter_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('govmeter_changes', TG_TABLE_NAME);
            RETURN NULL;
        END
        $$
    """)
    for table in TABLES:
        op.execute(f"CREATE TRIGGER {table}_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION govmeter_notify_change()")


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER {table}_changed ON {table}")
    op.execute("DROP FUNCTION govmeter_notify_change()")
