"""End to end over real Apache Kafka and PostgreSQL: provider events → worker → rollups → /v1/usage."""

from __future__ import annotations

import uuid
from collections import defaultdict
from decimal import Decimal
from fractions import Fraction
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from sqlalchemy import text
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.common.db import get_engine
from services.common.periods import LOCAL_TZ, local_day_of
from services.demo.rate_cards import propose_and_approve
from tests.integration.support import ADMIN, FINANCE, PROVIDER, auth, dead_letters, lifecycle_event, post_events, \
    stored_count, usage_event, usage_rows, wait_stored, wait_until

pytestmark = pytest.mark.usefixtures("worker")


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def setup_department(apps, name="市财政局") -> str:
    department = new_id("dep")
    response = await apps["billing"].post("/v1/departments", json={"id": department, "name": name}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return department


async def setup_rate_card(apps, effective_from, **prices) -> dict:
    body = {"version": new_id("rc"), "effective_from": effective_from.isoformat(), "currency": "CNY",
            "prices": {k.replace("_", "."): v for k, v in prices.items()}}
    response = await propose_and_approve(apps["billing"], body)
    assert response.status_code == 201, response.text
    return response.json()


async def publish(apps, events, worker):
    response = await post_events(apps["metering"], events)
    assert response.status_code == 202, response.text
    await wait_stored(events, worker)
    return response.json()


def day_params(window, days=3, **extra):
    start = local_day_of(window)
    return {"from": str(start), "to": str(start + timedelta(days=days)), **extra}


async def test_usage_posted_over_http_is_rated_and_queryable_to_the_fen(apps, worker, window):
    department = await setup_department(apps)
    await setup_rate_card(apps, window, compute_vcpu="0.12", compute_memory="0.05")
    vm = new_id("vm")
    t = window + timedelta(hours=2)
    events = [
        lifecycle_event(vm, "activated", department, window),
        usage_event(vm, "compute.vcpu", "4.5", t),
        usage_event(vm, "compute.memory", "16.333", t),
    ]
    result = await publish(apps, events, worker)
    assert result == {"accepted": 3, "rejected": []}

    rows = await usage_rows(apps["query"], FINANCE, **day_params(window, group_by="department,meter"))
    assert rows == [
        {"period_start": rows[0]["period_start"], "department_id": department, "meter": "compute.memory",
         "unit": "GiB-hour", "quantity": "16.333", "amount": "0.82"},  # 0.81665 → 0.82, half-up
        {"period_start": rows[0]["period_start"], "department_id": department, "meter": "compute.vcpu",
         "unit": "vCPU-hour", "quantity": "4.5", "amount": "0.54"},
    ]
    hourly = await usage_rows(apps["query"], FINANCE, **day_params(window, group_by="resource,system",
                                                                  granularity="hour", department=department))
    assert [(r["period_start"], r["resource_id"], r["system"], r["amount"]) for r in hourly] == [
        (t.astimezone(LOCAL_TZ).isoformat(), vm, "政务服务平台", "1.36")
    ]


async def test_the_same_event_twice_in_a_batch_or_a_week_apart_is_counted_once(apps, worker, window):
    department = await setup_department(apps)
    await setup_rate_card(apps, window, compute_vcpu="1.00")
    vm = new_id("vm")
    once = usage_event(vm, "compute.vcpu", "2", window + timedelta(hours=1))
    await publish(apps, [lifecycle_event(vm, "activated", department, window), once, once], worker)
    # later: the provider re-sends it (same source and id, same content, keys in another order)
    again = dict(reversed(list(once.items())))
    marker = usage_event(vm, "compute.vcpu", "0.5", window + timedelta(hours=3))
    await publish(apps, [again, marker], worker)
    rows = await usage_rows(apps["query"], FINANCE, **day_params(window, department=department))
    assert [(r["quantity"], r["amount"]) for r in rows] == [("2.5", "2.50")]


async def test_instants_are_stored_exactly_however_they_are_spelled(apps, worker, window):
    """The worker sends instants to PostgreSQL as text (remembered per spelling); each stored column must be the
    very instant pydantic validated, whatever offset, fraction or 'Z' the provider wrote."""
    vm = new_id("vm")
    utc_start = window.astimezone(UTC) + timedelta(hours=1, microseconds=500_000)
    utc_end = utc_start + timedelta(minutes=5)
    newfoundland = timezone(timedelta(hours=-3, minutes=-30))
    spellings = [
        (utc_start.isoformat(), utc_end.astimezone(LOCAL_TZ).isoformat()),
        (utc_start.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), utc_end.strftime("%Y-%m-%dT%H:%M:%S.%f+0000")),
        (utc_start.astimezone(newfoundland).isoformat(), utc_end.isoformat()),
    ]
    events = []
    for start, end in spellings * 2:  # each spelling twice in the batch: the second comes from the memo
        event = usage_event(vm, "compute.vcpu", "1", window)
        event["data"]["start"], event["data"]["end"], event["time"] = start, end, end
        events.append(event)
    await publish(apps, events, worker)
    async with get_engine().connect() as conn:
        rows = (await conn.execute(text("SELECT DISTINCT event_time, start_at, end_at FROM events WHERE subject = :vm"),
                                   {"vm": vm})).all()
    assert rows == [(utc_end, utc_start, utc_end)]


