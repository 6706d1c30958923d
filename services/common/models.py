"""The shared PostgreSQL schema as typed SQLAlchemy models. Alembic migrations in ``migrations/`` create it.

Write side: ``events`` is the event store, the source of truth. Everything else here is a projection that
``govmeter replay`` can rebuild from it, except reference data entered by people (departments, rate cards)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    Text,
    func,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        datetime: TIMESTAMP(timezone=True),
        Decimal: Numeric(),  # unbounded scale: exact sums, rounded only where a person reads a figure
        dict[str, Any]: JSONB,
        date: Date,
        bytes: LargeBinary,
    }


class Department(Base):
    __tablename__ = "departments"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # The parent department (migration 0008: kept acyclic by a trigger); NULL at the top of the tree.
    parent_id: Mapped[str | None] = mapped_column(
        Text, ForeignKey("departments.id", name="fk_departments_parent_id_departments"), index=True)


class RateCard(Base):
    __tablename__ = "rate_cards"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    version: Mapped[str] = mapped_column(Text, unique=True)
    effective_from: Mapped[datetime]
    currency: Mapped[str] = mapped_column(Text)
    prices: Mapped[dict[str, Any]]
    created_by: Mapped[str] = mapped_column(Text)  # who proposed it
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # Maker/checker (migration 0008): when it was proposed, who approved it and when; NULL on older cards.
    proposed_at: Mapped[datetime | None]
    approved_by: Mapped[str | None] = mapped_column(Text)
    approved_at: Mapped[datetime | None]


class Event(Base):
    """Every accepted CloudEvent, once per (source, id): the source of truth. ``payload`` is the event's JSON
    (sorted keys) as received; the usage columns repeat what rating needs, so a rebuild reads no JSON.

    Partitioned (migration 0021): lifecycle events in ``events_lifecycle``, never detached; usage and utilisation
    in ``events_metered``, a partition a local month of arrival (``events_YYYY_MM``), made at run time
    (services/projection/partitions.py). Its identity is kept in ``event_keys``, written in the same statement: a
    unique index of a partitioned table would have to include the month."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_usage_subject_end", "subject", "end_at", postgresql_where="type = 'gov.cloud.usage.v1'"),
        Index("ix_events_lifecycle_subject", "subject", postgresql_where="type = 'gov.cloud.resource.v1'"),
        {"postgresql_partition_by": "LIST (type)"},
    )
    __mapper_args__ = {"primary_key": ["source", "event_id"]}

    source: Mapped[str] = mapped_column(Text)
    event_id: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    event_time: Mapped[datetime]
    meter: Mapped[str | None] = mapped_column(Text)
    quantity: Mapped[Decimal | None]
    start_at: Mapped[datetime | None]
    end_at: Mapped[datetime | None]
    payload: Mapped[bytes]
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())


class EventKey(Base):
    """The event store's identity: every stored event's ``govmeter_event_key(source, event_id)``, unique over all
    of history (a 128-bit digest of the pair, migration 0018), when it was received and its payload's SHA-256 (a
    changed payload under a stored key is a conflicting duplicate). The unique index is ``uq_events_key``, or the
    settled and recent pair that ``govmeter event-keys`` builds in its place (services/metering/key_tiers.py)."""

    __tablename__ = "event_keys"
    __table_args__ = (Index("uq_events_key", "key", unique=True),)
    __mapper_args__ = {"primary_key": ["key"]}

    key: Mapped[uuid.UUID]
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
    payload_digest: Mapped[bytes]


class EventKeyTiers(Base):
    """One row: the instant before which received events are settled (migration 0020). Their keys are a partial
    unique index the worker only reads; the keys received since are another. NULL: one index over every event
    (``uq_events_key``). Moved by ``govmeter event-keys`` (services/metering/key_tiers.py)."""

    __tablename__ = "event_key_tiers"
    __table_args__ = (CheckConstraint("one", name="ck_event_key_tiers_one"),)

    one: Mapped[bool] = mapped_column(primary_key=True, server_default=true())
    settled_before: Mapped[datetime | None]


class ResourceInterval(Base):
    """Projection of lifecycle events: who owned a resource from when to when."""

    __tablename__ = "resource_intervals"

    resource_id: Mapped[str] = mapped_column(Text, primary_key=True)
    valid_from: Mapped[datetime] = mapped_column(primary_key=True)
    valid_to: Mapped[datetime | None]
    department_id: Mapped[str] = mapped_column(Text, index=True)
    system: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    spec: Mapped[dict[str, Any]]


