"""Webhooks against a real HTTP receiver (aiohttp on a free loopback port, started by the test): budget alerts and
spend warnings delivered by the billing API's own webhook task, signed, retried with the same delivery id, and
never outside a subscription's department scope (Art. 18)."""

from __future__ import annotations

import time
from datetime import date, datetime

import orjson
import pytest
from aiohttp import web
from sqlalchemy import text

from services.billing.domain.webhooks import (
    ATTEMPT_HEADER,
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature_valid,
)
from services.billing.webhooks import fan_out
from services.common.db import get_engine
from services.common.periods import LOCAL_TZ
from tests.integration.support import ADMIN, FINANCE, auth, wait_until
from tests.integration.test_billing import department


class Receiver:
    """A webhook endpoint: records every request, answers 500 to the first ``failures`` of them, then 204."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.requests: list[tuple] = []  # (headers, body, monotonic time)
        self.secret: str | None = None
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.headers.copy(), await request.read(), time.monotonic()))
        if self.failures > 0:
            self.failures -= 1
            return web.Response(status=500, text="not now")
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hook"

    async def stop(self) -> None:
        await self.runner.cleanup()


@pytest.fixture
async def receivers():
    started: list[Receiver] = []

    async def start(failures: int = 0) -> Receiver:
        receiver = Receiver(failures)
        await receiver.start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        await receiver.stop()


async def subscribe(apps, receiver: Receiver, headers: dict, **body) -> dict:
    response = await apps["billing"].post("/v1/subscriptions", json={"url": receiver.url, **body}, headers=headers)
    assert response.status_code == 201, response.text
    receiver.secret = response.json()["secret"]
    return response.json()


def bodies(receiver: Receiver) -> list[dict]:
    """Every request's body, after checking its signature and timestamp as a receiver must."""
    out = []
    for headers, body, _ in receiver.requests:
        assert signature_valid(receiver.secret, headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER],
                               time.time()), dict(headers)
        assert headers[DELIVERY_HEADER] == orjson.loads(body)["id"]
        out.append(orjson.loads(body))
    return out


async def raise_budget_alerts(apps, dep: str) -> int:
    """Alerts at 50, 80 and 100 % through the real path: a ¥10.00 adjustment on this month's bill, a ¥10.00
    budget for this year. Returns the year."""
    adjusted = await apps["billing"].post("/v1/adjustments", json={
        "department_id": dep, "amount": "10.00", "reason": "webhook test", "reference": "T-1"}, headers=ADMIN)
    assert adjusted.status_code == 201, adjusted.text
    year = datetime.now(LOCAL_TZ).year
    put = await apps["billing"].put(f"/v1/budgets/{dep}/{year}", json={"amount": "10.00"}, headers=FINANCE)
    assert put.status_code == 200, put.text
    assert sorted(a["kind"] for a in put.json()["alerts"]) == ["spend_100", "spend_50", "spend_80"]
    return year


async def store_warning(dep: str, day: date, meter: str = "compute.vcpu") -> int:
    """A spend warning as the query API's evaluation stores it (the evaluation itself is tested in test_reports)."""
    async with get_engine().begin() as conn:
        return (await conn.execute(text(
            """
            INSERT INTO spend_warnings (day, department_id, meter, spend, median, mad, mad_used, robust_z, threshold,
                                        baseline)
            VALUES (:day, :dep, :meter, 90, 10, 1, 1, 53.96, 3.5, '{"spend": []}'::jsonb) RETURNING id
            """), {"day": day, "dep": dep, "meter": meter})).scalar_one()


