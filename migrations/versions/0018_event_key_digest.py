"""event store key: one narrow unique index on a digest of (source, id) instead of the wide primary key

Revision ID: 0018_event_key_digest
Revises: 0017_bill_list_speed

Each stored event is unique per (source, id), over all of history: a duplicate, a redelivery or a replay of any
year must find it. Event ids are the provider's (UUIDs, in practice), so every insert lands on a random leaf of
that index, and the whole index is the worker's working set. As a primary key on the two texts it took ~118 bytes
an event: at five years of the bench's medium store (29 M events) 3.8 GB, twice shared_buffers, and the worker's
PostgreSQL CPU an event rose from 54 µs to 81 (page reads from outside shared buffers, dirty pages written back by
the backend, full-page images; docs/partitioning.md).

``govmeter_event_key(source, id)`` is the first 128 bits of SHA-256 over both texts (a NUL byte between them,
which text cannot hold, so no two pairs share an input): ~40 bytes an index entry, a third of before. The unique
index on it is the event store's identity; ``ON CONFLICT (govmeter_event_key(source, event_id))`` infers it. A
digest shared by two different pairs (never seen for SHA-256) would make the second event a dead letter
("conflicting duplicate", services/metering/event_store.py), never a silent drop.

The index is built before the primary key goes, so the table is never without its identity.
"""
from typing import Sequence, Union

from alembic import op

revision: str = "0018_event_key_digest"
down_revision: Union[str, None] = "0017_bill_list_speed"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# Every function in the body is immutable, so PostgreSQL inlines it (a SQL function called per row costs ~4 µs, its
# inlined body ~1.6): decode(…, 'escape') of the text with each backslash doubled is the text's own bytes
# (convert_to, the obvious spelling, is only STABLE and would keep the call from being inlined).
KEY_FUNCTION = r"""
    CREATE FUNCTION govmeter_event_key(source text, event_id text) RETURNS uuid
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
        SELECT CAST(encode(substr(sha256(decode(replace(source, '\', '\\'), 'escape') || '\x00'::bytea
                                         || decode(replace(event_id, '\', '\\'), 'escape')), 1, 16), 'hex') AS uuid)
    $$"""


def upgrade() -> None:
    op.execute(KEY_FUNCTION)
    op.execute("CREATE UNIQUE INDEX uq_events_key ON events (govmeter_event_key(source, event_id))")
    op.execute("ALTER TABLE events DROP CONSTRAINT pk_events")


def downgrade() -> None:
    op.execute("ALTER TABLE events ADD CONSTRAINT pk_events PRIMARY KEY (source, event_id)")
    op.execute("DROP INDEX uq_events_key")
    op.execute("DROP FUNCTION govmeter_event_key(text, text)")