async def test_a_conflicting_duplicate_is_not_counted_and_is_kept_with_its_reason(apps, worker, window):
    department = await setup_department(apps)
    await setup_rate_card(apps, window, compute_vcpu="1.00")
    vm = new_id("vm")
    original = usage_event(vm, "compute.vcpu", "3", window)
    await publish(apps, [lifecycle_event(vm, "activated", department, window), original], worker)
    changed = dict(original, data=dict(original["data"], quantity="30"))
    marker = usage_event(vm, "compute.vcpu", "1", window + timedelta(hours=5))
    await publish(apps, [changed, marker], worker)
    rows = await usage_rows(apps["query"], FINANCE, **day_params(window, department=department))
    assert [(r["quantity"], r["amount"]) for r in rows] == [("4", "4.00")]
    letters = await dead_letters(event_id=original["id"])
    assert [(d["reason"], orjson.loads(d["payload"])["data"]["quantity"]) for d in letters] == [
        ("conflicting duplicate", "30")
    ]


async def test_usage_before_its_lifecycle_event_is_unattributed_then_attributed(apps, worker, window):
    department = await setup_department(apps)
    await setup_rate_card(apps, window, compute_vcpu="0.50")
    vm = new_id("vm")
    early = [usage_event(vm, "compute.vcpu", "2", window + timedelta(hours=h)) for h in (1, 2)]
    await publish(apps, early, worker)
    params = day_params(window, group_by="department")
    rows = await usage_rows(apps["query"], FINANCE, **params)
    assert {"period_start": rows[0]["period_start"], "department_id": None, "quantity": "4", "amount": "2.00"} in rows
    assert department not in {r["department_id"] for r in rows}

    # the lifecycle event arrives late but covers the usage: it is attributed from its effective instant on
    await publish(apps, [lifecycle_event(vm, "activated", department, window + timedelta(hours=2))], worker)
    mine = await usage_rows(apps["query"], FINANCE, **day_params(window, group_by="department",
                                                                 department=department))
    assert [(r["quantity"], r["amount"]) for r in mine] == [("2", "1.00")]
    await publish(apps, [lifecycle_event(vm, "activated", department, window, event_id=new_id("late"))], worker)
    mine = await usage_rows(apps["query"], FINANCE, **day_params(window, department=department))
    assert [(r["quantity"], r["amount"]) for r in mine] == [("4", "2.00")]


async def test_usage_follows_the_owner_at_each_slice_time_through_change_and_termination(apps, worker, window):
    first, second = await setup_department(apps), await setup_department(apps, "市教育局")
    await setup_rate_card(apps, window, compute_vcpu="1.00")
    vm = new_id("vm")
    events = [
        lifecycle_event(vm, "activated", first, window),
        lifecycle_event(vm, "changed", second, window + timedelta(hours=2)),
        lifecycle_event(vm, "terminated", None, window + timedelta(hours=4)),
        # one event over four hours: two belong to the first owner, two to the second
        usage_event(vm, "compute.vcpu", "8", window, window + timedelta(hours=4)),
        # after termination nobody owns it: kept unattributed
        usage_event(vm, "compute.vcpu", "1", window + timedelta(hours=5)),
    ]
    # an owner change inside an hour: a slice belongs to the owner at its start, not at its hour's start
    other = new_id("vm")
    events += [
        lifecycle_event(other, "activated", first, window),
        lifecycle_event(other, "changed", second, window + timedelta(hours=1, minutes=30)),
        usage_event(other, "compute.vcpu", "2", window + timedelta(hours=1, minutes=10),
                    window + timedelta(hours=1, minutes=20)),  # the first's
        usage_event(other, "compute.vcpu", "3", window + timedelta(hours=1, minutes=40),
                    window + timedelta(hours=1, minutes=50)),  # the second's
    ]
    await publish(apps, events, worker)
    rows = await usage_rows(apps["query"], FINANCE, **day_params(window, group_by="department"))
    by_department = {r["department_id"]: (r["quantity"], r["amount"]) for r in rows}
    assert by_department[first] == ("6", "6.00")
    assert by_department[second] == ("7", "7.00")


