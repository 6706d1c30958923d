"""The billing API's background task: close due periods, evaluate budgets, publish alerts, every N seconds."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import UTC, datetime
from typing import Callable, Collection

from sqlalchemy.ext.asyncio import AsyncEngine

from services.billing.budgets import evaluate_all_budgets, publish_alerts
from services.billing.closing import close_due_periods
from services.common.config import Settings
from services.projection.partitions import keep_partitions

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


def this_instance() -> str:
    """How a billing API process names itself on the periods it closes."""
    return f"{socket.gethostname()}:{os.getpid()}"


async def billing_tick(engine: AsyncEngine, settings: Settings, producer, now: datetime,
                       only: Collection[str] | None = None, instance: str | None = None) -> None:
    """One round. Each step is safe with several billing API instances: closing takes an advisory lock (and is
    idempotent), alerts are stored once, and publishing locks the rows it sends."""
    # A period an active source is behind is skipped with a warning naming it (see close_due_periods).
    closed = await close_due_periods(engine, now, settings.close_grace_days, only=only, instance=instance,
                                     active_days=settings.source_active_days)
    for outcome in closed or []:
        if outcome.closed_now:  # not a period another instance closed first
            log.info("period %s closed automatically by %s: %d bills", outcome.period, instance,
                     len(outcome.bills))
    await evaluate_all_budgets(engine, settings.budget_projection_min_hours)
    if producer is not None:
        await publish_alerts(engine, producer, settings.alerts_topic)


async def run_billing_loop(engine: AsyncEngine, settings: Settings, producer, clock: Callable[[], datetime] = utc_now,
                           interval: float | None = None, only: Collection[str] | None = None,
                           instance: str | None = None) -> None:
    interval = settings.billing_check_seconds if interval is None else interval
    instance = instance or this_instance()
    upkept_on = None
    while True:
        now = clock()
        if now.date() != upkept_on:  # once a day: the next months' partitions of usage_hourly
            try:
                await keep_partitions(engine, now)
                upkept_on = now.date()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("usage_hourly partition upkeep failed")
        try:
            await billing_tick(engine, settings, producer, now, only, instance)
        except asyncio.CancelledError:
            raise
        except Exception:  # a failed round is logged and retried next round; the loop must not die
            log.exception("billing background round failed")
        await asyncio.sleep(interval)
