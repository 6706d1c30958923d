"""Metering never stops: over real Kafka and PostgreSQL, one bad event costs one dead letter or one 4xx, a transient
failure costs a retry, and the good events around them always count."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, given, settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import text

from bench.drills import Broker
from services.common.config import get_settings
from services.common.db import asyncpg_dsn, get_engine
from tests.conftest import APP_ROLE
from tests.integration.support import ADMIN, FINANCE, PROVIDER, auth, dead_letters, post_events, stored_count, \
    usage_event, wait_stored, wait_until

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture
async def producer(settings):
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    yield producer
    await producer.stop()


async def execute(sql: str) -> None:
    # As the tables' owner: the services' role may not create functions or triggers (least privilege).
    conn = await asyncpg.connect(asyncpg_dsn(get_settings().migration_database_url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
async def refusing_trigger():
    """PostgreSQL refuses events whose subject starts with 'poison-' (a CHECK-like violation, SQLSTATE 23514) and
    fails those whose subject starts with 'flaky-' with a serialization failure (40001) twice, then takes them:
    a refusal and a transient failure, as the database itself raises them."""
    await execute("CREATE SEQUENCE IF NOT EXISTS test_flaky_attempts")
    await execute(f'GRANT USAGE ON SEQUENCE test_flaky_attempts TO "{APP_ROLE}"')  # the worker's trigger calls
    await execute("""
        CREATE OR REPLACE FUNCTION test_refuse_or_fail() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.subject LIKE 'poison-%' THEN
                RAISE EXCEPTION 'subject % is refused', NEW.subject USING ERRCODE = 'check_violation';
            END IF;
            IF NEW.subject LIKE 'flaky-%' AND nextval('test_flaky_attempts') <= 2 THEN
                RAISE EXCEPTION 'could not serialize access' USING ERRCODE = 'serialization_failure';
            END IF;
            RETURN NEW;
        END $$""")
    await execute("CREATE TRIGGER test_refuse_or_fail BEFORE INSERT ON events FOR EACH ROW "
                  "EXECUTE FUNCTION test_refuse_or_fail()")
    yield
    await execute("DROP TRIGGER test_refuse_or_fail ON events")


def vm() -> str:
    return f"vm-{uuid.uuid4().hex[:8]}"


async def test_an_event_the_database_refuses_is_a_dead_letter_and_the_rest_of_its_batch_counts(
        apps, worker, window, producer, settings, refusing_trigger):
    good = [usage_event(vm(), "compute.vcpu", "1", window + timedelta(hours=i)) for i in range(9)]
    poison = usage_event(f"poison-{uuid.uuid4().hex[:8]}", "compute.vcpu", "1", window)
    batch = [*good[:4], poison, *good[4:]]
    await producer.send_and_wait(settings.events_topic, orjson.dumps(batch))
    await wait_stored(good, worker)
    letters = await wait_until(lambda: dead_letters(event_id=poison["id"]), worker=worker)
    assert letters[0]["reason"] == "refused by the database"
    assert "SQLSTATE 23514" in letters[0]["errors"][0] and "is refused" in letters[0]["errors"][0]
    assert await stored_count([poison]) == 0
    # and the provider can list it, with the raw event
    response = await apps["metering"].get("/v1/dead-letters", params={"reason": "refused by the database"},
                                          headers=PROVIDER)  # the provider of that source
    assert response.status_code == 200, response.text
    listed = [d for d in response.json()["dead_letters"] if d["event_id"] == poison["id"]]
    assert orjson.loads(listed[0]["payload"]) == poison


async def test_a_transient_failure_is_retried_and_never_dead_lettered(apps, worker, window, producer, settings,
                                                                     refusing_trigger):
    flaky = usage_event(f"flaky-{uuid.uuid4().hex[:8]}", "compute.vcpu", "1", window)
    neighbour = usage_event(vm(), "compute.vcpu", "1", window)
    await producer.send_and_wait(settings.events_topic, orjson.dumps([flaky, neighbour]))
    await wait_stored([flaky, neighbour], worker)
    assert await dead_letters(event_id=flaky["id"]) == []
    assert "retrying" in worker.log_tail(400)


async def test_dead_letters_are_listed_for_the_provider_and_admin_only_and_page(apps, worker, producer, settings):
    mark = uuid.uuid4().hex[:8]  # other tests file invalid JSON too: wait for this test's own three records
    payloads = {f'{{"not json {mark} {i}' for i in range(3)}
    for payload in sorted(payloads):
        await producer.send_and_wait(settings.events_topic, payload.encode())

    async def all_filed():
        letters = await dead_letters(reason="invalid JSON")
        return letters if payloads <= {d["payload"] for d in letters} else None

    letters = await wait_until(all_filed, worker=worker)
    first = (await apps["metering"].get("/v1/dead-letters", params={"limit": 1, "reason": "invalid JSON"},
                                        headers=ADMIN)).json()
    assert len(first["dead_letters"]) == 1 and first["next_after_id"] is not None
    second = (await apps["metering"].get("/v1/dead-letters", headers=ADMIN, params={
        "limit": 1, "reason": "invalid JSON", "after_id": first["next_after_id"]})).json()
    assert second["dead_letters"][0]["id"] > first["dead_letters"][0]["id"]
    everything = (await apps["metering"].get("/v1/dead-letters", params={"reason": "invalid JSON", "limit": 1000},
                                             headers=ADMIN)).json()["dead_letters"]
    assert payloads <= {d["payload"] for d in everything}  # the raw records
    assert len(letters) >= 3
    for headers in (FINANCE, auth("department", "dep-x")):
        assert (await apps["metering"].get("/v1/dead-letters", headers=headers)).status_code == 403
    # a provider sees only its own sources' letters: not another collector's, not sourceless records
    other = (await apps["metering"].get("/v1/dead-letters", params={"reason": "invalid JSON"},
                                        headers=auth("provider", sources=("urn:other",)))).json()
    assert other["dead_letters"] == []
    bad = await apps["metering"].get("/v1/dead-letters", params={"source": "a\x00b"}, headers=ADMIN)
    assert bad.status_code == 422 and "source" in bad.text


# -- generated hostile input, through the real worker and the real API ---------------------------------------------

def nested(depth: int) -> object:
    value: object = "x"
    for _ in range(depth):
        value = {"k": value}
    return value


BIG = "__a number beyond 64 bits__"  # orjson writes no such number: spliced into the bytes below
odd_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=300) | st.sampled_from(
    ["\x00", "a\x00b", "\u202eevil", "=HYPERLINK(\"http://x\",\"点击\")", "\ufeff", "\U0001F600" * 200, "x" * 5000,
     "１２３", "\r\n", "\x85", "ǅ" * 257])
odd_number = st.sampled_from([1e308, -1.0, 0.0, 2**63 - 1, BIG, "1e400", "NaN", "-0",
                              "١٢٣", "1_000", "0x10", "", " 1"])
odd_instant = st.sampled_from(["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "1999-12-31T23:59:59Z",
                               "2026-13-01T00:00:00Z", "2026-10-01T00:00:00", "yesterday", 1e12, None])
FIELDS = ["id", "source", "subject", "time", "type", "specversion", "data", "data.meter", "data.quantity",
          "data.start", "data.end", "data.attributes", "extension"]


@st.composite
def hostile_input(draw) -> tuple[str, bytes]:
    """(how it travels, the bytes): an event with one field made hostile, or a record that is no event at all."""
    kind = draw(st.sampled_from(["field", "field", "field", "raw"]))
    if kind == "raw":
        body = draw(st.sampled_from([b"\xff\xfe not utf-8", b"[" * 600 + b"]" * 600, b"[" * 2000 + b"]" * 2000,
                                     b'{"type": ["gov.cloud.usage.v1"]}', b'"just a string"', b"", b"null",
                                     b'{"k":' * 600 + b"1" + b"}" * 600, b'{"a":' * 300 + b"1" + b"}" * 300]))
        return draw(st.sampled_from(["kafka", "http"])), body
    field = draw(st.sampled_from(FIELDS))
    value = draw(odd_text | odd_number | odd_instant | st.just(nested(40)) | st.just(["gov.cloud.usage.v1"]))
    event = usage_event(f"vm-{uuid.uuid4().hex[:8]}", "compute.vcpu", "1", datetime(2031, 6, 1, tzinfo=UTC))
    target, _, last = field.rpartition(".")
    (event["data"] if target == "data" else event)[last] = value
    body = orjson.dumps(event).replace(f'"{BIG}"'.encode(), b"123456789012345678901234567890")
    return draw(st.sampled_from(["kafka", "http"])), body


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=hostile_input())
async def test_hostile_input_is_a_dead_letter_or_a_4xx_and_the_good_event_after_it_counts(
        apps, worker, producer, settings, case):
    via, body = case
    pid = worker.process.pid
    if via == "kafka":
        sent = await producer.send_and_wait(settings.events_topic, body)
    else:
        response = await apps["metering"].post("/v1/events", content=body,
                                               headers={**PROVIDER, "content-type": "application/json"})
        assert response.status_code in (202, 400, 403, 413, 422), response.text  # 403: a source not the token's
    good = usage_event(f"vm-{uuid.uuid4().hex[:8]}", "compute.vcpu", "1", datetime(2031, 7, 1, tzinfo=UTC))
    assert (await post_events(apps["metering"], [good])).status_code == 202
    await wait_stored([good], worker, timeout=60)
    if via == "kafka":  # the hostile record was judged: counted (if it was in fact valid) or filed
        async def judged():
            async with get_engine().connect() as conn:
                filed = (await conn.execute(text(
                    'SELECT count(*) FROM dead_letters WHERE topic = :t AND partition = :p AND "offset" = :o'),
                    {"t": settings.events_topic, "p": sent.partition, "o": sent.offset})).scalar_one()
            if filed:
                return filed
            try:
                event = orjson.loads(body)
            except orjson.JSONDecodeError:
                return None
            if isinstance(event, dict) and isinstance(event.get("id"), str) and isinstance(event.get("source"), str):
                return await stored_count([event]) if "\x00" not in event["id"] + event["source"] else None
            return None

        assert await wait_until(judged, timeout=60, worker=worker)
    assert worker.process.poll() is None and worker.process.pid == pid  # the worker never restarted


# -- the broker away ------------------------------------------------------------------------------------------------

async def test_with_the_broker_away_ingest_answers_503_with_retry_after_within_the_bound(apps, settings):
    from services.common.kafka import ensure_topics, start_producer
    from services.metering.api import app as metering_app

    broker = Broker()  # of this test's own, on free ports: stopping it harms no one
    await asyncio.to_thread(broker.start)
    private = settings.model_copy(update={"kafka_bootstrap_servers": broker.bootstrap})
    await ensure_topics(private)
    shared_producer, metering_app.state.producer = metering_app.state.producer, await start_producer(private)
    try:
        first = usage_event(vm(), "compute.vcpu", "1", datetime(2031, 8, 1, tzinfo=UTC))
        assert (await post_events(apps["metering"], [first])).status_code == 202

        await asyncio.to_thread(broker.stop)
        event = usage_event(vm(), "compute.vcpu", "1", datetime(2031, 8, 1, tzinfo=UTC))
        began = time.monotonic()
        response = await post_events(apps["metering"], [event])
        waited = time.monotonic() - began
        assert response.status_code == 503, response.text
        assert waited < settings.ingest_ack_timeout_seconds + 2  # the documented bound, and some slack for 2 cores
        assert int(response.headers["retry-after"]) >= 1
        assert "send the same events again" in response.json()["detail"]

        await asyncio.to_thread(broker.start)
        resent = await post_events(apps["metering"], [event])  # the provider resends the same ids
        assert resent.status_code == 202, resent.text
    finally:
        await metering_app.state.producer.stop()
        metering_app.state.producer = shared_producer
        await asyncio.to_thread(broker.destroy)