async def test_an_event_straddling_a_local_month_end_is_split_into_both_months(apps, worker):
    month_end = datetime(2041, 1, 1, tzinfo=LOCAL_TZ)  # local midnight, 16:00 UTC the day before
    department = await setup_department(apps)
    await setup_rate_card(apps, month_end - timedelta(days=1), storage_block="0.001")
    volume = new_id("vol")
    events = [
        lifecycle_event(volume, "activated", department, month_end - timedelta(days=1), kind="volume"),
        usage_event(volume, "storage.block", "300", month_end - timedelta(minutes=30),
                    month_end + timedelta(minutes=60), tier="ssd"),
    ]
    await publish(apps, events, worker)
    rows = await usage_rows(apps["query"], FINANCE, **{"from": "2040-12-01", "to": "2041-02-01",
                                                       "granularity": "month", "department": department})
    assert [(r["period_start"], r["quantity"], r["amount"]) for r in rows] == [
        ("2040-12-01T00:00:00+08:00", "100", "0.10"),
        ("2041-01-01T00:00:00+08:00", "200", "0.20"),
    ]


async def test_a_rate_card_starting_mid_month_reprices_from_that_instant_even_for_stored_usage(apps, worker, window):
    department = await setup_department(apps)
    await setup_rate_card(apps, window, compute_vcpu="0.10")
    vm = new_id("vm")
    events = [lifecycle_event(vm, "activated", department, window)] + [
        usage_event(vm, "compute.vcpu", "1", window + timedelta(days=14, hours=h)) for h in range(4)
    ]
    await publish(apps, events, worker)
    params = day_params(window, days=20, department=department)
    assert [r["amount"] for r in await usage_rows(apps["query"], FINANCE, **params)] == ["0.40"]
    # a new card from the 2nd hour of that day on: the last two hours are re-priced, the first two are not
    await setup_rate_card(apps, window + timedelta(days=14, hours=2), compute_vcpu="0.25")
    assert [r["amount"] for r in await usage_rows(apps["query"], FINANCE, **params)] == ["0.70"]
    # and usage arriving afterwards is priced by the card in force at its time
    await publish(apps, [usage_event(vm, "compute.vcpu", "2", window + timedelta(days=14, hours=6))], worker)
    assert [r["amount"] for r in await usage_rows(apps["query"], FINANCE, **params)] == ["1.20"]
    # a card starting inside an hour prices the slices that start at or after it, not the whole hour: stored
    # usage from 10:45 to 11:45 (2 units, 0.25: 0.50) is re-priced to 0.50 a unit by a card from 10:30
    day = window + timedelta(days=14)
    await publish(apps, [usage_event(vm, "compute.vcpu", "2", day + timedelta(hours=10, minutes=45),
                                     day + timedelta(hours=11, minutes=45))], worker)
    assert [r["amount"] for r in await usage_rows(apps["query"], FINANCE, **params)] == ["1.70"]
    await setup_rate_card(apps, day + timedelta(hours=10, minutes=30), compute_vcpu="0.50")
    assert [r["amount"] for r in await usage_rows(apps["query"], FINANCE, **params)] == ["2.20"]
    # new usage from 10:20 to 10:40: its one slice starts before the card (0.25), 2 units: 0.50
    await publish(apps, [usage_event(vm, "compute.vcpu", "2", day + timedelta(hours=10, minutes=20),
                                     day + timedelta(hours=10, minutes=40))], worker)
    assert [r["amount"] for r in await usage_rows(apps["query"], FINANCE, **params)] == ["2.70"]


async def test_unpriced_meters_are_rated_zero_and_reported(apps, worker, window):
    department = await setup_department(apps)
    await setup_rate_card(apps, window, compute_vcpu="0.10")
    vm = new_id("vm")
    await publish(apps, [lifecycle_event(vm, "activated", department, window),
                         usage_event(vm, "compute.gpu", "2", window)], worker)
    rows = await usage_rows(apps["query"], FINANCE, **day_params(window, department=department, group_by="meter"))
    assert rows == [{"period_start": rows[0]["period_start"], "meter": "compute.gpu", "unit": "GPU-hour",
                     "quantity": "2", "amount": "0.00", "unpriced_quantity": "2"}]


