"""Operating govmeter: Prometheus /metrics on each API and on the real worker, parsed with Prometheus's own text
parser after real requests and events; JSON logs with request ids that follow events from the API into the
worker's batch log; no token in any log line."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import timedelta

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import REPO, free_port
from tests.integration.support import ADMIN, FINANCE, PROVIDER, SOURCE, auth, lifecycle_event, post_events, \
    usage_event, wait_stored, wait_until
from tests.integration.test_billing import clock, department, local, new_id, rate_card

pytestmark = pytest.mark.usefixtures("worker")


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a scrape, keyed by (sample name, labels)."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(scrape: dict, name: str, **labels) -> float:
    return scrape.get((name, frozenset(labels.items())), 0.0)


def total(scrape: dict, name: str, **labels) -> float:
    """The sum over every sample of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in scrape.items() if n == name and wanted <= have)


async def scrape(client) -> dict:
    response = await client.get("/metrics")  # no token: /metrics needs none
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def scrape_worker(worker) -> dict:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{worker.metrics_port}/metrics", timeout=5)
    assert response.status_code == 200
    return samples(response.text)


@dataclass
class Posted:
    """What the module's metrics tests share: scrapes taken before anything moved, and one request's events."""
    year: int
    metering: dict
    billing: dict
    query: dict
    worker: dict
    department: str
    vm: str
    events: list
    request_id: str


@pytest.fixture(scope="module")
async def posted(apps, worker, settings) -> Posted:
    """Scrape every API and the worker, then post a department's January through the metering API (one invalid
    event among them, under a request id) and produce an invalid record straight into Kafka."""
    # A year no other test uses, before those whose tests list a department's bills after this test (a close
    # adds the next month's draft to every department active then); the VM is terminated within January.
    year = 2068
    metering, billing, query = [await scrape(apps[name]) for name in ("metering", "billing", "query")]
    async def first_worker_scrape():
        try:
            return await scrape_worker(worker)
        except httpx.HTTPError:
            return None
    before_worker = await wait_until(first_worker_scrape, timeout=60, worker=worker)

    dep = await department(apps)
    await rate_card(apps, local(year, 1, 1), compute_vcpu="1.00")
    vm = new_id("vm")
    events = [lifecycle_event(vm, "activated", dep, local(year, 1, 1)),
              *(usage_event(vm, "compute.vcpu", "2", local(year, 1, 2) + timedelta(hours=h)) for h in range(3)),
              lifecycle_event(vm, "terminated", None, local(year, 1, 5))]
    bad = {**usage_event(vm, "compute.vcpu", "-1", local(year, 1, 2)), "id": "bad-" + uuid.uuid4().hex}
    request_id = f"ops-test-{uuid.uuid4().hex}"
    answer = await apps["metering"].post("/v1/events", content=orjson.dumps([*events, bad]),
                                         headers={**PROVIDER, "content-type": "application/json",
                                                  "X-Request-ID": request_id})
    assert answer.status_code == 202, answer.text
    assert answer.headers["x-request-id"] == request_id
    await wait_stored(events, worker)
    # An invalid event produced straight into Kafka: a dead letter by the worker (of a source of its own, so that
    # no other test's listing of dead letters meets it).
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(settings.events_topic, orjson.dumps(
            {"specversion": "1.0", "id": uuid.uuid4().hex, "source": f"urn:test:ops-{uuid.uuid4().hex[:8]}",
             "type": "gov.cloud.nothing.v1"}))
    finally:
        await producer.stop()
    return Posted(year, metering, billing, query, before_worker, dep, vm, events, request_id)


async def test_the_metering_api_counts_accepted_and_refused_events_and_times_the_request(apps, posted):
    before, after = posted.metering, await scrape(apps["metering"])
    assert value(after, "govmeter_events_accepted_total", source=SOURCE) - \
        value(before, "govmeter_events_accepted_total", source=SOURCE) == len(posted.events)
    assert value(after, "govmeter_events_rejected_total", source=SOURCE, reason="data.quantity") - \
        value(before, "govmeter_events_rejected_total", source=SOURCE, reason="data.quantity") == 1
    labels = dict(service="metering", method="POST", route="/v1/events")
    assert value(after, "govmeter_http_requests_total", status="202", **labels) - \
        value(before, "govmeter_http_requests_total", status="202", **labels) == 1
    assert value(after, "govmeter_http_request_duration_seconds_count", **labels) - \
        value(before, "govmeter_http_request_duration_seconds_count", **labels) == 1


