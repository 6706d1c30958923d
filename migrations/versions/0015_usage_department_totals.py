"""usage_department_totals_daily: rated usage per local day and department, all meters together

Revision ID: 0015_usage_department_totals
Revises: 0014_change_scopes

A finance question by department over a window that cuts months ("spend by department from 17 March to 5 June")
reads its whole months from usage_monthly and its edge days from here: one row per department a day instead of one
per department and meter (services/query/views.py). Filled from usage_department_daily; the worker keeps it from
then on in the same statement as the other rollups (services/projection/rollups.py). Its notifications are the
finer rollups' (migration 0014): counted, with usage_monthly's scoped one saying what changed.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0015_usage_department_totals"
down_revision: Union[str, None] = "0014_change_scopes"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TABLE = "usage_department_totals_daily"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("department_id", sa.Text(), nullable=True),
        sa.Column("quantity", sa.Numeric(), nullable=False),
        sa.Column("amount", sa.Numeric(), nullable=False),
        sa.Column("unpriced_quantity", sa.Numeric(), nullable=False),
    )
    op.create_index("uq_usage_department_totals_daily_key", TABLE, ["day", "department_id"], unique=True,
                    postgresql_nulls_not_distinct=True)
    op.execute(f"""
        INSERT INTO {TABLE} (day, department_id, quantity, amount, unpriced_quantity)
        SELECT day, department_id, sum(quantity), sum(amount), sum(unpriced_quantity)
        FROM usage_department_daily GROUP BY 1, 2
    """)
    op.execute(f"CREATE TRIGGER {TABLE}_changed AFTER INSERT OR UPDATE OR DELETE ON {TABLE} "
               "FOR EACH STATEMENT EXECUTE FUNCTION govmeter_notify_change()")
    op.execute(f"CREATE TRIGGER {TABLE}_truncated AFTER TRUNCATE ON {TABLE} "
               "FOR EACH STATEMENT EXECUTE FUNCTION govmeter_notify_truncated()")


def downgrade() -> None:
    op.drop_table(TABLE)