async def test_events_produced_straight_to_kafka_are_validated_the_same_way(apps, worker, window, settings):
    department = await setup_department(apps)
    await setup_rate_card(apps, window, network_egress="0.50")
    ip = new_id("ip")
    good_single = usage_event(ip, "network.egress", "10", window)
    good_batch = [lifecycle_event(ip, "activated", department, window, kind="ip"),
                  usage_event(ip, "network.egress", "1.25", window + timedelta(hours=1))]
    bad = usage_event(ip, "network.egres", "1", window)
    mixed = [bad, usage_event(ip, "network.egress", "0.75", window + timedelta(hours=2))]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for value in (orjson.dumps(good_single), orjson.dumps(good_batch), b"{not json", orjson.dumps(mixed)):
            await producer.send_and_wait(settings.events_topic, value)
    finally:
        await producer.stop()
    await wait_stored([good_single, *good_batch, mixed[1]], worker)
    rows = await usage_rows(apps["query"], FINANCE, **day_params(window, department=department))
    assert [(r["quantity"], r["amount"]) for r in rows] == [("12", "6.00")]

    letters = await wait_until(lambda: dead_letters(event_id=bad["id"]), worker=worker)
    assert letters[0]["reason"] == "invalid event"
    assert any(e.startswith("data.meter: Input should be") for e in letters[0]["errors"])

    # the dead letters also go to the dead-letter topic, with their reasons
    consumer = AIOKafkaConsumer(settings.dead_letter_topic, bootstrap_servers=settings.kafka_bootstrap_servers,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        reasons: dict[str | None, str] = {}

        async def seen_both():
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                for message in messages:
                    letter = orjson.loads(message.value)
                    reasons[letter["id"]] = letter["reason"]
            return bad["id"] in reasons and "invalid JSON" in reasons.values()

        await wait_until(seen_both, worker=worker)
        assert reasons[bad["id"]] == "invalid event"
    finally:
        await consumer.stop()


async def test_a_department_reads_only_its_own_usage(apps, worker, window):
    mine, theirs = await setup_department(apps), await setup_department(apps, "市公安局")
    await setup_rate_card(apps, window, compute_vcpu="1.00")
    vm_mine, vm_theirs, vm_nobody = new_id("vm"), new_id("vm"), new_id("vm")
    await publish(apps, [
        lifecycle_event(vm_mine, "activated", mine, window),
        lifecycle_event(vm_theirs, "activated", theirs, window),
        usage_event(vm_mine, "compute.vcpu", "1", window),
        usage_event(vm_theirs, "compute.vcpu", "7", window),
        usage_event(vm_nobody, "compute.vcpu", "5", window),
    ], worker)
    token = auth("department", mine)
    params = day_params(window, group_by="department,resource")
    rows = await usage_rows(apps["query"], token, **params)
    assert {(r["department_id"], r["resource_id"]) for r in rows} == {(mine, vm_mine)}
    totals = await usage_rows(apps["query"], token, **day_params(window))
    assert [r["quantity"] for r in totals] == ["1"]
    forbidden = await apps["query"].get("/v1/usage", params={**params, "department": theirs}, headers=token)
    assert forbidden.status_code == 403
    assert "department" in forbidden.json()["detail"]
    departments = await apps["billing"].get("/v1/departments", headers=token)
    assert [d["id"] for d in departments.json()] == [mine]
    everyone = await usage_rows(apps["query"], FINANCE, **params)
    assert {r["department_id"] for r in everyone} >= {mine, theirs, None}


async def test_bad_http_input_gets_a_clear_error_naming_the_field(apps, window):
    metering = apps["metering"]
    not_json = await metering.post("/v1/events", content=b"{oops", headers={**PROVIDER, "content-type": "application/json"})
    assert not_json.status_code == 400 and "body" in not_json.json()["detail"]

    bad = usage_event("vm-x", "compute.vcpu", "-1", window)
    all_bad = await post_events(metering, [bad])
    assert all_bad.status_code == 422
    assert all_bad.json()["rejected"][0]["id"] == bad["id"]
    assert all_bad.json()["rejected"][0]["errors"][0].startswith("data.quantity:")

    good = usage_event("vm-x", "compute.vcpu", "1", window)
    partly = await post_events(metering, [good, {"specversion": "1.0"}, bad],
                               content_type="application/cloudevents-batch+json")
    assert partly.status_code == 202
    body = partly.json()
    assert body["accepted"] == 1
    assert [r["index"] for r in body["rejected"]] == [1, 2]
    assert body["rejected"][0]["errors"][0].startswith("type: must be one of")

    single = await post_events(metering, good, content_type="application/cloudevents+json")
    assert single.status_code == 202 and single.json()["accepted"] == 1

    assert (await metering.post("/v1/events", json=[good])).status_code == 401
    assert (await metering.post("/v1/events", json=[good], headers={"Authorization": "Bearer nope"})).status_code == 401
    assert (await post_events(metering, [good], headers=FINANCE)).status_code == 403
    assert (await apps["billing"].post("/v1/departments", json={"id": "x", "name": "y"},
                                       headers=FINANCE)).status_code == 403

    query = apps["query"]
    cases = [
        ({"from": "2026-11-01", "to": "2026-12-01", "group_by": "colour"}, "group_by"),
        ({"from": "2026-11-01", "to": "2026-12-01", "granularity": "week"}, "granularity"),
        ({"from": "yesterday", "to": "2026-12-01"}, "from"),
        ({"from": "2026-11-01T00:00:00", "to": "2026-12-01"}, "from"),
        ({"from": "2026-12-01", "to": "2026-11-01"}, "to"),
        ({"from": "2026-11-01", "to": "2026-12-01", "meter": "compute.cpu"}, "meter"),
    ]
    for params, field in cases:
        response = await query.get("/v1/usage", params=params, headers=FINANCE)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["detail"].startswith(f"{field}:"), response.text

    billing = apps["billing"]
    bad_card = await billing.post("/v1/rate-cards", headers=ADMIN, json={
        "version": "x", "effective_from": "2026-11-01T00:00:00+08:00", "prices": {"compute.cpu": "1"}})
    assert bad_card.status_code == 422 and "compute.cpu" in bad_card.text
    too_precise = await billing.post("/v1/rate-cards", headers=ADMIN, json={
        "version": "y", "effective_from": "2026-11-01T00:00:00+08:00", "prices": {"compute.vcpu": "0.1234567"}})
    assert too_precise.status_code == 422 and "6 decimal places" in too_precise.text


async def test_a_rate_card_version_and_a_department_id_are_unique(apps, window):
    card = await setup_rate_card(apps, window, compute_vcpu="0.1")
    again = await apps["billing"].post("/v1/rate-cards", headers=ADMIN, json={
        "version": card["version"], "effective_from": window.isoformat(), "prices": {"compute.vcpu": "0.2"}})
    assert again.status_code == 409 and again.json()["detail"].startswith("version:")
    listed = await apps["billing"].get("/v1/rate-cards", headers=FINANCE)
    assert card["version"] in [c["version"] for c in listed.json()]
    assert "compute.gpu" in card["unpriced_meters"]
    department = await setup_department(apps)
    twice = await apps["billing"].post("/v1/departments", json={"id": department, "name": "x"}, headers=ADMIN)
    assert twice.status_code == 409


async def test_health_checks_report_database_and_broker(apps):
    for client in apps.values():
        response = await client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "database": True, "broker": True}


