"""What the migrations that partition a table by local month share (0016 usage_hourly, 0021 events): the owner's
function that makes a month's partition, and carrying a table's triggers and grants over to its rebuilt self."""

from alembic import op


def month_function(function: str, parent: str, prefix: str, column: str) -> str:
    """``function(month date)``: make ``prefix_YYYY_MM``, the local (Asia/Shanghai) month of ``column``, moving
    its rows out of ``prefix_default`` in the same transaction (PostgreSQL refuses to attach a partition whose rows
    sit in the default), then ATTACH it to ``parent`` (SHARE UPDATE EXCLUSIVE: inserts go on; CREATE TABLE …
    PARTITION OF would take ACCESS EXCLUSIVE). SECURITY DEFINER: only the owner may add a partition."""
    return rf"""
CREATE FUNCTION {function}(month date) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    first date := date_trunc('month', month)::date;
    part text := '{prefix}_' || to_char(first, 'YYYY_MM');
    lower timestamptz := first::timestamp AT TIME ZONE 'Asia/Shanghai';
    upper timestamptz := (first + interval '1 month')::timestamp AT TIME ZONE 'Asia/Shanghai';
BEGIN
    -- one creator at a time (the worker at start, the billing API's loop, the CLI): the second finds it made
    PERFORM pg_advisory_xact_lock(hashtext('{function}'));
    IF to_regclass(format('public.%I', part)) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE public.%I (LIKE public.{parent} INCLUDING DEFAULTS)', part);
    -- rows of this month that waited in the default partition move in with it, in this transaction
    EXECUTE format('WITH moved AS (DELETE FROM public.{prefix}_default WHERE {column} >= $1 AND {column} < $2 '
                   'RETURNING *) INSERT INTO public.%I SELECT * FROM moved', part) USING lower, upper;
    EXECUTE format('ALTER TABLE public.{parent} ATTACH PARTITION public.%I FOR VALUES FROM (%L) TO (%L)',
                   part, lower, upper);
    RETURN true;
END
$$
"""


def make_months(function: str, rows: str, column: str) -> None:
    """A partition for every month that holds rows (of the FROM item ``rows``), and for the months around now
    (the worker keeps that up)."""
    op.execute(f"""
        SELECT {function}(m) FROM (
            SELECT DISTINCT date_trunc('month', {column} AT TIME ZONE 'Asia/Shanghai')::date AS m FROM {rows}
            UNION
            SELECT (date_trunc('month', now() AT TIME ZONE 'Asia/Shanghai') + k * interval '1 month')::date
            FROM generate_series(-1, 2) AS k) AS months ORDER BY m""")


def capture(table: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The table's own triggers (definitions) and its grants (grantee, privilege), to give the new table."""
    bind = op.get_bind()
    triggers = [r[0] for r in bind.exec_driver_sql(
        f"SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = '{table}'::regclass AND NOT tgisinternal "
        "ORDER BY tgname")]
    grants = [(r[0], r[1]) for r in bind.exec_driver_sql(
        f"SELECT a.grantee::regrole::text, a.privilege_type FROM pg_class c, aclexplode(c.relacl) a "
        f"WHERE c.oid = '{table}'::regclass AND a.grantee <> c.relowner AND a.grantee <> 0")]
    return triggers, grants


def restore(table: str, triggers: list[str], grants: list[tuple[str, str]]) -> None:
    for definition in triggers:
        op.execute(definition)
    for grantee, privilege in grants:
        op.execute(f'GRANT {privilege} ON {table} TO "{grantee}"')
