"""usage_hourly partitioned by billing month (Asia/Shanghai), with a default partition

Revision ID: 0016_partition_usage_hourly
Revises: 0015_usage_department_totals

``usage_hourly`` becomes a table partitioned by RANGE (hour): one partition a local calendar month
(``usage_hourly_YYYY_MM``, bounds at local midnight of the 1st), and ``usage_hourly_default`` for hours no month
partition covers yet, so that no insert can fail for want of a partition. Inserts, index upkeep and vacuum then work
on the current month's partition, and a closed month can be detached (docs/partitioning.md).

``govmeter_usage_hourly_month(month)`` creates a month's partition (SECURITY DEFINER: the services' role does not
own the table, and creating a partition needs its owner), moving that month's rows out of the default partition in
the same transaction, as PostgreSQL refuses to attach a partition whose rows sit in the default. It creates the
table plainly and ATTACHes it: ATTACH takes SHARE UPDATE EXCLUSIVE on the parent, which does not block the
worker's inserts (CREATE TABLE … PARTITION OF would take ACCESS EXCLUSIVE).

The upgrade copies the rows set-based and keeps the old table's indexes (rebuilt on the parent, so on every
partition), its statement-level triggers (migration 0004's change notifications: statement triggers on a
partitioned table fire for statements on the parent, which is all the services write to) and its grants.
"""
from typing import Sequence, Union

from alembic import op

from migrations.monthly import capture, make_months, month_function, restore

revision: str = "0016_partition_usage_hourly"
down_revision: Union[str, None] = "0015_usage_department_totals"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

INDEXES = (
    "CREATE UNIQUE INDEX uq_usage_hourly_key ON usage_hourly "
    "(resource_id, hour, meter, department_id, system, rate_card_id) NULLS NOT DISTINCT",
    "CREATE INDEX ix_usage_hourly_department_hour ON usage_hourly (department_id, hour)",
    "CREATE INDEX ix_usage_hourly_hour ON usage_hourly (hour)",
)
OLD = "usage_hourly_unpartitioned"

MONTH_FUNCTION = month_function("govmeter_usage_hourly_month", "usage_hourly", "usage_hourly", "hour")


def upgrade() -> None:
    triggers, grants = capture("usage_hourly")
    op.execute(f"ALTER TABLE usage_hourly RENAME TO {OLD}")
    op.execute(f"CREATE TABLE usage_hourly (LIKE {OLD} INCLUDING DEFAULTS) PARTITION BY RANGE (hour)")
    op.execute("CREATE TABLE usage_hourly_default PARTITION OF usage_hourly DEFAULT")
    op.execute(MONTH_FUNCTION)
    op.execute("REVOKE ALL ON FUNCTION govmeter_usage_hourly_month(date) FROM PUBLIC")
    make_months("govmeter_usage_hourly_month", OLD, "hour")
    op.execute(f"INSERT INTO usage_hourly SELECT * FROM {OLD}")
    op.execute(f"DROP TABLE {OLD}")
    for index in INDEXES:  # built once the rows are in: on the parent, so on every partition
        op.execute(index)
    restore("usage_hourly", triggers, grants)
    op.execute("ANALYZE usage_hourly")


def downgrade() -> None:
    triggers, grants = capture("usage_hourly")
    op.execute("ALTER TABLE usage_hourly RENAME TO usage_hourly_partitioned")
    op.execute("CREATE TABLE usage_hourly (LIKE usage_hourly_partitioned INCLUDING DEFAULTS)")
    op.execute("INSERT INTO usage_hourly SELECT * FROM usage_hourly_partitioned")
    op.execute("DROP TABLE usage_hourly_partitioned")  # with its partitions
    op.execute("DROP FUNCTION govmeter_usage_hourly_month(date)")
    for index in INDEXES:
        op.execute(index)
    restore("usage_hourly", triggers, grants)
