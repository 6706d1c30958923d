"""Webhook subscriptions and the delivery of budget alerts and spend warnings to them (signing, URL rules and the
retry schedule are in ``domain.webhooks``).

The alerts and warnings tables are the outbox. Each round of the billing API's webhook task (every
``GOVMETER_WEBHOOK_POLL_SECONDS``) first *fans out*: every alert or warning stored since a subscription was made,
of the types it asked for and inside its scope, that has no delivery row for it yet gets one, with its body
rendered once. Then it *delivers*: due rows are claimed (``FOR UPDATE SKIP LOCKED``, so billing API instances never
claim the same row, and ``next_attempt_at`` pushed a lease ahead, so a row whose sender died is tried again once
the lease runs out), sent outside the transaction, and marked delivered (any 2xx), due again after
``retry_delay`` (anything else: another status, a redirect, a timeout, a refused connection) or given up after
``GOVMETER_WEBHOOK_MAX_ATTEMPTS``. At least once: a crash between a receiver's 2xx and the mark sends it again,
under the same ``Govmeter-Delivery`` id.

Art. 18: a subscription's scope is one department (always its own for a department token: a CHECK in the table)
or, for finance and admin, every department; fan-out joins on it, and delivery checks it again."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid

import httpx
import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.api import Role
from services.billing.budgets import alert_message
from services.billing.closing import UnknownDepartment
from services.billing.domain.webhooks import (
    ATTEMPT_HEADER,
    BUDGET_ALERT,
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    SPEND_WARNING,
    TIMESTAMP_HEADER,
    retry_delay,
    signature,
    url_refusal,
)
from services.common.auth import Principal
from services.common.config import Settings
from services.common.db import raw_connection, raw_transaction

log = logging.getLogger("govmeter.webhooks")
FAN_OUT_BATCH = 500
DELIVERY_BATCH = 100
LEASE_MARGIN_SECONDS = 30.0
ERROR_CHARS = 500


def _owned_by(principal: Principal, first: int) -> tuple[str, list]:
    """SQL (on ``s``) for the subscriptions a caller owns: a department's are its department's, whichever of its
    tokens made them; finance's and admin's are their subject's."""
    if principal.role == Role.DEPARTMENT:
        return (f"s.owner_role = 'department' AND s.owner_department = ${first}", [principal.department])
    return f"s.owner_role = ${first} AND s.owner_subject = ${first + 1}", [principal.role, principal.subject]


_LIST = """
    SELECT s.id, s.url, s.events, s.alert_kinds, s.department_id, s.created_at,
           count(d.id) FILTER (WHERE d.delivered_at IS NULL AND d.failed_at IS NULL) AS pending,
           count(d.delivered_at) AS delivered, count(d.failed_at) AS failed
    FROM webhook_subscriptions s LEFT JOIN webhook_deliveries d ON d.subscription_id = s.id
"""


async def create_subscription(engine: AsyncEngine, principal: Principal, url: str, events: list[str],
                              alert_kinds: list[str] | None, department_id: str | None) -> dict:
    """Store a subscription; the answer carries its secret, which is never shown again. ``department_id`` has
    been scoped by the caller (a department token: its own)."""
    secret = "whsec_" + secrets.token_urlsafe(32)
    async with raw_transaction(engine) as conn:
        if department_id is not None and not await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM departments WHERE id = $1)", department_id):
            raise UnknownDepartment(f"department_id: unknown department {department_id!r}")
        row = await conn.fetchrow(
            """
            INSERT INTO webhook_subscriptions (id, owner_role, owner_subject, owner_department, url, events,
                                               alert_kinds, department_id, secret)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            RETURNING id, url, events, alert_kinds, department_id, created_at
            """,
            uuid.uuid4(), principal.role, principal.subject, principal.department, url, sorted(set(events)),
            None if alert_kinds is None else sorted(set(alert_kinds)), department_id, secret,
        )
    return {**dict(row), "secret": secret}


async def list_subscriptions(engine: AsyncEngine, principal: Principal) -> list[dict]:
    where, args = _owned_by(principal, 1)
    async with raw_connection(engine) as conn:
        rows = await conn.fetch(_LIST + f" WHERE {where} GROUP BY s.id ORDER BY s.created_at, s.id", *args)
    return [dict(r) for r in rows]


