"""Documented promises (docs/) that had no test of their own: append-only tables, /healthz when a dependency is
down, expired and wrong-secret tokens, extension attributes kept and not rated, malformed tiers refused. Era: 2078
(local)."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta

import asyncpg
import jwt
import pytest

from schemas.events import canonical_payload
from services.billing.models import APPEND_ONLY
from services.common.auth import issue_token
from services.common.config import get_settings
from services.common.db import get_engine, raw_connection
from services.common.periods import LOCAL_TZ
from services.demo.rate_cards import propose_and_approve
from tests.conftest import SUPERUSER_DATABASE_URL
from tests.integration.support import (
    ADMIN,
    FINANCE,
    auth,
    lifecycle_event,
    post_events,
    usage_event,
    usage_rows,
    wait_stored,
)

pytestmark = pytest.mark.usefixtures("worker")
RUN = uuid.uuid4().hex[:6]


def local(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2078, month, day, hour, tzinfo=LOCAL_TZ)


async def department_with_vms(apps, worker, count: int, name: str = "市财政局") -> tuple[str, list[str]]:
    department = f"promise-{uuid.uuid4().hex[:8]}"
    assert (await apps["billing"].post("/v1/departments", json={"id": department, "name": name},
                                       headers=ADMIN)).status_code == 201
    vms = [f"vm-{uuid.uuid4().hex[:8]}" for _ in range(count)]
    events = [lifecycle_event(vm, "activated", department, local(1, 1)) for vm in vms]
    assert (await post_events(apps["metering"], events)).status_code == 202
    await wait_stored(events, worker)
    return department, vms


class _NotRefused(Exception):
    pass


async def attempt(statement: str) -> str:
    """Run ``statement`` in a transaction that is always rolled back; what the database said. As a superuser: the
    services' role is refused by its grants before any trigger runs (test_least_privilege proves that); the triggers
    hold against the tables' owner and anyone else who has the privilege."""
    async with raw_connection(get_engine(SUPERUSER_DATABASE_URL)) as conn:
        try:
            async with conn.transaction():
                await conn.execute(statement)
                raise _NotRefused  # it went through: undo it, and say so
        except asyncpg.PostgresError as exc:
            return str(exc)
        except _NotRefused:
            return "not refused"


async def test_every_append_only_table_refuses_update_delete_and_truncate(apps, worker):
    # a closed month with usage, a manual adjustment and so a final bill, ledger entries and a usage baseline
    department, (vm,) = await department_with_vms(apps, worker, 1)
    card = {"version": f"promise-{RUN}", "effective_from": local(1, 1).isoformat(), "prices": {"compute.vcpu": "1"}}
    assert (await propose_and_approve(apps["billing"], card)).status_code == 201
    used = [usage_event(vm, "compute.vcpu", "2", local(1, 5))]
    assert (await post_events(apps["metering"], used)).status_code == 202
    await wait_stored(used, worker)
    credit = await apps["billing"].post("/v1/adjustments", headers=ADMIN, json={
        "department_id": department, "amount": "-0.50", "reason": "补偿", "month": "2078-01"})
    assert credit.status_code == 201, credit.text
    from services.billing.api import app as billing_app
    from services.billing.api import billing_clock

    billing_app.dependency_overrides[billing_clock] = lambda: local(2, 1)
    try:
        assert (await apps["billing"].post("/v1/periods/2078-01/close", headers=ADMIN)).status_code == 200
    finally:
        billing_app.dependency_overrides.pop(billing_clock, None)

    assert set(APPEND_ONLY) == {"billing_periods", "bills", "adjustments", "usage_baselines", "ledger_entries"}
    tables = (*APPEND_ONLY, "rate_cards")  # a new price is a new card (migration 0019)
    async with raw_connection(get_engine()) as conn:
        for table in tables:
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") > 0, table  # row triggers have rows
        columns = {table: await conn.fetchval(
            "SELECT column_name FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position "
            "LIMIT 1", table) for table in tables}
    for table in tables:
        column = columns[table]
        assert f"{table} is append-only: UPDATE refused" in await attempt(f"UPDATE {table} SET {column} = {column}")
        assert f"{table} is append-only: DELETE refused" in await attempt(f"DELETE FROM {table}")
        assert "is append-only: TRUNCATE refused" in await attempt(f"TRUNCATE {table} CASCADE")
    bill = await apps["billing"].get(f"/v1/bills/GM-2078-01-{department}", headers=FINANCE)
    assert bill.json()["total"] == "1.50"  # still there, unchanged: 2 × 1.00 − 0.50


