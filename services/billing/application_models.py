"""The tables of resource applications (Art. 8–10); created by migration 0008.

``applications`` holds an application and where it stands (its state and the two working-day clocks);
``application_steps`` is the append-only record of every step: who moved it, when, and why (a rejection's
reason). A step and the state it sets are written in one transaction."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Identity, Index, Integer, Numeric, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.common.models import Base

STATES_SQL = "state IN ('submitted', 'accepted', 'approved', 'rejected', 'fulfilled', 'withdrawn')"


class Application(Base):
    __tablename__ = "applications"
    __table_args__ = (
        CheckConstraint(STATES_SQL, name="state"),
        Index("ix_applications_department_id", "department_id", "id"),
        Index("ix_applications_open", "state", postgresql_where="state IN ('submitted', 'accepted', 'approved')"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    department_id: Mapped[str] = mapped_column(Text, ForeignKey("departments.id"))
    system: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    items: Mapped[list[Any]] = mapped_column(JSONB)  # [{"meter", "quantity"}]
    spec: Mapped[dict[str, Any]]
    reason: Mapped[str] = mapped_column(Text)
    wanted_by: Mapped[date | None]
    state: Mapped[str] = mapped_column(Text)
    estimate: Mapped[Decimal]  # monthly yuan when submitted (rounded lines summed)
    estimate_rate_card: Mapped[str | None] = mapped_column(Text)
    submitted_by: Mapped[str] = mapped_column(Text)
    submitted_at: Mapped[datetime]
    approval_due_at: Mapped[datetime]
    approval_calendar: Mapped[str] = mapped_column(Text)
    decided_at: Mapped[datetime | None]  # approved or rejected
    fulfilment_due_at: Mapped[datetime | None]
    fulfilment_calendar: Mapped[str | None] = mapped_column(Text)
    fulfilled_at: Mapped[datetime | None]
    resource_id: Mapped[str | None] = mapped_column(Text)


class ApplicationStep(Base):
    __tablename__ = "application_steps"

    application_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("applications.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    action: Mapped[str] = mapped_column(Text)  # submit | accept | approve | reject | fulfil | withdraw
    state: Mapped[str] = mapped_column(Text)  # the state it left the application in
    actor: Mapped[str] = mapped_column(Text)  # the token's subject
    role: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(server_default=func.now())
    note: Mapped[str | None] = mapped_column(Text)  # a rejection's reason, a fulfilment's resource and event


class ResourceTrial(Base):
    """A fulfilled application's trial (试运行, migration 0012): the resource's usage by the department in
    [starts_at, ends_at) is billed at ``rate`` times the normal price. A stored fact like an adjustment: bills and
    replay read it, and only going live changes it (the end moves to that instant, once)."""

    __tablename__ = "resource_trials"
    __table_args__ = (
        CheckConstraint("rate >= 0 AND rate <= 1", name="rate"),
        CheckConstraint("ends_at > starts_at OR went_live_at IS NOT NULL", name="window"),
        CheckConstraint("ends_at <= planned_ends_at", name="ends_by_plan"),
        Index("ix_resource_trials_resource_id", "resource_id"),
    )

    application_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("applications.id"), primary_key=True)
    department_id: Mapped[str] = mapped_column(Text, ForeignKey("departments.id"))
    resource_id: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[datetime]
    planned_ends_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    rate: Mapped[Decimal] = mapped_column(Numeric(7, 6))
    recorded_at: Mapped[datetime]
    went_live_by: Mapped[str | None] = mapped_column(Text)
    went_live_at: Mapped[datetime | None]
