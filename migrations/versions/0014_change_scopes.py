"""change notifications that say which months and departments of usage changed

Revision ID: 0014_change_scopes
Revises: 0013_trial_phase

Until now a change to any usage rollup NOTIFYed its bare table name, and the response caches dropped every answer:
ingesting today's usage dropped the answers about last year. Every write to the rollups writes ``usage_monthly``
in the same statement (services/projection/rollups.py, services/metering/rebuild.py), so its statement-level
triggers now read the changed rows (transition tables) and NOTIFY, as JSON, the local months and the departments
they hold: ``{"t": "usage_monthly", "m": {"2026-12": ["dep-a", null]}}`` (null: unattributed usage). Should the list
not fit a notification, it widens to every department of those months (``"2026-12": "*"``), then to every month
(``"m": "*"``). TRUNCATE of any rollup notifies ``"m": "*"``. The finer rollups keep notifying their bare names
(counted by the caches, e.g. for the closed months' fingerprints) on INSERT, UPDATE and DELETE.

``resource_trials`` (trial windows, migration 0013) changes draft bills and had no notification: it gets one.
"""
from typing import Sequence, Union

from alembic import op

revision: str = "0014_change_scopes"
down_revision: Union[str, None] = "0013_trial_phase"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

FINER = ("usage_hourly", "usage_daily", "usage_department_daily")
LIMIT = 7000  # bytes; PostgreSQL refuses a payload of 8000 or more


def upgrade() -> None:
    op.execute(f"""
        CREATE FUNCTION govmeter_notify_usage_scope() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE payload text;
        BEGIN
            SELECT json_build_object('t', TG_TABLE_NAME, 'm', json_object_agg(p, ds))::text INTO payload
            FROM (SELECT to_char(month, 'YYYY-MM') AS p, json_agg(DISTINCT department_id) AS ds
                  FROM changed GROUP BY 1) s
            HAVING count(*) > 0;
            IF payload IS NULL THEN
                RETURN NULL;  -- the statement changed no row
            END IF;
            IF octet_length(payload) > {LIMIT} THEN
                SELECT json_build_object('t', TG_TABLE_NAME, 'm', json_object_agg(p, '*'))::text INTO payload
                FROM (SELECT DISTINCT to_char(month, 'YYYY-MM') AS p FROM changed) s;
            END IF;
            IF octet_length(payload) > {LIMIT} THEN
                payload := json_build_object('t', TG_TABLE_NAME, 'm', '*')::text;
            END IF;
            PERFORM pg_notify('govmeter_changes', payload);
            RETURN NULL;
        END
        $$
    """)
    op.execute("""
        CREATE FUNCTION govmeter_notify_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('govmeter_changes', json_build_object('t', TG_TABLE_NAME, 'm', '*')::text);
            RETURN NULL;
        END
        $$
    """)
    op.execute("DROP TRIGGER usage_monthly_changed ON usage_monthly")
    for event, rows in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
        op.execute(f"CREATE TRIGGER usage_monthly_{event.lower()}_scope AFTER {event} ON usage_monthly "
                   f"REFERENCING {rows} TABLE AS changed FOR EACH STATEMENT "
                   "EXECUTE FUNCTION govmeter_notify_usage_scope()")
    for table in (*FINER, "usage_monthly"):
        if table != "usage_monthly":
            op.execute(f"DROP TRIGGER {table}_changed ON {table}")
            op.execute(f"CREATE TRIGGER {table}_changed AFTER INSERT OR UPDATE OR DELETE ON {table} "
                       "FOR EACH STATEMENT EXECUTE FUNCTION govmeter_notify_change()")
        op.execute(f"CREATE TRIGGER {table}_truncated AFTER TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION govmeter_notify_truncated()")
    op.execute("CREATE TRIGGER resource_trials_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON resource_trials "
               "FOR EACH STATEMENT EXECUTE FUNCTION govmeter_notify_change()")


def downgrade() -> None:
    op.execute("DROP TRIGGER resource_trials_changed ON resource_trials")
    for table in (*FINER, "usage_monthly"):
        op.execute(f"DROP TRIGGER {table}_truncated ON {table}")
        if table != "usage_monthly":
            op.execute(f"DROP TRIGGER {table}_changed ON {table}")
    for event in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER usage_monthly_{event}_scope ON usage_monthly")
    for table in (*FINER, "usage_monthly"):
        op.execute(f"CREATE TRIGGER {table}_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION govmeter_notify_change()")
    op.execute("DROP FUNCTION govmeter_notify_truncated()")
    op.execute("DROP FUNCTION govmeter_notify_usage_scope()")