class UsageHourly(Base):
    """Rated usage per UTC hour, resource, meter, owner and rate card. department_id NULL = unattributed.

    The unique key leads with resource_id so that re-rating one resource from an hour on is an index range; it
    is the table's identity (no surrogate key: one index less to write per row)."""

    __tablename__ = "usage_hourly"
    __table_args__ = (
        Index(
            "uq_usage_hourly_key",
            "resource_id", "hour", "meter", "department_id", "system", "rate_card_id",
            unique=True, postgresql_nulls_not_distinct=True,
        ),
        Index("ix_usage_hourly_department_hour", "department_id", "hour"),
        Index("ix_usage_hourly_hour", "hour"),
        {"postgresql_partition_by": "RANGE (hour)"},  # a partition a local month (migration 0016)
    )
    __mapper_args__ = {"primary_key": ["resource_id", "hour", "meter", "department_id", "system", "rate_card_id"]}

    hour: Mapped[datetime]
    resource_id: Mapped[str] = mapped_column(Text)
    meter: Mapped[str] = mapped_column(Text)
    department_id: Mapped[str | None] = mapped_column(Text)
    system: Mapped[str | None] = mapped_column(Text)
    rate_card_id: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[Decimal]
    amount: Mapped[Decimal]
    unpriced_quantity: Mapped[Decimal]


class _CoarseUsage:
    quantity: Mapped[Decimal]
    amount: Mapped[Decimal]
    unpriced_quantity: Mapped[Decimal]


class UsageDaily(_CoarseUsage, Base):
    """Rated usage per local (Asia/Shanghai) day, owner, information system and meter."""

    __tablename__ = "usage_daily"
    __table_args__ = (
        Index(
            "uq_usage_daily_key", "day", "department_id", "system", "meter",
            unique=True, postgresql_nulls_not_distinct=True,
        ),
        Index("ix_usage_daily_department_day", "department_id", "day"),
    )
    __mapper_args__ = {"primary_key": ["day", "department_id", "system", "meter"]}

    day: Mapped[date]
    department_id: Mapped[str | None] = mapped_column(Text)
    system: Mapped[str | None] = mapped_column(Text)
    meter: Mapped[str] = mapped_column(Text)


class UsageDepartmentDaily(_CoarseUsage, Base):
    """Rated usage per local day, owner and meter: a department's days read as one index range."""

    __tablename__ = "usage_department_daily"
    __table_args__ = (
        Index(
            "uq_usage_department_daily_key", "department_id", "day", "meter",
            unique=True, postgresql_nulls_not_distinct=True,
        ),
        Index("ix_usage_department_daily_day", "day"),
    )
    __mapper_args__ = {"primary_key": ["department_id", "day", "meter"]}

    day: Mapped[date]
    department_id: Mapped[str | None] = mapped_column(Text)
    meter: Mapped[str] = mapped_column(Text)


class UsageDepartmentTotalsDaily(_CoarseUsage, Base):
    """Rated usage per local day and owner, all meters together: the edge days of a window by department."""

    __tablename__ = "usage_department_totals_daily"
    __table_args__ = (
        Index("uq_usage_department_totals_daily_key", "day", "department_id", unique=True,
              postgresql_nulls_not_distinct=True),
    )
    __mapper_args__ = {"primary_key": ["day", "department_id"]}

    day: Mapped[date]
    department_id: Mapped[str | None] = mapped_column(Text)


class UsageMonthly(_CoarseUsage, Base):
    """Rated usage per local month (its first day), owner and meter."""

    __tablename__ = "usage_monthly"
    __table_args__ = (
        Index("uq_usage_monthly_key", "month", "department_id", "meter", unique=True, postgresql_nulls_not_distinct=True),
    )
    __mapper_args__ = {"primary_key": ["month", "department_id", "meter"]}

    month: Mapped[date]
    department_id: Mapped[str | None] = mapped_column(Text)
    meter: Mapped[str] = mapped_column(Text)


class ProjectionState(Base):
    """One row of version counters: a worker reuses its cached ownership and rate cards while they match."""

    __tablename__ = "projection_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ownership_version: Mapped[int] = mapped_column(BigInteger)
    rate_card_version: Mapped[int] = mapped_column(BigInteger)


class UsageVersion(Base):
    """How many times a department's daily usage of a local month was written (migration 0017): a usage
    baseline records it, and an unchanged version means an unchanged fingerprint (docs/bill-list-speed.md)."""

    __tablename__ = "usage_versions"

    department_id: Mapped[str] = mapped_column(Text, primary_key=True)
    period: Mapped[str] = mapped_column(Text, primary_key=True)  # YYYY-MM
    version: Mapped[int] = mapped_column(BigInteger)


class DeadLetter(Base):
    """Input that could not be counted, with the reason; ``dedupe_key`` keeps redeliveries from repeating it."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(Text, unique=True)
    source: Mapped[str | None] = mapped_column(Text)
    event_id: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    errors: Mapped[dict[str, Any]]
    payload: Mapped[str] = mapped_column(Text)
    topic: Mapped[str | None] = mapped_column(Text)
    partition: Mapped[int | None] = mapped_column(Integer)
    offset: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class SourceWatermark(Base):
    """How far each event source's data has arrived, kept by the worker in the transaction of its events
    (migration 0006): the newest usage interval end stored, when the source's last new event was stored, and
    how many it has. Only ever moves forward, so a redelivered or bisected batch leaves it as it was."""

    __tablename__ = "source_watermarks"

    source: Mapped[str] = mapped_column(Text, primary_key=True)
    complete_up_to: Mapped[datetime | None]
    last_seen_at: Mapped[datetime]
    events: Mapped[int] = mapped_column(BigInteger)