async def test_a_budget_alert_is_delivered_signed_with_a_delivery_id_and_only_the_kinds_asked_for(apps, receivers):
    dep = await department(apps)
    everything, only_100 = await receivers(), await receivers()
    created = await subscribe(apps, everything, auth("department", dep), events=["budget.alert"])
    assert created["department_id"] == dep and created["secret"].startswith("whsec_")
    await subscribe(apps, only_100, FINANCE, events=["budget.alert", "spend.warning"], department_id=dep,
                    alert_kinds=["spend_100"])
    await raise_budget_alerts(apps, dep)

    await wait_until(lambda: _at_least(everything, 3), timeout=30)
    await wait_until(lambda: _at_least(only_100, 1), timeout=30)
    got = bodies(everything)
    assert sorted(b["data"]["kind"] for b in got) == ["spend_100", "spend_50", "spend_80"]
    assert {b["type"] for b in got} == {"budget.alert"} and {b["data"]["department_id"] for b in got} == {dep}
    assert {b["subscription_id"] for b in got} == {created["id"]}
    assert len({b["id"] for b in got}) == 3  # one delivery id per alert
    headers = everything.requests[0][0]
    assert headers[EVENT_HEADER] == "budget.alert" and headers[ATTEMPT_HEADER] == "1"
    assert headers["Content-Type"] == "application/json"
    assert [b["data"]["kind"] for b in bodies(only_100)] == ["spend_100"]

    async def marked():
        listed = await apps["billing"].get("/v1/subscriptions", headers=auth("department", dep))
        assert listed.status_code == 200
        return listed.json() if listed.json()[0]["delivered"] == 3 else None

    (mine,) = await wait_until(marked, timeout=10)  # the 2xx is recorded just after the receiver answered
    assert mine["id"] == created["id"] and mine["pending"] == mine["failed"] == 0
    assert "secret" not in mine


async def _at_least(receiver: Receiver, count: int) -> bool:
    return len(receiver.requests) >= count


async def test_a_receiver_that_fails_twice_then_accepts_gets_the_delivery_on_the_third_attempt_with_the_same_id(
        apps, receivers, settings):
    dep = await department(apps)
    flaky = await receivers(failures=2)
    created = await subscribe(apps, flaky, FINANCE, events=["spend.warning"], department_id=dep)
    warning = await store_warning(dep, date(2031, 3, 9))

    await wait_until(lambda: _at_least(flaky, 3), timeout=30)
    attempts = [(h[DELIVERY_HEADER], h[ATTEMPT_HEADER]) for h, _, _ in flaky.requests]
    delivery = attempts[0][0]
    assert attempts == [(delivery, "1"), (delivery, "2"), (delivery, "3")]
    first, second, third = (t for _, _, t in flaky.requests)
    base = settings.webhook_retry_base_seconds
    assert second - first >= base * 0.9 and third - second >= 2 * base * 0.9  # backoff: base, then 2·base
    (body,) = {orjson.dumps(b) for b in bodies(flaky)}  # the same bytes every attempt
    body = orjson.loads(body)
    assert body["type"] == "spend.warning" and body["data"]["id"] == warning
    assert body["data"]["department_id"] == dep and body["data"]["spend"] == "90.00"
    assert body["data"]["baseline"] == {"spend": []}

    async def recorded():
        async with get_engine().connect() as conn:
            row = (await conn.execute(text(
                "SELECT attempts, delivered_at, failed_at, last_status FROM webhook_deliveries WHERE id = :id"),
                {"id": delivery})).one()
        return row if row.delivered_at is not None else None

    row = await wait_until(recorded, timeout=10)
    assert (row.attempts, row.failed_at, row.last_status) == (3, None, 204)
    listed = (await apps["billing"].get("/v1/subscriptions", headers=FINANCE)).json()
    assert [(s["delivered"], s["pending"]) for s in listed if s["id"] == created["id"]] == [(1, 0)]
    await fan_out(get_engine())
    assert len(flaky.requests) == 3  # delivered once: nothing more is sent


