"""The operators' reads: the metering worker group's consumer lag from the real broker (GET /v1/worker-lag on the
metering API) and the period closes with their durations (GET /v1/closes on the billing API). Closes use 2086."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import datetime

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from services.common.config import Settings
from services.common.kafka import ensure_topics
from services.metering.api import app as metering_app
from services.metering.lag import BrokerUnavailable, lag_settings, read_worker_lag
from tests.integration.conftest import WorkerProcess, free_port
from tests.integration.support import ADMIN, FINANCE, PROVIDER, auth, usage_event, wait_stored, wait_until
from tests.integration.test_billing import close, department_using_a_vm, local

DEPARTMENT = auth("department", "some-department")


async def publish_records(settings: Settings, events: list[dict]) -> None:
    """One Kafka record per event, straight to the broker (as a provider's own producer would)."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(settings.events_topic, orjson.dumps(event))
    finally:
        await producer.stop()


async def test_lag_equals_the_records_published_while_no_worker_runs_and_is_zero_once_a_worker_read_them(
        broker, database, tmp_path):
    # Topics and a worker group of this test's own: the session's worker never reads them.
    settings = Settings(GOVMETER_TOPIC_PREFIX=f"{os.environ['GOVMETER_TOPIC_PREFIX']}-lag-{uuid.uuid4().hex[:6]}")
    await ensure_topics(settings)
    assert (await read_worker_lag(settings)).total == 0
    events = [usage_event(f"lag-vm-{n}", "compute.vcpu", "1", local(2087, 1, 1 + n % 28)) for n in range(25)]
    await publish_records(settings, events)

    before = await read_worker_lag(settings)
    assert before.group == settings.worker_group and before.total == len(events)
    assert {p.topic for p in before.partitions} == {settings.events_topic, settings.rate_card_topic}
    assert all(p.committed_offset is None and p.lag == p.end_offset for p in before.partitions)

    worker = WorkerProcess(tmp_path / "worker.log", topic_prefix=settings.topic_prefix)
    worker.start()
    try:
        await wait_stored(events, timeout=120)

        async def caught_up():
            lag = await read_worker_lag(settings)
            return lag if lag.total == 0 else None

        after = await wait_until(caught_up, timeout=60, interval=0.5)
    finally:
        worker.stop()
    events_partitions = [p for p in after.partitions if p.topic == settings.events_topic]
    assert sum(p.end_offset for p in events_partitions) == len(events)
    assert all(p.committed_offset == p.end_offset for p in events_partitions if p.end_offset)


async def test_worker_lag_is_for_provider_and_admin_tokens_only(apps, settings):
    for headers in (PROVIDER, ADMIN):
        response = await apps["metering"].get("/v1/worker-lag", headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["group"] == settings.worker_group
        assert body["total"] == sum(p["lag"] for p in body["partitions"])
    for headers in (DEPARTMENT, FINANCE):
        response = await apps["metering"].get("/v1/worker-lag", headers=headers)
        assert response.status_code == 403, response.text
    assert (await apps["metering"].get("/v1/worker-lag")).status_code == 401


async def test_worker_lag_answers_503_naming_the_broker_when_none_answers_on_its_address(apps):
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    metering_app.dependency_overrides[lag_settings] = lambda: Settings(KAFKA_BOOTSTRAP_SERVERS=address)
    try:
        response = await apps["metering"].get("/v1/worker-lag", headers=ADMIN)
    finally:
        metering_app.dependency_overrides.pop(lag_settings, None)
    assert response.status_code == 503
    assert "broker" in response.json()["detail"] and address in response.json()["detail"]


async def test_worker_lag_gives_up_within_its_timeout_on_a_broker_that_accepts_but_never_answers():
    async def silent(reader, writer):
        await asyncio.sleep(30)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    started = time.monotonic()
    try:
        with pytest.raises(BrokerUnavailable, match="did not answer within 1 s"):
            await read_worker_lag(Settings(KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{port}"), timeout=1.0)
    finally:
        server.close()
    assert time.monotonic() - started < 5


async def test_a_close_is_listed_with_its_start_finish_instance_and_a_non_negative_duration(apps, worker):
    dep, _ = await department_using_a_vm(apps, worker, 2086, ("3", local(2086, 2, 10)))
    closed = await close(apps, "2086-02", local(2086, 3, 5))
    response = await apps["billing"].get("/v1/closes", params={"limit": 1000}, headers=FINANCE)
    assert response.status_code == 200, response.text
    (listed,) = [c for c in response.json() if c["period"] == "2086-02"]
    started, finished = datetime.fromisoformat(listed["started_at"]), datetime.fromisoformat(listed["finished_at"])
    assert started <= datetime.fromisoformat(listed["closed_at"]) <= finished
    assert listed["duration_seconds"] >= 0
    assert abs(listed["duration_seconds"] - (finished - started).total_seconds()) < 0.002
    assert listed["closed_by"] == closed["closed_by"] and listed["instance"] is None  # by hand: no instance
    assert listed["bills"] == len(closed["bills"]) and dep in {b["department_id"] for b in closed["bills"]}
    assert listed["total"] == closed["total"] and listed["watermark_override"] is False


async def test_closes_are_for_provider_finance_and_admin_never_a_department(apps):
    for headers in (PROVIDER, FINANCE, ADMIN):
        assert (await apps["billing"].get("/v1/closes", headers=headers)).status_code == 200
    response = await apps["billing"].get("/v1/closes", headers=DEPARTMENT)
    assert response.status_code == 403, response.text
    response = await apps["billing"].get("/v1/closes", params={"limit": 0}, headers=FINANCE)
    assert response.status_code == 422 and "limit" in response.text