@pytest.mark.slow
async def test_worker_killed_mid_stream_counts_every_event_exactly_once(apps, worker, window, settings):
    department = await setup_department(apps)
    await setup_rate_card(apps, window, compute_vcpu="0.01")
    vms = [new_id("vm") for _ in range(20)]
    await publish(apps, [lifecycle_event(vm, "activated", department, window) for vm in vms], worker)
    events = [usage_event(vms[i % 20], "compute.vcpu", "1", window + timedelta(minutes=i % 5000))
              for i in range(60_000)]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all",
                                max_request_size=2_000_000)
    await producer.start()
    try:
        for i in range(0, len(events), 250):
            await producer.send(settings.events_topic, orjson.dumps(events[i:i + 250]))
        await producer.flush()
    finally:
        await producer.stop()

    async def partly_done():
        return 0 < await stored_count(events) < len(events)

    await wait_until(partly_done, interval=0.02, worker=worker)
    worker.kill()  # mid-stream: offsets of the batch in flight (and maybe more) are not committed
    assert await stored_count(events) < len(events)
    worker.start()
    await wait_stored(events, worker, stall=180)  # after a group rejoin: waits while events keep landing
    rows = await usage_rows(apps["query"], FINANCE, **day_params(window, days=10, department=department))
    assert [(r["quantity"], r["amount"]) for r in rows] == [("60000", "600.00")]