async def test_a_department_subscription_never_receives_another_departments_alerts_or_warnings(apps, receivers):
    mine, theirs = await department(apps), await department(apps, "市民政局")
    own, finance_all = await receivers(), await receivers()
    await subscribe(apps, own, auth("department", mine), events=["budget.alert", "spend.warning"])
    everyone = await subscribe(apps, finance_all, FINANCE, events=["budget.alert", "spend.warning"])
    assert everyone["department_id"] is None

    await raise_budget_alerts(apps, theirs)
    await store_warning(theirs, date(2031, 4, 2))
    await store_warning(mine, date(2031, 4, 2))

    def of(receiver, dep):
        return sorted((b["type"], b["data"].get("kind")) for b in bodies(receiver) if b["data"]["department_id"] == dep)

    # the finance subscription sees both departments, so by then fan-out has judged every item for both
    await wait_until(lambda: _of_count(finance_all, theirs, 4), timeout=30)
    await wait_until(lambda: _of_count(own, mine, 1), timeout=30)
    await fan_out(get_engine())
    assert of(own, theirs) == []
    assert of(own, mine) == [("spend.warning", None)]
    assert of(finance_all, mine) == [("spend.warning", None)]
    async with get_engine().connect() as conn:
        leaked = (await conn.execute(text(
            "SELECT count(*) FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id "
            "WHERE s.department_id IS NOT NULL AND d.department_id <> s.department_id"))).scalar_one()
    assert leaked == 0


async def _of_count(receiver: Receiver, dep: str, count: int) -> bool:
    return sum(orjson.loads(b)["data"]["department_id"] == dep for _, b, _ in receiver.requests) >= count


async def test_a_department_cannot_subscribe_to_another_departments_data_and_sees_only_its_own(apps, receivers):
    mine, theirs = await department(apps), await department(apps, "市民政局")
    receiver = await receivers()
    url = receiver.url
    as_mine = auth("department", mine)
    refused = await apps["billing"].post("/v1/subscriptions", json={
        "url": url, "events": ["budget.alert"], "department_id": theirs}, headers=as_mine)
    assert refused.status_code == 403 and refused.json()["detail"].startswith("department:")
    provider = await apps["billing"].post("/v1/subscriptions", json={"url": url, "events": ["budget.alert"]},
                                          headers=auth("provider"))
    assert provider.status_code == 403
    unknown = await apps["billing"].post("/v1/subscriptions", json={
        "url": url, "events": ["budget.alert"], "department_id": "dep-nobody"}, headers=FINANCE)
    assert unknown.status_code == 422 and unknown.json()["detail"].startswith("department_id:")
    for bad in ("ftp://127.0.0.1/hook", "http://169.254.169.254/latest", "http://u:p@127.0.0.1/hook",
                "http://example.com/hook"):
        response = await apps["billing"].post("/v1/subscriptions", json={"url": bad, "events": ["budget.alert"]},
                                              headers=as_mine)
        assert response.status_code == 422 and response.json()["detail"].startswith("url:"), (bad, response.text)
    for bad_body in ({"url": url, "events": []}, {"url": url, "events": ["bill.closed"]},
                     {"url": url, "events": ["budget.alert"], "alert_kinds": ["spend_90"]}):
        assert (await apps["billing"].post("/v1/subscriptions", json=bad_body, headers=as_mine)).status_code == 422

    own = await subscribe(apps, receiver, as_mine, events=["spend.warning"])
    other = await subscribe(apps, receiver, auth("department", theirs), events=["spend.warning"])
    listed = (await apps["billing"].get("/v1/subscriptions", headers=as_mine)).json()
    assert [s["id"] for s in listed] == [own["id"]]
    assert other["id"] not in {s["id"] for s in (await apps["billing"].get("/v1/subscriptions",
                                                                           headers=FINANCE)).json()}
    await store_warning(mine, date(2031, 5, 1))
    await wait_until(lambda: _at_least(receiver, 1), timeout=30)  # a delivery row that deleting must take along
    assert (await apps["billing"].delete(f"/v1/subscriptions/{other['id']}", headers=as_mine)).status_code == 404
    assert (await apps["billing"].delete(f"/v1/subscriptions/{own['id']}", headers=as_mine)).status_code == 204
    assert (await apps["billing"].get("/v1/subscriptions", headers=as_mine)).json() == []
    assert (await apps["billing"].delete(f"/v1/subscriptions/{own['id']}", headers=as_mine)).status_code == 404

    await store_warning(mine, date(2031, 5, 2))
    await fan_out(get_engine())
    async with get_engine().connect() as conn:
        for_deleted = (await conn.execute(text("SELECT count(*) FROM webhook_deliveries WHERE subscription_id = :s"),
                                          {"s": own["id"]})).scalar_one()
    assert for_deleted == 0
