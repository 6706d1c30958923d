"""The metering worker: a Faust agent that takes batches of records from the events topic and applies each
batch to PostgreSQL in one transaction.

Kafka and Faust deliver at least once; PostgreSQL dedupes. Offsets must not be committed for a batch whose
transaction did not commit, so each message is held (an extra reference) until its batch has committed: Faust's
``take_events`` acks in a ``finally`` even when the batch failed, and that ack alone cannot release a held
message. Concurrency stays 1 (faust-streaming#606)."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import socket
import tempfile
from datetime import UTC, datetime

import faust
import orjson

from services.common.config import get_settings
from services.common.db import get_engine
from services.common.logs import logging_config
from services.common.metrics import BATCH_SECONDS, CONSUMER_LAG, Timer, count_batch, start_metrics_server
from services.common.observability import KAFKA_REQUEST_ID_HEADER
from services.common.runtime import tune_garbage_collector
from services.metering.pipeline import KafkaRecord, MeteringPipeline, decode_records
from services.projection.partitions import keep_partitions

log = logging.getLogger("govmeter.worker")
settings = get_settings()
_slot_locks: list[int] = []


def instance_id() -> str:
    """This process's static group member id (KIP-345): stable across restarts, so that a restarted worker takes
    back its partitions at once instead of waiting for the dead member's session to expire and a rebalance.
    Two live members must never share an id (the broker fences the older), so without a configured id each worker
    process on a host holds a lock on the first free slot; the OS releases it when the process dies, however it dies."""
    if settings.worker_instance_id:
        return settings.worker_instance_id
    for slot in range(256):
        path = os.path.join(tempfile.gettempdir(), f"govmeter-{settings.worker_group}-worker-{slot}.lock")
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _slot_locks.append(fd)  # held for the life of the process
        return f"{socket.gethostname()}-{slot}"
    raise SystemExit("no free worker slot: set GOVMETER_WORKER_INSTANCE_ID")


app = faust.App(
    settings.worker_group,
    broker=f"kafka://{settings.kafka_bootstrap_servers}",
    store="memory://",
    datadir=os.path.join(tempfile.gettempdir(), f"faust-{settings.worker_group}"),  # nothing durable lives there
    web_enabled=False,
    web_bind="127.0.0.1",  # never 0.0.0.0, even if something turns the web server on
    consumer_auto_offset_reset="earliest",
    topic_partitions=settings.event_partitions,
    topic_allow_declare=True,
    producer_acks=-1,
    broker_commit_every=1000,
    broker_commit_interval=1.0,
    stream_buffer_maxsize=100,  # records (each up to ~1,000 events) read ahead: bounds the memory
    consumer_max_fetch_size=4 * 1024**2,  # per partition: a fetch brings a batch's worth, not 1 MB of it
    # Recovery in seconds, not minutes: static membership lets a restarted worker rejoin without a rebalance; a
    # short session bounds how long a dead worker that stays dead holds its partitions; a rebalance waits at most
    # this long for members to rejoin.
    consumer_group_instance_id=instance_id(),
    broker_session_timeout=settings.worker_session_timeout_seconds,
    broker_heartbeat_interval=settings.worker_session_timeout_seconds / 4,
    broker_rebalance_timeout=10.0,
    logging_config=logging_config(),  # JSON lines, as every govmeter process (services/common/logs.py)
)
events_topic = app.topic(settings.events_topic, value_type=bytes, value_serializer="raw",
                         partitions=settings.event_partitions)
dead_letter_topic = app.topic(settings.dead_letter_topic, value_type=bytes, value_serializer="raw", partitions=1)
rate_card_topic = app.topic(settings.rate_card_topic, value_type=bytes, value_serializer="raw", partitions=1)

_pipeline: MeteringPipeline | None = None
# Decoded batches wait here for their transaction. Decoding (CPU in this process) of the next batch overlaps the
# current batch's transaction (CPU in PostgreSQL); one batch at most waits decoded.
_ready: asyncio.Queue = asyncio.Queue(maxsize=1)


def pipeline() -> MeteringPipeline:
    global _pipeline
    if _pipeline is None:
        _pipeline = MeteringPipeline(get_engine())
    return _pipeline


@app.agent(events_topic, concurrency=1)
async def meter_events(stream):
    async for batch in stream.take_events(settings.worker_batch_records, within=settings.worker_batch_seconds):
        for event in batch:
            event.message.incref()  # hold: released only after the batch's transaction commits
        # The record headers carry a binary-mode CloudEvent's attributes (ce_*)
        records = [KafkaRecord(e.message.topic, e.message.partition, e.message.offset, e.value, e.message.headers)
                   for e in batch]
        incoming, dead = decode_records(records)
        await _ready.put((batch, incoming, dead))


@app.task
async def start_appliers():
    tune_garbage_collector()  # start-up is over: what it built is frozen
    try:  # before the first batch, so partition upkeep never waits on this worker's own inserts
        await keep_partitions(get_engine(), datetime.now(UTC))
    except Exception:  # usage of a month without a partition lands in usage_hourly_default meanwhile
        log.exception("usage_hourly partition upkeep failed")
    # Each applier runs one transaction at a time; with two, PostgreSQL works on one batch while this process
    # rates the next. Order between batches does not matter: every effect is keyed and idempotent, and a batch's
    # offsets become committable only when its own transaction has committed (Faust never commits past a gap).
    for _ in range(settings.worker_transactions):
        asyncio.ensure_future(apply_batches())


async def apply_batches():
    """Apply decoded batches, one transaction each; release their messages for commit afterwards."""
    while True:
        batch, incoming, dead = await _ready.get()
        with Timer() as took:
            outcome = await pipeline().apply_isolating(incoming, dead)
        BATCH_SECONDS.observe(took.seconds)
        count_batch(len(batch), outcome)
        for event in batch:
            event.ack()  # release the hold
        for letter in outcome.dead_letters:
            await dead_letter_topic.send(value=orjson.dumps({
                "reason": letter.reason, "errors": letter.errors, "source": letter.source, "id": letter.event_id,
                "payload": letter.payload, "topic": letter.topic, "partition": letter.partition,
                "offset": letter.offset,
            }))
        log_batch(batch, outcome, took.seconds)
        for name, value in (("events", outcome.events), ("new usage", outcome.new_usage),
                            ("lifecycle", outcome.new_lifecycle), ("duplicates", outcome.duplicates),
                            ("dead letters", len(outcome.dead_letters))):
            _totals[name] = _totals.get(name, 0) + value


_totals: dict[str, int] = {}


def log_batch(batch, outcome, seconds: float) -> None:
    """One line per batch, naming the HTTP requests whose events it applied (their ``X-Request-ID``, carried in
    a record header). At INFO when it has any (a batch is at most a few requests' records), else at DEBUG: records
    produced straight into Kafka can come one event at a time, many batches a second."""
    request_ids = sorted({value.decode("latin-1") for event in batch for key, value in (event.message.headers or ())
                          if key == KAFKA_REQUEST_ID_HEADER})
    log.log(logging.INFO if request_ids else logging.DEBUG,
            "batch applied: %d records, %d events, %d new usage, %d lifecycle, %d duplicates, %d dead letters",
            len(batch), outcome.events, outcome.new_usage, outcome.new_lifecycle, outcome.duplicates,
            len(outcome.dead_letters),
            extra={"request_ids": request_ids, "records": len(batch), "events": outcome.events,
                   "dead_letters": len(outcome.dead_letters), "duration_ms": round(seconds * 1000, 2)})


@app.timer(interval=5.0)
async def measure_lag():
    """Consumer lag per assigned partition: the partition's highwater (as of the last fetch) minus the offset
    committed for it (0 before the first commit)."""
    consumer = app.consumer
    try:
        lags = {tp: consumer.highwater(tp) - (consumer._committed_offset.get(tp) or 0)  # no public accessor
                for tp in consumer.assignment() if tp.topic == settings.events_topic and consumer.highwater(tp) is not None}
    except Exception as exc:  # not assigned yet, or rebalancing: measured next time
        log.debug("consumer lag not measured: %s", exc)
        return
    CONSUMER_LAG.clear()  # partitions no longer assigned drop out
    for tp, lag in lags.items():
        CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, lag))


@app.timer(interval=10.0)
async def report_progress():
    if _totals:
        log.info("since start: %s", ", ".join(f"{v} {k}" for k, v in _totals.items()))


@app.agent(rate_card_topic, concurrency=1)
async def follow_rate_cards(stream):
    # Prices that decide amounts are read from PostgreSQL (version-checked per batch); this only logs them.
    async for value in stream:
        log.info("rate card published: %s", value[:200])


def main(argv: list[str] | None = None) -> None:
    import sys

    from services.common.kafka import ensure_topics

    asyncio.run(ensure_topics(settings))  # Faust ignores a topic that is missing when it starts
    start_metrics_server(settings.worker_metrics_port, settings.host)
    # --without-web: the CLI's default (--with-web) would override web_enabled and bind 0.0.0.0:6066.
    # --quiet: no start-up banner on stdout: the process's output is only JSON log lines.
    sys.argv = ["govmeter-worker", "--quiet", "worker", "-l", "info", "--without-web", "--web-bind", "127.0.0.1",
                *(argv or [])]
    app.main()