def half_up_fen(value: Fraction) -> str:
    """A reference rounding, independent of schemas.money: exact fraction → yuan text, half-up."""
    sign = "-" if value < 0 else ""
    fen = int(abs(value) * 100 + Fraction(1, 2))  # floor(x + ½) of the absolute value: half away from zero
    return f"{sign}{fen // 100}.{fen % 100:02d}"


async def test_every_rollup_gives_the_same_figures_for_the_same_usage(apps, worker):
    """/v1/usage answers from the hourly, daily, department-daily or monthly rollup depending on the question;
    every row of every answer must carry the amount worked out here, independently, to the fen."""
    month = datetime(2043, 3, 1, tzinfo=LOCAL_TZ)
    department = await setup_department(apps)
    await setup_rate_card(apps, month, compute_vcpu="0.013", storage_object="0.0007")
    vm, bucket = new_id("vm"), new_id("bkt")
    events = [lifecycle_event(vm, "activated", department, month, system="门户网站"),
              lifecycle_event(bucket, "activated", department, month, kind="bucket", system="档案系统")]
    # expected exact amounts (fractions of a yuan) per local hour, split in proportion to minutes of overlap
    price = {vm: Fraction("0.013"), bucket: Fraction("0.0007")}
    meter = {vm: "compute.vcpu", bucket: "storage.object"}
    system = {vm: "门户网站", bucket: "档案系统"}
    hourly: dict[tuple[datetime, str], Fraction] = defaultdict(Fraction)
    for day in range(0, 31, 3):
        t = month + timedelta(days=day, hours=day % 24, minutes=7)
        for resource, quantity, minutes in ((vm, f"{day + 1}.333", 120), (bucket, f"{day * 10}.5", 60)):
            events.append(usage_event(resource, meter[resource], quantity, t, t + timedelta(minutes=minutes)))
            hour, left = t.replace(minute=0), minutes
            first = 53  # 07 past the hour to the next hour
            for overlap in (first, *([60] * ((left - first) // 60)), (left - first) % 60):
                if overlap:
                    hourly[hour, resource] += Fraction(quantity) * overlap / minutes * price[resource]
                hour += timedelta(hours=1)
    await publish(apps, events, worker)

    def expected(key) -> dict:
        sums: dict = defaultdict(Fraction)
        for (hour, resource), amount in hourly.items():
            sums[key(hour, resource)] += amount
        return {k: half_up_fen(v) for k, v in sums.items()}

    span = {"from": "2043-03-01", "to": "2043-04-01", "department": department}

    async def answer(fields, **params) -> dict:
        rows = await usage_rows(apps["query"], FINANCE, **span, **params)
        return {tuple(r[f] for f in fields): r["amount"] for r in rows}

    local_day = lambda hour: hour.date().isoformat()  # noqa: E731  (the hours are local already)
    cases = [
        ({"group_by": "resource"}, ("resource_id",), lambda h, r: (r,)),
        ({"group_by": "system"}, ("system",), lambda h, r: (system[r],)),
        ({"group_by": "meter"}, ("meter",), lambda h, r: (meter[r],)),
        ({"group_by": "department"}, ("department_id",), lambda h, r: (department,)),
        ({}, (), lambda h, r: ()),
        ({"granularity": "month", "group_by": "meter"}, ("meter",), lambda h, r: (meter[r],)),
        ({"granularity": "day"}, ("period_start",), lambda h, r: (local_day(h),)),
        ({"granularity": "day", "group_by": "meter,system"}, ("period_start", "meter", "system"),
         lambda h, r: (local_day(h), meter[r], system[r])),
        ({"granularity": "day", "group_by": "department"}, ("period_start", "department_id"),
         lambda h, r: (local_day(h), department)),
        ({"granularity": "hour", "group_by": "resource"}, ("period_start", "resource_id"),
         lambda h, r: (h.isoformat(), r)),
    ]
    for params, fields, key in cases:
        got = await answer(fields, **params)
        if "period_start" in fields and params["granularity"] == "day":
            got = {(k[0][:10], *k[1:]): v for k, v in got.items()}
        assert got == expected(key), params
    # and the reference itself, by hand: 179.663 vCPU-hours × 0.013 + 1,655.5 GiB-hours × 0.0007 = 3.494469
    assert expected(lambda h, r: ()) == {(): "3.49"} and len(hourly) == 11 * 3 + 11 * 2