async def delete_subscription(engine: AsyncEngine, principal: Principal, subscription_id: uuid.UUID) -> bool:
    """Remove one of the caller's subscriptions and its deliveries (pending ones are not sent); False if the
    caller has none by that id."""
    where, args = _owned_by(principal, 2)
    async with raw_transaction(engine) as conn:
        deleted = await conn.fetchval(
            f"DELETE FROM webhook_subscriptions s WHERE s.id = $1 AND {where} RETURNING s.id", subscription_id, *args)
    return deleted is not None


# --- fan-out ----------------------------------------------------------------------------------------------------

# Pairs of (subscription, stored item) that have no delivery yet. An item is joined only inside the subscription's
# scope: this join is what keeps one department's alerts away from another's subscriptions.
_NEW_ALERTS = f"""
    SELECT s.id AS subscription_id, s.department_id AS scope, a.*
    FROM webhook_subscriptions s
    JOIN budget_alerts a ON a.created_at >= s.created_at
                        AND (s.department_id IS NULL OR a.department_id = s.department_id)
    WHERE '{BUDGET_ALERT}' = ANY(s.events) AND (s.alert_kinds IS NULL OR a.kind = ANY(s.alert_kinds))
      AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d
                      WHERE d.subscription_id = s.id AND d.event_type = '{BUDGET_ALERT}' AND d.item_id = a.id)
    ORDER BY a.id LIMIT $1
"""
_NEW_WARNINGS = f"""
    SELECT s.id AS subscription_id, s.department_id AS scope, w.id, w.day, w.department_id, w.meter, w.spend,
           w.median, w.mad, w.mad_used, w.robust_z, w.threshold, w.baseline, w.created_at,
           coalesce(dep.name, w.department_id) AS department_name
    FROM webhook_subscriptions s
    JOIN spend_warnings w ON w.created_at >= s.created_at
                         AND (s.department_id IS NULL OR w.department_id = s.department_id)
    LEFT JOIN departments dep ON dep.id = w.department_id
    WHERE '{SPEND_WARNING}' = ANY(s.events)
      AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d
                      WHERE d.subscription_id = s.id AND d.event_type = '{SPEND_WARNING}' AND d.item_id = w.id)
    ORDER BY w.id LIMIT $1
"""


def delivery_body(delivery_id: uuid.UUID, event_type: str, subscription_id: uuid.UUID, data: dict) -> bytes:
    """What a receiver gets: the delivery's id and type, the subscription, and the alert or warning as
    ``GET /v1/alerts`` or ``GET /v1/warnings`` (Chinese labels) shows it."""
    return orjson.dumps({"id": str(delivery_id), "type": event_type, "subscription_id": str(subscription_id),
                         "data": data})


async def fan_out(engine: AsyncEngine, batch: int = FAN_OUT_BATCH) -> int:
    """Create the deliveries that stored alerts and warnings call for; returns how many."""
    from services.query.domain.warnings import warning_out  # the warnings' one rendering (GET /v1/warnings)

    created = 0
    for event_type, query, render in ((BUDGET_ALERT, _NEW_ALERTS, alert_message),
                                      (SPEND_WARNING, _NEW_WARNINGS, warning_out)):
        while True:
            async with raw_transaction(engine) as conn:
                rows = await conn.fetch(query, batch)
                rows = [r for r in rows if r["scope"] is None or r["scope"] == r["department_id"]]  # Art. 18
                if not rows:
                    break
                ids = [uuid.uuid4() for _ in rows]
                await conn.execute(
                    """
                    INSERT INTO webhook_deliveries (id, subscription_id, event_type, item_id, department_id, body,
                                                    next_attempt_at)
                    SELECT i, s, $3, it, dep, b, now()
                    FROM unnest($1::uuid[], $2::uuid[], $4::bigint[], $5::text[], $6::bytea[]) AS u(i, s, it, dep, b)
                    ON CONFLICT (subscription_id, event_type, item_id) DO NOTHING
                    """,
                    ids, [r["subscription_id"] for r in rows], event_type, [r["id"] for r in rows],
                    [r["department_id"] for r in rows],
                    [delivery_body(i, event_type, r["subscription_id"], render(dict(r))) for i, r in zip(ids, rows)],
                )
            created += len(rows)
            if len(rows) < batch:
                break
    return created


# --- delivery ---------------------------------------------------------------------------------------------------

