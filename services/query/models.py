"""Tables of the reports (typed SQLAlchemy models on the shared ``Base``); created by migration 0003."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Identity, Index, Integer, Text, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from services.common.models import Base


class UtilizationHourly(Base):
    """Utilisation observations per UTC hour and resource (see ``services.metering.domain.utilization``): time-weighted
    sums, maxima and 1-point histograms of CPU and memory percent. Never billed; owners are joined at read time."""

    __tablename__ = "utilization_hourly"
    __table_args__ = (Index("ix_utilization_hourly_resource_hour", "resource_id", "hour"),)

    hour: Mapped[datetime] = mapped_column(primary_key=True)
    resource_id: Mapped[str] = mapped_column(Text, primary_key=True)
    samples: Mapped[int] = mapped_column(Integer)
    observed_ms: Mapped[int] = mapped_column(BigInteger)
    cpu_sum: Mapped[Decimal]  # Σ percent × milliseconds
    memory_sum: Mapped[Decimal]
    cpu_max: Mapped[Decimal]
    memory_max: Mapped[Decimal]
    cpu_hist: Mapped[list[int]] = mapped_column(ARRAY(Integer))  # milliseconds per 1-point bucket, 100 buckets
    memory_hist: Mapped[list[int]] = mapped_column(ARRAY(Integer))


class SpendWarning(Base):
    """An anomaly warning (Art. 12(2)): a department's daily spend on a meter far above its own trailing baseline.
    Stored once per department, meter and local day, with the figures that triggered it; ``published_at`` is set
    once it is on the warnings topic (an outbox: publishing is retried until it succeeds)."""

    __tablename__ = "spend_warnings"
    __table_args__ = (
        UniqueConstraint("department_id", "meter", "day", name="uq_spend_warnings_department_meter_day"),
        Index("ix_spend_warnings_day", "day"),
        Index("ix_spend_warnings_unpublished", "id", postgresql_where="published_at IS NULL"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    day: Mapped[date]
    department_id: Mapped[str] = mapped_column(Text)
    meter: Mapped[str] = mapped_column(Text)
    spend: Mapped[Decimal]  # exact yuan of that day
    median: Mapped[Decimal]
    mad: Mapped[Decimal]  # median absolute deviation of the baseline, before the floor
    mad_used: Mapped[Decimal]  # after the floor
    robust_z: Mapped[Decimal]
    threshold: Mapped[Decimal]
    baseline: Mapped[dict[str, Any]]  # {"from": day, "to": day, "spend": [exact yuan per day, oldest first]}
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    published_at: Mapped[datetime | None]
