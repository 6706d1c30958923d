"""Publishing CloudEvents to the events topic: the one path every event takes to the metering worker, whether a
provider posted it (``POST /v1/events``) or govmeter made it (a fulfilled resource application)."""

from __future__ import annotations

import asyncio

import orjson

from schemas.bindings import judge_structured
from services.common.config import Settings
from services.common.kafka import batch_records
from services.common.observability import kafka_headers


async def publish(producer, topic: str, records: list[bytes]) -> None:
    headers = kafka_headers()  # the request id, so that the worker's batch log names the requests it applied
    sends = [await producer.send(topic, record, headers=headers) for record in records]
    await asyncio.gather(*sends)


async def publish_event(producer, settings: Settings, raw: dict) -> list[str]:
    """Judge one structured event by the ingest validator and, if valid, publish it and wait for the broker's
    acknowledgement (at most the ingest timeout: TimeoutError, or KafkaError). The validator's errors, if any
    (then nothing is published)."""
    raw, event, errors, _ = judge_structured(raw)
    if event is None:
        return errors
    records = batch_records([orjson.dumps(raw)], max_events=settings.ingest_record_events)
    await asyncio.wait_for(publish(producer, settings.events_topic, records),
                           timeout=settings.ingest_ack_timeout_seconds)
    return []