_CLAIM = """
    UPDATE webhook_deliveries d SET attempts = d.attempts + 1, next_attempt_at = now() + $2::float8 * interval '1 s'
    FROM webhook_subscriptions s
    WHERE s.id = d.subscription_id AND d.id IN (
        SELECT id FROM webhook_deliveries
        WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now()
        ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
    RETURNING d.id, d.attempts, d.event_type, d.department_id, d.body, s.url, s.secret, s.department_id AS scope
"""
_RECORD = """
    UPDATE webhook_deliveries d SET
        last_status = o.status, last_error = o.error,
        delivered_at = CASE WHEN o.ok THEN now() END,
        failed_at = CASE WHEN NOT o.ok AND o.give_up THEN now() END,
        next_attempt_at = CASE WHEN o.ok OR o.give_up THEN d.next_attempt_at
                               ELSE now() + o.delay * interval '1 s' END
    FROM unnest($1::uuid[], $2::int[], $3::int[], $4::text[], $5::bool[], $6::bool[], $7::float8[])
         AS o(id, attempts, status, error, ok, give_up, delay)
    WHERE d.id = o.id AND d.attempts = o.attempts AND d.delivered_at IS NULL
"""


def signed_headers(delivery_id: uuid.UUID, event_type: str, attempt: int, secret: str, body: bytes,
                   timestamp: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "govmeter-webhooks/1.0",
        DELIVERY_HEADER: str(delivery_id),
        EVENT_HEADER: event_type,
        ATTEMPT_HEADER: str(attempt),
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }


async def _send(client: httpx.AsyncClient, row, settings: Settings) -> tuple[int | None, str | None, bool]:
    """One attempt: (HTTP status or None, error or None, permanent) — permanent: trying again cannot help."""
    if row["scope"] is not None and row["scope"] != row["department_id"]:  # never expected: fan-out joins on it
        return None, "outside the subscription's department scope", True
    refusal = url_refusal(row["url"], settings.webhook_hosts)  # the allowlist may have narrowed since
    if refusal is not None:
        return None, refusal, True
    body = bytes(row["body"])
    headers = signed_headers(row["id"], row["event_type"], row["attempts"], row["secret"], body, int(time.time()))
    try:
        response = await client.post(row["url"], content=body, headers=headers)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:ERROR_CHARS], False
    if 200 <= response.status_code < 300:
        return response.status_code, None, False
    return response.status_code, f"HTTP {response.status_code}", False


async def deliver_due(engine: AsyncEngine, client: httpx.AsyncClient, settings: Settings,
                      batch: int = DELIVERY_BATCH) -> int:
    """Attempt the deliveries that are due (at most ``batch``, concurrently); returns how many were attempted."""
    async with raw_transaction(engine) as conn:
        claimed = await conn.fetch(_CLAIM, batch, settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS)
    if not claimed:
        return 0
    outcomes = await asyncio.gather(*(_send(client, row, settings) for row in claimed))
    oks = [status is not None and error is None for status, error, _ in outcomes]
    give_up = [permanent or row["attempts"] >= settings.webhook_max_attempts
               for row, (_, _, permanent) in zip(claimed, outcomes)]
    delays = [retry_delay(row["attempts"], settings.webhook_retry_base_seconds, settings.webhook_retry_max_seconds)
              for row in claimed]
    async with raw_transaction(engine) as conn:
        await conn.execute(_RECORD, [r["id"] for r in claimed], [r["attempts"] for r in claimed],
                           [o[0] for o in outcomes], [o[1] for o in outcomes], oks, give_up, delays)
    for row, (status, error, _), ok, gave_up in zip(claimed, outcomes, oks, give_up):
        if not ok:
            log.warning("webhook delivery %s attempt %d failed%s: %s", row["id"], row["attempts"],
                        " (given up)" if gave_up else "", error)
    return len(claimed)


def webhook_client(settings: Settings) -> httpx.AsyncClient:
    # Redirects are not followed (a redirect could lead off the allowlist) and proxies from the environment are
    # not used: the request goes where the allowlist said it may.
    return httpx.AsyncClient(timeout=settings.webhook_timeout_seconds, follow_redirects=False, trust_env=False)


async def webhook_round(engine: AsyncEngine, client: httpx.AsyncClient, settings: Settings) -> None:
    await fan_out(engine)
    while await deliver_due(engine, client, settings) == DELIVERY_BATCH:
        pass


async def run_webhook_loop(engine: AsyncEngine, settings: Settings) -> None:
    """The billing API's webhook task: fan out, deliver what is due, sleep, repeat."""
    async with webhook_client(settings) as client:
        while True:
            try:
                await webhook_round(engine, client, settings)
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed round is retried next round; the API keeps serving
                log.exception("webhook round failed")
            await asyncio.sleep(settings.webhook_poll_seconds)