async def test_the_worker_process_counts_its_events_dead_letters_batches_and_lag_per_partition(worker, settings,
                                                                                               posted):
    before = posted.worker
    async def worker_moved():
        now = await scrape_worker(worker)
        counted = (total(now, "govmeter_worker_events_total", outcome="new_usage")
                   - total(before, "govmeter_worker_events_total", outcome="new_usage"))
        dead = (total(now, "govmeter_dead_letters_total", reason="invalid event")
                - total(before, "govmeter_dead_letters_total", reason="invalid event"))
        return now if counted >= 3 and dead >= 1 else None
    after = await wait_until(worker_moved, timeout=60, worker=worker)
    assert total(after, "govmeter_worker_events_total", outcome="new_lifecycle") - \
        total(before, "govmeter_worker_events_total", outcome="new_lifecycle") >= 2
    for histogram in ("govmeter_worker_batch_seconds_count", "govmeter_worker_batch_records_count",
                      "govmeter_worker_batch_events_count"):
        assert total(after, histogram) > total(before, histogram)

    async def lag_measured():  # every 5 s, per partition of the events topic the worker holds
        now = await scrape_worker(worker)
        return [labels for (name, labels), _ in now.items() if name == "govmeter_worker_consumer_lag"]
    lag = await wait_until(lag_measured, timeout=30, worker=worker)
    assert {dict(labels)["topic"] for labels in lag} == {settings.events_topic}
    assert {dict(labels)["partition"] for labels in lag} == {str(p) for p in range(settings.event_partitions)}


async def test_the_worker_logs_json_lines_naming_the_request_ids_of_each_batch_it_applied(worker, posted):
    async def batch_logged():
        for line in worker.log_path.read_text(errors="replace").splitlines():
            if posted.request_id in line:
                return orjson.loads(line)
        return None
    record = await wait_until(batch_logged, timeout=30, worker=worker)
    assert record["logger"] == "govmeter.worker" and record["level"] == "INFO"
    assert posted.request_id in record["request_ids"]
    assert record["message"].startswith("batch applied") and {"time", "events", "duration_ms"} <= record.keys()
    # Every line of the worker's output is a JSON object, Faust's own records (and no start-up banner) included.
    lines = [orjson.loads(line) for line in worker.log_path.read_text(errors="replace").splitlines()]
    assert any(r["message"] == "[^Worker]: Ready" and r["logger"] == "faust.worker" for r in lines)


async def test_billing_counts_budget_alerts_manual_closes_and_bill_list_cache_hits(apps, posted):
    year, before = posted.year, posted.billing
    put = await apps["billing"].put(f"/v1/budgets/{posted.department}/{year}", json={"amount": "5.00"},
                                    headers=FINANCE)
    assert put.status_code == 200 and put.json()["alerts"], put.text
    with clock(local(year, 2, 2)):
        closed = await apps["billing"].post(f"/v1/periods/{year}-01/close", headers=ADMIN)
    assert closed.status_code == 200, closed.text
    for _ in range(2):  # the second answer comes from the cache
        assert (await apps["billing"].get("/v1/bills", params={"month": f"{year}-01"}, headers=FINANCE)
                ).status_code == 200
    after = await scrape(apps["billing"])
    assert value(after, "govmeter_budget_alerts_published_total", kind="spend_100") - \
        value(before, "govmeter_budget_alerts_published_total", kind="spend_100") == 1
    assert value(after, "govmeter_period_closes_total", trigger="manual") - \
        value(before, "govmeter_period_closes_total", trigger="manual") == 1
    assert value(after, "govmeter_period_close_seconds_count") - \
        value(before, "govmeter_period_close_seconds_count") == 1
    assert value(after, "govmeter_response_cache_requests_total", cache="bills", result="hit") > \
        value(before, "govmeter_response_cache_requests_total", cache="bills", result="hit")
    route = dict(service="billing", method="POST", route="/v1/periods/{month}/close", status="200")
    assert value(after, "govmeter_http_requests_total", **route) - \
        value(before, "govmeter_http_requests_total", **route) == 1


