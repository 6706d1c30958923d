"""Kafka helpers shared by the APIs, the worker and the tests: topics, producers, reachability."""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import TopicAlreadyExistsError

from services.common.config import Settings

log = logging.getLogger(__name__)
MAX_RECORD_BYTES = 900_000  # below the broker's default message.max.bytes (1 MiB)


async def ensure_topics(settings: Settings) -> None:
    """Create govmeter's topics if missing (idempotent). Rate cards are compacted: the latest per version."""
    wanted = [
        NewTopic(settings.events_topic, num_partitions=settings.event_partitions, replication_factor=1),
        NewTopic(settings.dead_letter_topic, num_partitions=1, replication_factor=1),
        NewTopic(settings.alerts_topic, num_partitions=1, replication_factor=1),
        NewTopic(settings.warnings_topic, num_partitions=1, replication_factor=1),
        NewTopic(settings.rate_card_topic, num_partitions=1, replication_factor=1,
                 topic_configs={"cleanup.policy": "compact"}),
    ]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another process made it first
    finally:
        await admin.close()


async def start_producer(settings: Settings) -> AIOKafkaProducer:
    # acks=all: an event is reported accepted only when the broker has it durably.
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        max_request_size=MAX_RECORD_BYTES + 100_000,
        linger_ms=2,
    )
    await producer.start()
    return producer


async def broker_reachable(bootstrap_servers: str) -> bool:
    client = AIOKafkaClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=3000)
    try:
        await client.bootstrap()
        return True
    except Exception as exc:  # any failure means "not reachable" for a health check
        log.warning("broker not reachable: %s", exc)
        return False
    finally:
        await client.close()


def batch_records(encoded_events: list[bytes], limit: int = MAX_RECORD_BYTES, max_events: int = 1000) -> list[bytes]:
    """Pack encoded events into JSON-array records below ``limit`` bytes: one Kafka record carries many events,
    which is what lets a worker pass its per-record cost."""
    records: list[bytes] = []
    current: list[bytes] = []
    size = 2
    for item in encoded_events:
        if current and (size + len(item) + 1 > limit or len(current) >= max_events):
            records.append(b"[" + b",".join(current) + b"]")
            current, size = [], 2
        current.append(item)
        size += len(item) + 1
    if current:
        records.append(b"[" + b",".join(current) + b"]")
    return records
