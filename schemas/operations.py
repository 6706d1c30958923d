"""Contracts of the operators' reads: the metering worker's consumer lag (metering API) and the period closes
with their durations (billing API)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from schemas.billing import Yuan


class PartitionLag(BaseModel):
    topic: str
    partition: int
    end_offset: int = Field(description="the partition's log-end offset: the offset its next record will get")
    committed_offset: int | None = Field(description="the worker group's committed offset (the next record it will "
                                                     "read); null: the group has committed none on this partition")
    lag: int = Field(description="records not yet consumed: end_offset minus the committed offset (minus the "
                                 "log-start offset when none is committed: the worker starts from the earliest)")


class WorkerLag(BaseModel):
    group: str = Field(description="the metering worker's Kafka consumer group")
    partitions: list[PartitionLag]
    total: int = Field(description="the sum of the partitions' lag, in Kafka records (a record may carry a batch of "
                                   "up to GOVMETER_INGEST_RECORD_EVENTS events)")
    measured_at: datetime


class CloseOut(BaseModel):
    period: str
    started_at: datetime | None = Field(description="the close's transaction began (before its lock waits); null "
                                                    "for closes recorded before migration 0008")
    closed_at: datetime = Field(description="the instant the bills describe (taken under the locks)")
    finished_at: datetime | None = Field(description="the period's record was written, its bills computed and their "
                                                     "ledger entries appended")
    duration_seconds: float | None = Field(description="finished_at minus started_at")
    closed_by: str = Field(description="who asked: an admin's subject, or auto-close")
    instance: str | None = Field(description="the billing API process that closed it (automatic closes)")
    bills: int = Field(description="the final bills issued")
    total: Yuan = Field(description="the sum of those bills, in yuan")
    watermark_override: bool = Field(description="closed while active event sources were behind its end")