async def test_the_query_api_counts_a_usage_answer_computed_once_then_served_from_the_cache(apps, posted):
    params = {"from": f"{posted.year}-01-01", "to": f"{posted.year}-02-01", "group_by": "department"}
    for _ in range(2):
        assert (await apps["query"].get("/v1/usage", params=params, headers=FINANCE)).status_code == 200
    after = await scrape(apps["query"])
    for result in ("hit", "miss"):
        assert value(after, "govmeter_response_cache_requests_total", cache="usage", result=result) > \
            value(posted.query, "govmeter_response_cache_requests_total", cache="usage", result=result)
    assert value(after, "govmeter_http_requests_total", service="query", method="GET", route="/v1/usage",
                 status="200") >= 2
    assert "govmeter_spend_warnings_published_total" in {name for name, _ in after}


async def test_metrics_name_no_department_or_resource_only_route_templates(apps, posted):
    # Requests whose path and query name the department, so that a label taken from them would show it.
    bill = f"/v1/bills/GM-{posted.year}-01-{posted.department}"
    assert (await apps["billing"].get(bill, headers=FINANCE)).status_code in (200, 404)
    usage = {"from": f"{posted.year}-01-01", "to": f"{posted.year}-02-01", "department": posted.department}
    assert (await apps["query"].get("/v1/usage", params=usage, headers=FINANCE)).status_code == 200
    for text in [(await apps[name].get("/metrics")).text for name in ("metering", "billing", "query")]:
        assert posted.department not in text and posted.vm not in text


async def test_an_unknown_path_is_counted_under_one_label_not_its_own():
    from services.metering.api import app

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://metering") as client:
        for n in range(3):
            assert (await client.get(f"/no/such/path/{uuid.uuid4().hex}")).status_code == 404
        text = (await client.get("/metrics")).text
    assert "/no/such/path" not in text
    assert 'route="unmatched"' in text


def test_an_api_process_logs_json_lines_with_the_request_id_and_never_the_token(database, tmp_path):
    """``govmeter api query`` as a process: each stdout line is one JSON object; a request's line carries the
    X-Request-ID it was given (returned on the answer), a bad X-Request-ID is replaced by a fresh one, and no
    token appears anywhere, not even a rejected one."""
    port = free_port()
    log_path = tmp_path / "query.log"
    env = {**os.environ, "GOVMETER_WARNINGS_INTERVAL_SECONDS": "0"}
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "services.cli", "api", "query", "--port", str(port)],
                                   cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    token = auth("finance")["Authorization"].removeprefix("Bearer ")
    forged = token[:-4] + "AAAA"
    try:
        base = f"http://127.0.0.1:{port}"
        asyncio.run(_wait_up(base, process))
        answered = httpx.get(f"{base}/v1/usage", params={"from": "2084-01-01", "to": "2084-01-02"},
                             headers={"Authorization": f"Bearer {token}", "X-Request-ID": "req-logged-1"})
        assert answered.status_code == 200 and answered.headers["x-request-id"] == "req-logged-1"
        refused = httpx.get(f"{base}/v1/usage", params={"from": "2084-01-01", "to": "2084-01-02"},
                            headers={"Authorization": f"Bearer {forged}", "X-Request-ID": "x" * 500})
        assert refused.status_code == 401
        fresh = refused.headers["x-request-id"]
        assert fresh != "x" * 500 and len(fresh) == 32
        assert httpx.get(f"{base}/metrics").status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=20)
    lines = log_path.read_text().splitlines()
    records = [orjson.loads(line) for line in lines]  # every line is JSON
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    (logged,) = [r for r in records if r.get("request_id") == "req-logged-1"]
    assert (logged["route"], logged["status"], logged["logger"]) == ("/v1/usage", 200, "govmeter.http")
    assert [r["status"] for r in records if r.get("request_id") == fresh] == [401]
    text = log_path.read_text()
    assert token not in text and forged not in text and token.split(".")[2] not in text


async def _wait_up(base: str, process: subprocess.Popen) -> None:
    async def up():
        assert process.poll() is None, "the API process exited"
        try:
            async with httpx.AsyncClient() as client:
                return (await client.get(f"{base}/healthz", timeout=5)).status_code == 200
        except httpx.HTTPError:
            return False
    await wait_until(up, timeout=60)
