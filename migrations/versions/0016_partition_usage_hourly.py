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

MONTH_FUNCTION = r"""
CREATE FUNCTION govmeter_usage_hourly_month(month date) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    first date := date_trunc('month', month)::date;
    part text := 'usage_hourly_' || to_char(first, 'YYYY_MM');
    lower timestamptz := first::timestamp AT TIME ZONE 'Asia/Shanghai';
    upper timestamptz := (first + interval '1 month')::timestamp AT TIME ZONE 'Asia/Shanghai';
BEGIN
    -- one creator at a time (the worker at start, the billing API's loop, the CLI): the second finds it made
    PERFORM pg_advisory_xact_lock(hashtext('govmeter_usage_hourly_month'));
    IF to_regclass(format('public.%I', part)) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE public.%I (LIKE public.usage_hourly INCLUDING DEFAULTS)', part);
    -- rows of this month that waited in the default partition move in with it, in this transaction
    EXECUTE format('WITH moved AS (DELETE FROM public.usage_hourly_default WHERE hour >= $1 AND hour < $2 '
                   'RETURNING *) INSERT INTO public.%I SELECT * FROM moved', part) USING lower, upper;
    EXECUTE format('ALTER TABLE public.usage_hourly ATTACH PARTITION public.%I FOR VALUES FROM (%L) TO (%L)',
                   part, lower, upper);
    RETURN true;
END
$$
"""


def _capture(table: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The table's own triggers (definitions) and its grants (grantee, privilege), to give the new table."""
    bind = op.get_bind()
    triggers = [r[0] for r in bind.exec_driver_sql(
        f"SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = '{table}'::regclass AND NOT tgisinternal "
        "ORDER BY tgname")]
    grants = [(r[0], r[1]) for r in bind.exec_driver_sql(
        f"SELECT a.grantee::regrole::text, a.privilege_type FROM pg_class c, aclexplode(c.relacl) a "
        f"WHERE c.oid = '{table}'::regclass AND a.grantee <> c.relowner AND a.grantee <> 0")]
    return triggers, grants


def _restore(triggers: list[str], grants: list[tuple[str, str]]) -> None:
    for definition in triggers:
        op.execute(definition)
    for grantee, privilege in grants:
        op.execute(f'GRANT {privilege} ON usage_hourly TO "{grantee}"')


def upgrade() -> None:
    triggers, grants = _capture("usage_hourly")
    op.execute(f"ALTER TABLE usage_hourly RENAME TO {OLD}")
    op.execute(f"CREATE TABLE usage_hourly (LIKE {OLD} INCLUDING DEFAULTS) PARTITION BY RANGE (hour)")
    op.execute("CREATE TABLE usage_hourly_default PARTITION OF usage_hourly DEFAULT")
    op.execute(MONTH_FUNCTION)
    op.execute("REVOKE ALL ON FUNCTION govmeter_usage_hourly_month(date) FROM PUBLIC")
    # a partition for every month that holds rows, and for the months around now (the worker keeps that up)
    op.execute(f"""
        SELECT govmeter_usage_hourly_month(m) FROM (
            SELECT DISTINCT date_trunc('month', hour AT TIME ZONE 'Asia/Shanghai')::date AS m FROM {OLD}
            UNION
            SELECT (date_trunc('month', now() AT TIME ZONE 'Asia/Shanghai') + k * interval '1 month')::date
            FROM generate_series(-1, 2) AS k) AS months ORDER BY m""")
    op.execute(f"INSERT INTO usage_hourly SELECT * FROM {OLD}")
    op.execute(f"DROP TABLE {OLD}")
    for index in INDEXES:  # built once the rows are in: on the parent, so on every partition
        op.execute(index)
    _restore(triggers, grants)
    op.execute("ANALYZE usage_hourly")


def downgrade() -> None:
    triggers, grants = _capture("usage_hourly")
    op.execute("ALTER TABLE usage_hourly RENAME TO usage_hourly_partitioned")
    op.execute("CREATE TABLE usage_hourly (LIKE usage_hourly_partitioned INCLUDING DEFAULTS)")
    op.execute("INSERT INTO usage_hourly SELECT * FROM usage_hourly_partitioned")
    op.execute("DROP TABLE usage_hourly_partitioned")  # with its partitions
    op.execute("DROP FUNCTION govmeter_usage_hourly_month(date)")
    for index in INDEXES:
        op.execute(index)
    _restore(triggers, grants)
