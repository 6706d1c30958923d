"""Spend anomaly warnings (Art. 12(2)): evaluation, storage, publication and ``GET /v1/warnings``.

Each local day, every department × meter's spend (usage_daily, exact yuan, across its systems) is judged
against its own trailing 14 days by ``anomaly.spend_anomaly``. An outlier is stored once per department, meter
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
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.api import Role
from schemas.reports import WarningList
from services.common.auth import Principal, require_roles
from services.common.db import get_engine, raw_connection, raw_transaction, without_statement_timeout
from schemas.money import yuan_text
from services.common.http_guards import DepartmentParam, MeterParam
from services.common.metrics import SPEND_WARNINGS
from services.common.periods import LOCAL_TZ
from services.common.scope import Rollup, read_scope
from services.query.reports.anomaly import Anomaly, AnomalyRule, spend_anomaly
from services.query.reports.common import parse_day
from services.query.reports.labels import check_lang, meter_name

log = logging.getLogger("govmeter.warnings")
router = APIRouter(tags=["warnings"])
Reader = Annotated[Principal, Depends(require_roles(*Role.ALL))]
RULE = AnomalyRule()
Z_PLACES = Decimal("0.0001")


def judge_day(day: date, spend: dict[tuple[str, str, date], Decimal],
              rule: AnomalyRule = RULE) -> list[tuple[str, str, Anomaly, list[Decimal]]]:
    """Pure: the outliers of ``day`` among daily spends keyed (department, meter, day)."""
    window = [day - timedelta(days=n) for n in range(rule.window_days, 0, -1)]
    found = []
    for department, meter in sorted({(d, m) for d, m, x in spend if x == day}):
        baseline = [spend.get((department, meter, past), Decimal(0)) for past in window]
        anomaly = spend_anomaly(baseline, spend[(department, meter, day)], rule)
        if anomaly is not None:
            found.append((department, meter, anomaly, baseline))
    return found


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


_SELECT = """
    SELECT w.id, w.day, w.department_id, w.meter, w.spend, w.median, w.mad, w.mad_used, w.robust_z, w.threshold,
           w.baseline, w.created_at, coalesce(d.name, w.department_id) AS department_name
    FROM spend_warnings w LEFT JOIN departments d ON d.id = w.department_id
"""


def warning_out(r, lang: str = "zh") -> dict:
    spend, median = yuan_text(r["spend"]), yuan_text(r["median"])
    name, meter = r["department_name"], meter_name(r["meter"], lang)
    z = format(r["robust_z"], "f")
    if lang == "zh":
        message = (f"{name}{r['day']}的{meter}支出{spend}元，显著高于前14天的中位数{median}元"
                   f"（稳健Z值{z}，超过阈值{r['threshold']}）")
    else:
        message = (f"{name} spent {spend} yuan on {meter} on {r['day']}, far above its 14-day median of {median} "
                   f"yuan (robust z {z} > {r['threshold']})")
    return {
        "id": r["id"], "day": r["day"].isoformat(), "department_id": r["department_id"], "department_name": name,
        "meter": r["meter"], "meter_name": meter, "spend": spend, "median": median,
        "mad": format(r["mad"], "f"), "mad_used": format(r["mad_used"], "f"), "robust_z": z,
        "threshold": format(r["threshold"], "f"), "baseline": r["baseline"], "message": message,
        "created_at": r["created_at"].isoformat(),
    }


async def publish_pending(engine: AsyncEngine, producer, topic: str, batch: int = 500) -> int:
    """Send unpublished warnings to the warnings topic and mark them; returns how many were sent."""
    sent = 0
    while True:
        async with raw_transaction(engine) as conn:
            rows = await conn.fetch(
                _SELECT + " WHERE w.published_at IS NULL ORDER BY w.id LIMIT $1 FOR UPDATE OF w SKIP LOCKED", batch
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


@router.get("/v1/warnings", response_model=WarningList)
async def get_warnings(principal: Reader, from_: Annotated[str | None, Query(alias="from")] = None,
                       to: str | None = None, department: DepartmentParam = None, meter: MeterParam = None,
                       lang: str = "zh", rollup: Rollup = False):
    """Spend anomaly warnings with the figures that triggered them, newest day first; ``from``/``to`` are local
    days (``to`` exclusive). A department token sees its own department's warnings only."""
    check_lang(lang)
    scope = (await read_scope(principal, department, rollup)).ids
    clauses, args = [], []
    if from_ is not None:
        args.append(parse_day("from", from_))
        clauses.append(f"w.day >= ${len(args)}")
    if to is not None:
        args.append(parse_day("to", to))
        clauses.append(f"w.day < ${len(args)}")
    if scope is not None:
        args.append(scope)
        clauses.append(f"w.department_id = ANY(${len(args)}::text[])")
    if meter is not None:
        args.append(meter)
        clauses.append(f"w.meter = ${len(args)}")
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    async with raw_connection(get_engine()) as conn:
        rows = await conn.fetch(_SELECT + where + " ORDER BY w.day DESC, w.department_id, w.meter LIMIT 5000", *args)
    return {"warnings": [warning_out(r, lang) for r in rows]}

