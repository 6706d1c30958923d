"""The metering worker's consumer lag, read from the broker: for each partition of the topics the worker reads
(events and rate cards), its log-end offset minus the offset the worker group has committed there.

The broker is asked directly (an admin client for the group's committed offsets, a group-less consumer for the
partitions' start and end offsets), so the figure holds whether zero, one or several workers run. The whole read is
bounded by ``LAG_TIMEOUT_SECONDS``: a broker that does not answer gives a clear 503, not a hung request."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, HTTPException, status

from schemas.api import Role
from schemas.operations import PartitionLag, WorkerLag
from schemas.openapi import ErrorDetail
from services.common.auth import Principal, require_roles
from services.common.config import Settings, get_settings

LAG_TIMEOUT_SECONDS = 3.0


class BrokerUnavailable(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Offsets:
    """One partition's offsets: where its log starts and ends, and the group's commit (None: never committed)."""

    start: int
    end: int
    committed: int | None


def partition_lag(offsets: Offsets) -> int:
    """Records the group has still to read. Without a commit the worker starts at the log's start (its
    auto.offset.reset is earliest); a commit below the start (records removed by retention or compaction) also
    resumes there. Never negative."""
    position = offsets.start if offsets.committed is None else max(offsets.committed, offsets.start)
    return max(0, offsets.end - position)


def lag_report(group: str, partitions: dict[tuple[str, int], Offsets], measured_at: datetime) -> WorkerLag:
    rows = [PartitionLag(topic=topic, partition=partition, end_offset=o.end, committed_offset=o.committed,
                         lag=partition_lag(o))
            for (topic, partition), o in sorted(partitions.items())]
    return WorkerLag(group=group, partitions=rows, total=sum(r.lag for r in rows), measured_at=measured_at)


async def read_worker_lag(settings: Settings, timeout: float = LAG_TIMEOUT_SECONDS) -> WorkerLag:
    """The worker group's lag now; BrokerUnavailable if the broker does not answer within ``timeout`` seconds."""
    try:
        partitions = await asyncio.wait_for(_read_offsets(settings, timeout), timeout)
    except (TimeoutError, KafkaError, OSError) as exc:
        raise BrokerUnavailable(f"broker: {settings.kafka_bootstrap_servers} did not answer within {timeout:g} s "
                                f"({type(exc).__name__}); the worker's lag is unknown") from None
    return lag_report(settings.worker_group, partitions, datetime.now(UTC))


async def _read_offsets(settings: Settings, timeout: float) -> dict[tuple[str, int], Offsets]:
    request_timeout_ms = int(timeout * 1000)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers,
                                request_timeout_ms=request_timeout_ms)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False,
                                request_timeout_ms=request_timeout_ms)
    try:
        await admin.start()
        await consumer.start()
        described = await admin.describe_topics([settings.events_topic, settings.rate_card_topic])
        tps = [TopicPartition(t["topic"], p["partition"])  # a topic not created yet has none (and an error code)
               for t in described for p in sorted(t["partitions"], key=lambda p: p["partition"])]
        if not tps:
            return {}
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        committed = await admin.list_consumer_group_offsets(settings.worker_group, partitions=tps)
    finally:
        await consumer.stop()
        await admin.close()
    return {(tp.topic, tp.partition): Offsets(starts[tp], ends[tp], _committed(committed.get(tp)))
            for tp in tps}


def _committed(meta) -> int | None:
    return None if meta is None or meta.offset < 0 else meta.offset


def lag_settings() -> Settings:
    """The settings naming the broker and the worker group (a dependency: tests point it elsewhere)."""
    return get_settings()


router = APIRouter()


@router.get("/v1/worker-lag", response_model=WorkerLag, tags=["operations"],
            responses={503: {"model": ErrorDetail, "description": "the broker did not answer in time"}})
async def get_worker_lag(_: Annotated[Principal, Depends(require_roles(Role.PROVIDER, Role.ADMIN))],
                         settings: Annotated[Settings, Depends(lag_settings)]):
    """The metering worker group's consumer lag per topic-partition (events and rate cards) and in total, in
    Kafka records, read from the broker now (within a few seconds, else 503). Zero: the worker has read
    everything published; growing: it falls behind, or no worker runs."""
    try:
        return await read_worker_lag(settings)
    except BrokerUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from None
