"""event store partitioned by the month events are received, its key in a table of its own

Revision ID: 0021_partition_events
Revises: 0020_event_key_tiers

``events`` becomes a partitioned table (docs/partitioning.md, "The event store by month"):

- ``PARTITION BY LIST (type)``: ``events_lifecycle`` holds the resource lifecycle events (few, and read by
  subject over all of history whenever ownership is re-projected, so never detached); ``events_metered``, the
  default, holds usage and utilisation and is itself ``PARTITION BY RANGE (received_at)``: ``events_YYYY_MM`` a
  local (Asia/Shanghai) calendar month of arrivals, ``events_default`` any arrival no month partition covers yet.
  The worker appends to the current month's partition only; a closed month can be detached to cheaper storage.
- A unique index of a partitioned table must include its partition key, so the key unique over all of history
  (``govmeter_event_key(source, event_id)``, migration 0018) moves to ``event_keys (key, received_at,
  payload_digest)``, written in the transaction of its event. Its indexes are the ones ``events`` had: the one
  index ``uq_events_key``, or the settled and recent pair of migration 0020's tiers, each with its predicate. The
  stored payload's SHA-256 tells a conflicting duplicate from an exact one without reading the event.

``govmeter_events_month(month)`` makes a month's partition as ``govmeter_usage_hourly_month`` does (migration
0016): the owner's, callable by the services, moving the month's rows out of ``events_default`` and attaching.

The upgrade copies the events and their keys set-based, with the table locked: on a large store it takes about as
long as copying the table and building its indexes (run it in a quiet hour). The downgrade does the reverse.
"""
from typing import Sequence, Union

from alembic import op

from migrations.monthly import capture, make_months, month_function, restore

revision: str = "0021_partition_events"
down_revision: Union[str, None] = "0020_event_key_tiers"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

LIFECYCLE = "gov.cloud.resource.v1"
OLD = "events_unpartitioned"
KEY_ON_EVENTS = "govmeter_event_key(source, event_id)"
SUBJECT_INDEXES = (
    f"CREATE INDEX ix_events_usage_subject_end ON events (subject, end_at) WHERE type = 'gov.cloud.usage.v1'",
    f"CREATE INDEX ix_events_lifecycle_subject ON events (subject) WHERE type = '{LIFECYCLE}'",
)

MONTH_FUNCTION = month_function("govmeter_events_month", "events_metered", "events", "received_at")


def _key_indexes(table: str) -> list[tuple[str, str]]:
    """The key's indexes on ``table`` (the one index, or a settled and recent pair): name and definition."""
    return [(r[0], r[1]) for r in op.get_bind().exec_driver_sql(
        f"SELECT c.relname, pg_get_indexdef(c.oid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        f"WHERE i.indrelid = 'public.{table}'::regclass AND c.relname LIKE 'uq\\_events\\_key%' ORDER BY 1")]


def upgrade() -> None:
    triggers, grants = capture("events")
    indexes = _key_indexes("events")
    op.execute("""
        CREATE TABLE event_keys (
            key uuid NOT NULL,
            received_at timestamptz DEFAULT now() NOT NULL,
            payload_digest bytea NOT NULL
        )""")
    op.execute(f"INSERT INTO event_keys SELECT {KEY_ON_EVENTS}, received_at, sha256(payload) FROM events")
    for name, _ in indexes:
        op.execute(f"DROP INDEX {name}")
    for _, definition in indexes:  # the same name and predicate, over the key column
        op.execute(definition.replace("ON public.events USING btree (govmeter_event_key(source, event_id))",
                                      "ON public.event_keys USING btree (key)"))
    op.execute(f"ALTER TABLE events RENAME TO {OLD}")
    for name in ("ix_events_usage_subject_end", "ix_events_lifecycle_subject"):
        op.execute(f"DROP INDEX {name}")
    op.execute(f"CREATE TABLE events (LIKE {OLD} INCLUDING DEFAULTS) PARTITION BY LIST (type)")
    op.execute(f"CREATE TABLE events_lifecycle PARTITION OF events FOR VALUES IN ('{LIFECYCLE}')")
    op.execute("CREATE TABLE events_metered PARTITION OF events DEFAULT PARTITION BY RANGE (received_at)")
    op.execute("CREATE TABLE events_default PARTITION OF events_metered DEFAULT")
    op.execute(MONTH_FUNCTION)
    op.execute("REVOKE ALL ON FUNCTION govmeter_events_month(date) FROM PUBLIC")
    make_months("govmeter_events_month", f"{OLD} WHERE type <> '{LIFECYCLE}'", "received_at")
    op.execute(f"INSERT INTO events SELECT * FROM {OLD}")
    op.execute(f"DROP TABLE {OLD}")
    for index in SUBJECT_INDEXES:  # built once the rows are in: on the parent, so on every partition
        op.execute(index)
    restore("events", triggers, grants)
    restore("event_keys", [], [(grantee, p) for grantee, p in grants if p in ("SELECT", "INSERT")])
    op.execute("ANALYZE events")
    op.execute("ANALYZE event_keys")


def downgrade() -> None:
    triggers, grants = capture("events")
    indexes = _key_indexes("event_keys")
    op.execute("ALTER TABLE events RENAME TO events_partitioned")
    op.execute("CREATE TABLE events (LIKE events_partitioned INCLUDING DEFAULTS)")
    op.execute("INSERT INTO events SELECT * FROM events_partitioned")
    op.execute("DROP TABLE events_partitioned")  # with its partitions
    op.execute("DROP FUNCTION govmeter_events_month(date)")
    op.execute("DROP TABLE event_keys")  # with the key's indexes
    for _, definition in indexes:
        op.execute(definition.replace("ON public.event_keys USING btree (key)",
                                      "ON public.events USING btree (govmeter_event_key(source, event_id))"))
    for index in SUBJECT_INDEXES:
        op.execute(index)
    restore("events", triggers, grants)