async def test_healthz_fails_when_the_database_or_the_broker_cannot_be_reached(apps, monkeypatch):
    from services.common import health

    for client in apps.values():
        assert (await client.get("/healthz")).status_code == 200
    nowhere = get_engine("postgresql+asyncpg://postgres:postgres@127.0.0.1:1/govmeter_nowhere")
    try:
        with monkeypatch.context() as patch:
            patch.setattr(health, "get_engine", lambda: nowhere)  # a DATABASE_URL where nothing listens
            for client in apps.values():
                response = await client.get("/healthz")
                assert (response.status_code, response.json()) == (
                    503, {"status": "unavailable", "database": False, "broker": True})
    finally:
        await nowhere.dispose()
    settings = get_settings().model_copy(update={"kafka_bootstrap_servers": "127.0.0.1:1"})
    with monkeypatch.context() as patch:
        patch.setattr(health, "get_settings", lambda: settings)  # a bootstrap server where nothing listens
        for client in apps.values():
            response = await client.get("/healthz")
            assert (response.status_code, response.json()) == (
                503, {"status": "unavailable", "database": True, "broker": False})
    for client in apps.values():
        assert (await client.get("/healthz")).status_code == 200


async def test_expired_wrong_secret_and_unsigned_tokens_are_refused_on_every_api(apps):
    secret = get_settings().jwt_secret
    now = int(time.time())
    tokens = {
        "expired": jwt.encode({"sub": "admin", "role": "admin", "iat": now - 3600, "exp": now - 60,
                               "aud": ["govmeter-metering", "govmeter-billing", "govmeter-query"]},
                              secret, algorithm="HS256"),  # beyond the 30 s leeway
        "wrong secret": issue_token("admin", secret="not-the-secret-but-just-as-long-as-it-32"),
        "no expiry": jwt.encode({"sub": "admin", "role": "admin"}, secret, algorithm="HS256"),
        "unsigned": jwt.encode({"sub": "admin", "role": "admin", "exp": now + 600}, None, algorithm="none"),
    }
    requests = [("metering", "POST", "/v1/events"), ("billing", "GET", "/v1/departments"),
                ("billing", "GET", "/v1/bills"), ("query", "GET", "/v1/usage")]
    for why, token in tokens.items():
        for app, method, path in requests:
            response = await apps[app].request(method, path, headers={"Authorization": f"Bearer {token}"},
                                               json=[] if method == "POST" else None)
            assert response.status_code == 401, (why, path, response.text)
            assert response.json()["detail"].startswith("Authorization: invalid token"), (why, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
    assert (await apps["billing"].get("/v1/departments", headers=ADMIN)).status_code == 200  # a good one passes


async def test_extension_attributes_are_stored_as_received_and_do_not_change_the_rating(apps, worker):
    department, (plain_vm, extended_vm) = await department_with_vms(apps, worker, 2)
    card = {"version": f"promise-ext-{RUN}", "effective_from": local(3, 1).isoformat(),
            "prices": {"compute.vcpu": "0.37", "storage.block": "0.002"}}
    assert (await propose_and_approve(apps["billing"], card)).status_code == 201
    start = local(3, 2, 9)
    plain = [usage_event(plain_vm, "compute.vcpu", "3.5", start, start + timedelta(minutes=90)),
             usage_event(plain_vm, "storage.block", "100", start)]
    extended = [usage_event(extended_vm, "compute.vcpu", "3.5", start, start + timedelta(minutes=90)),
                usage_event(extended_vm, "storage.block", "100", start, tier="hdd", zone="=1+1")]
    for event in extended:  # CloudEvents extension attributes and extra data fields
        event.update({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                      "govtenant": "市财政局", "priority": 7, "price": "999"})
        event["data"].update({"unit_price": "100", "department_id": "someone-else", "note": {"nested": [1, 2]}})
    response = await post_events(apps["metering"], plain + extended)
    assert response.status_code == 202 and response.json()["accepted"] == 4, response.text
    await wait_stored(plain + extended, worker)
    async with raw_connection(get_engine()) as conn:
        stored = {r["event_id"]: bytes(r["payload"]) for r in await conn.fetch(
            "SELECT event_id, payload FROM events WHERE event_id = ANY($1::text[])", [e["id"] for e in extended])}
    assert stored == {e["id"]: canonical_payload(e) for e in extended}  # as received, keys sorted
    rows = await usage_rows(apps["query"], FINANCE, **{"from": "2078-03-01", "to": "2078-04-01"},
                            group_by="resource,meter", department=department)
    figures = {(r["resource_id"], r["meter"]): (r["quantity"], r["amount"], r.get("unpriced_quantity"))
               for r in rows}
    # 3.5 × 0.37 = 1.295 → 1.30; 100 × 0.002 = 0.20: the same for both, whatever the extras said
    for vm in (plain_vm, extended_vm):
        assert figures[vm, "compute.vcpu"] == ("3.5", "1.30", None)
        assert figures[vm, "storage.block"] == ("100", "0.20", None)
    assert {k[0] for k in figures} == {plain_vm, extended_vm}  # nobody else's department for the extended one


@pytest.mark.parametrize("tiers, words", [
    ([], "tiers"),  # no tier at all
    ([{"up_to": "100", "unit_price": "0.5"}], "the last tier must have up_to null"),
    ([{"up_to": None, "unit_price": "0.5"}, {"up_to": None, "unit_price": "0.4"}], "only the last tier"),
    ([{"up_to": None, "unit_price": "0.5"}, {"up_to": "100", "unit_price": "0.4"}], "tiers"),
    ([{"up_to": "100", "unit_price": "0.5"}, {"up_to": "100", "unit_price": "0.4"},
      {"up_to": None, "unit_price": "0.3"}], "up_to must increase"),
    ([{"up_to": "200", "unit_price": "0.5"}, {"up_to": "100", "unit_price": "0.4"},
      {"up_to": None, "unit_price": "0.3"}], "up_to must increase"),
    ([{"up_to": "0", "unit_price": "0.5"}, {"up_to": None, "unit_price": "0.4"}], "greater than 0"),
    ([{"up_to": "-5", "unit_price": "0.5"}, {"up_to": None, "unit_price": "0.4"}], "greater than 0"),
    ([{"up_to": "100", "unit_price": "-0.5"}, {"up_to": None, "unit_price": "0.4"}], "greater than or equal to 0"),
    ([{"up_to": "100", "unit_price": "0.1234567"}, {"up_to": None, "unit_price": "0.4"}], "6 decimal places"),
    ([{"up_to": "abc", "unit_price": "0.5"}, {"up_to": None, "unit_price": "0.4"}], "up_to"),
    ([{"up_to": "100"}, {"up_to": None, "unit_price": "0.4"}], "unit_price"),
    ([{"unit_price": "0.5"}], "up_to"),
    ("0.5 up to 100, then 0.4", "tiers"),
])
async def test_a_rate_card_with_malformed_tiers_is_refused_and_not_stored(apps, tiers, words):
    version = f"promise-tiers-{uuid.uuid4().hex[:8]}"
    card = {"version": version, "effective_from": local(6, 1).isoformat(),
            "prices": {"compute.vcpu": "0.10", "network.egress": {"tiers": tiers}}}
    response = await apps["billing"].post("/v1/rate-cards", json=card, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert "prices" in response.text and words in response.text, response.text
    listed = await apps["billing"].get("/v1/rate-cards", headers=ADMIN)
    assert version not in {c["version"] for c in listed.json()}
