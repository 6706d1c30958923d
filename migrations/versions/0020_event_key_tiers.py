"""event store key in two tiers: the boundary between settled and recent events (none yet)

Revision ID: 0020_event_key_tiers
Revises: 0019_rate_cards_append_only

``event_key_tiers.settled_before`` is the instant before which received events are *settled*: their keys are one
partial unique index that the worker only reads, and the keys of the events received since are another, which is
all the worker writes (services/metering/key_tiers.py). NULL, as migrated: the key is still migration 0018's one
index ``uq_events_key``. ``govmeter event-keys --settle-before`` moves the boundary (building the indexes
concurrently), so this migration changes no index and is instant on any store.

The downgrade puts the one index back first if the store was split.
"""
from typing import Sequence, Union

from alembic import op

revision: str = "0020_event_key_tiers"
down_revision: Union[str, None] = "0019_rate_cards_append_only"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE event_key_tiers (
            one boolean DEFAULT true NOT NULL,
            settled_before timestamptz,
            CONSTRAINT pk_event_key_tiers PRIMARY KEY (one),
            CONSTRAINT ck_event_key_tiers_one CHECK (one)
        )""")
    op.execute("INSERT INTO event_key_tiers DEFAULT VALUES")


def downgrade() -> None:
    op.execute("""
        DO $$
        DECLARE name text;
        BEGIN
            IF to_regclass('public.uq_events_key') IS NULL THEN
                CREATE UNIQUE INDEX uq_events_key ON events (govmeter_event_key(source, event_id));
            END IF;
            FOR name IN SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                        WHERE i.indrelid = 'public.events'::regclass AND c.relname LIKE 'uq\\_events\\_key\\_%' LOOP
                EXECUTE format('DROP INDEX %I', name);
            END LOOP;
        END $$""")
    op.execute("DROP TABLE event_key_tiers")
