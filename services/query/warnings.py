"""Spend anomaly warnings (Art. 12(2)): evaluation, storage and publication (``GET /v1/warnings`` is
``reports.warnings``; how a warning reads is ``domain.warnings``).

Each local day, every department × meter's spend (usage_daily, exact yuan, across its systems) is judged
against its own trailing 14 days by ``domain.anomaly.spend_anomaly``. An outlier is stored once per department, meter
and day (re-evaluating a day adds nothing), then published to ``<topic_prefix>.warnings`` from an outbox: rows
with ``published_at`` NULL are sent (acks=all) and marked, under ``FOR UPDATE SKIP LOCKED`` so two evaluators
never send the same row at once; a crash between send and mark sends it again (at least once; consumers key
on ``id``). Evaluation runs in a background task of the query API (the last completed days, every
``warnings_interval_seconds``) and on demand: ``govmeter warnings evaluate --day YYYY-MM-DD``."""

from __future__ import annotations

import asyncio
import logging
from datetime import date, datetime, timedelta
from decimal import Decimal

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.db import raw_transaction, without_statement_timeout
from services.common.metrics import SPEND_WARNINGS
from services.common.periods import LOCAL_TZ
from services.query.domain.anomaly import AnomalyRule, judge_day
from services.query.domain.warnings import warning_out
from services.query.views import WARNING_SELECT

log = logging.getLogger("govmeter.warnings")
RULE = AnomalyRule()
Z_PLACES = Decimal("0.0001")


async def evaluate_day(engine: AsyncEngine, day: date, rule: AnomalyRule = RULE) -> list[int]:
    """Judge one local day; store its new warnings. Returns their ids."""
    first = day - timedelta(days=rule.window_days)
    async with raw_transaction(engine) as conn:
        await without_statement_timeout(conn)
        rows = await conn.fetch(
            """
            SELECT department_id, meter, day, sum(amount) AS spend FROM usage_daily
            WHERE day >= $1 AND day <= $2 AND department_id IS NOT NULL
            GROUP BY 1, 2, 3
            """,
            first, day,
        )
        spend = {(r["department_id"], r["meter"], r["day"]): r["spend"] for r in rows}
        found = judge_day(day, spend, rule)
        if not found:
            return []
        inserted = await conn.fetch(
            """
            INSERT INTO spend_warnings (day, department_id, meter, spend, median, mad, mad_used, robust_z,
                                        threshold, baseline)
            SELECT $1, d, m, s, me, ma, mu, z, t, b::jsonb
            FROM unnest($2::text[], $3::text[], $4::numeric[], $5::numeric[], $6::numeric[], $7::numeric[],
                        $8::numeric[], $9::numeric[], $10::text[]) AS w(d, m, s, me, ma, mu, z, t, b)
            ON CONFLICT (department_id, meter, day) DO NOTHING
            RETURNING id
            """,
            day,
            [f[0] for f in found],
            [f[1] for f in found],
            [f[2].spend for f in found],
            [f[2].median for f in found],
            [f[2].mad for f in found],
            [f[2].mad_used for f in found],
            [f[2].robust_z.quantize(Z_PLACES) for f in found],
            [f[2].threshold for f in found],
            [orjson.dumps({"from": (day - timedelta(days=rule.window_days)).isoformat(),
                           "to": (day - timedelta(days=1)).isoformat(),
                           "spend": [format(v, "f") for v in f[3]]}).decode() for f in found],
        )
    return [r["id"] for r in inserted]


async def publish_pending(engine: AsyncEngine, producer, topic: str, batch: int = 500) -> int:
    """Send unpublished warnings to the warnings topic and mark them; returns how many were sent."""
    sent = 0
    while True:
        async with raw_transaction(engine) as conn:
            rows = await conn.fetch(
                WARNING_SELECT + " WHERE w.published_at IS NULL ORDER BY w.id LIMIT $1 FOR UPDATE OF w SKIP LOCKED",
                batch,
            )
            if not rows:
                return sent
            for r in rows:
                body = warning_out(r, "zh")
                await producer.send_and_wait(topic, orjson.dumps(body),
                                             key=f"{r['department_id']}/{r['meter']}/{r['day']}".encode())
            await conn.execute("UPDATE spend_warnings SET published_at = now() WHERE id = ANY($1::bigint[])",
                               [r["id"] for r in rows])
            sent += len(rows)
            SPEND_WARNINGS.inc(len(rows))


def completed_days(now: datetime, lookback: int) -> list[date]:
    today = now.astimezone(LOCAL_TZ).date()
    return [today - timedelta(days=n) for n in range(lookback, 0, -1)]


async def warning_loop(engine: AsyncEngine, producer, settings) -> None:
    """The query API's background task: evaluate the last completed days, publish, sleep, repeat."""
    while True:
        try:
            for day in completed_days(datetime.now(LOCAL_TZ), settings.warnings_lookback_days):
                await evaluate_day(engine, day)
            await publish_pending(engine, producer, settings.warnings_topic)
        except asyncio.CancelledError:
            raise
        except Exception:  # a failed round is retried next round; the API keeps serving
            log.exception("warning evaluation failed")
        await asyncio.sleep(settings.warnings_interval_seconds)
