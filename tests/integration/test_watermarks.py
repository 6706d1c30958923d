"""Data-complete watermarks through the real worker: a hypervisor collector that goes silent before the month ends
holds the month's close (by hand and automatically), its late events release it, an admin can close past it (and
that is recorded on the period), and a source silent for longer than the activity window no longer holds.

Activity is judged against the wall clock (when the worker stored a source's last event), so these tests stand at
the real now, in months long past (2000) that no other test uses."""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from sqlalchemy import text

from services.billing.closing import close_due_periods
from services.common.db import get_engine
from tests.integration.conftest import REPO
from tests.integration.support import FINANCE, auth, dead_letters, lifecycle_event, post_events, usage_event, \
    wait_stored, wait_until
from tests.integration.test_billing import clock, department, local
from tests.integration.test_metering_resilience import producer, refusing_trigger  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("worker")
ADMIN = auth("admin")  # its subject is recorded as who closed


async def publish_as(apps, worker, sources: tuple[str, ...], events: list[dict]) -> None:
    response = await post_events(apps["metering"], events, headers=auth("provider", sources=sources))
    assert response.status_code == 202, response.text
    await wait_stored(events, worker)


async def sources(apps, headers=FINANCE, at: datetime | None = None) -> dict[str, dict]:
    with clock(at or datetime.now(UTC)):
        response = await apps["billing"].get("/v1/sources", headers=headers)
    assert response.status_code == 200, response.text
    return {s["source"]: s for s in response.json()}


async def close(apps, month: str, body: dict | None = None, at: datetime | None = None):
    with clock(at or datetime.now(UTC)):
        return await apps["billing"].post(f"/v1/periods/{month}/close", headers=ADMIN, json=body)


async def period(apps, month: str) -> dict | None:
    response = await apps["billing"].get("/v1/periods", headers=FINANCE)
    assert response.status_code == 200, response.text
    return next((p for p in response.json() if p["period"] == month), None)


async def auto_close_round(settings, only: set[str]):
    """One auto-close round at the real now, retried while the billing API's own background round (also at the
    real now) holds the closers' lock."""
    async def done():
        outcome = await close_due_periods(get_engine(), datetime.now(UTC), settings.close_grace_days, only=only,
                                          active_days=settings.source_active_days)
        return None if outcome is None else (outcome,)

    (outcome,) = await wait_until(done, timeout=120)
    return outcome


def instant(text_: str) -> datetime:
    return datetime.fromisoformat(text_)


async def assert_march_listed_within_scope(apps, dep: str, hypervisor: str, storage: str) -> None:
    """The silent hypervisor collector is behind March's end and holds it; the storage collector, complete to the
    end, holds nothing. A provider sees its token's sources only; a department may not look."""
    listed = await sources(apps)
    assert instant(listed[hypervisor]["complete_up_to"]) == local(2000, 3, 24)
    assert listed[hypervisor]["events"] == 2 and listed[hypervisor]["active"] is True
    assert listed[hypervisor]["holds"] == ["2000-03"]
    assert instant(listed[storage]["complete_up_to"]) == local(2000, 4, 1)
    assert listed[storage]["holds"] == [] and listed[storage]["events"] == 1
    mine = await sources(apps, headers=auth("provider", sources=(storage,)))
    assert list(mine) == [storage]
    refused = await apps["billing"].get("/v1/sources", headers=auth("department", dep))
    assert refused.status_code == 403


async def assert_april_closes_over_both_with_a_recorded_override(apps, hypervisor: str, storage: str) -> None:
    """Both sources are behind April's end: 409 naming both; the override needs a reason, then closes, and who,
    when, why and the sources behind are recorded on the period. Closing it again gives the same answer."""
    held = await close(apps, "2000-04")
    assert held.status_code == 409 and hypervisor in held.json()["detail"] and storage in held.json()["detail"]
    no_reason = await close(apps, "2000-04", {"override_watermarks": True})
    assert no_reason.status_code == 422 and "reason" in no_reason.text
    reason = "hv-cluster-3 collector decommissioned (CHG-2000-0501)"
    forced = await close(apps, "2000-04", {"override_watermarks": True, "reason": reason})
    assert forced.status_code == 200, forced.text
    override = forced.json()["watermark_override"]
    assert (override["by"], override["reason"]) == ("admin", reason)
    assert [(s["source"], instant(s["complete_up_to"])) for s in override["sources_behind"]] == [
        (hypervisor, local(2000, 4, 1, 1)), (storage, local(2000, 4, 1))]
    assert instant(override["at"]) == instant(forced.json()["closed_at"])
    assert (await period(apps, "2000-04"))["watermark_override"] == override
    again = await close(apps, "2000-04")  # closing a closed period: the same result, the override with it
    assert again.status_code == 200 and again.json() == forced.json()


async def test_a_silent_source_holds_the_close_until_its_data_passes_the_month_end(apps, worker, settings, caplog):
    tag = uuid.uuid4().hex[:8]
    hypervisor, storage = f"urn:test:wm-{tag}:hypervisor", f"urn:test:wm-{tag}:storage"
    dep = await department(apps)
    vm = f"vm-{tag}"
    activated = lifecycle_event(vm, "activated", dep, local(2000, 3, 1)) | {"source": hypervisor}
    # The hypervisor collector reports March up to the 24th and then falls silent; the storage collector has
    # delivered the whole month, exactly up to its end.
    await publish_as(apps, worker, (hypervisor, storage), [
        activated,
        usage_event(vm, "compute.vcpu", "2", local(2000, 3, 1), local(2000, 3, 24), source=hypervisor),
        usage_event(f"vol-{tag}", "storage.block", "100", local(2000, 3, 1), local(2000, 4, 1), source=storage),
    ])

    await assert_march_listed_within_scope(apps, dep, hypervisor, storage)

    # by hand: 409 naming the silent source (and not the one that is complete)
    held = await close(apps, "2000-03")
    assert held.status_code == 409, held.text
    assert hypervisor in held.json()["detail"] and storage not in held.json()["detail"]
    assert "2000-04-01T00:00:00+08:00" in held.json()["detail"] and "override_watermarks" in held.json()["detail"]
    # automatically: the round skips it and says why
    caplog.set_level(logging.WARNING, logger="services.billing")
    assert await auto_close_round(settings, {"2000-03"}) == []
    assert any(hypervisor in r.getMessage() and "2000-03" in r.getMessage() for r in caplog.records)
    march = await period(apps, "2000-03")
    assert (march["status"], march["held_by"]) == ("open", [hypervisor])

    # the collector comes back and delivers the rest of March, and an hour past it: March is released
    await publish_as(apps, worker, (hypervisor,), [
        usage_event(vm, "compute.vcpu", "2", local(2000, 3, 24), local(2000, 4, 1, 1), source=hypervisor)])
    listed = await sources(apps)
    assert instant(listed[hypervisor]["complete_up_to"]) == local(2000, 4, 1, 1)
    # April, which has that hour of usage, has ended and waits for both: neither has reached April's end
    assert listed[hypervisor]["holds"] == ["2000-04"] and listed[storage]["holds"] == ["2000-04"]
    await auto_close_round(settings, {"2000-03"})  # this round or the API's own background round closes it
    march = await period(apps, "2000-03")
    assert (march["status"], march["closed_by"], march["watermark_override"]) == ("closed", "auto-close", None)

    # April: both sources are behind its end. The override needs a reason, then closes and is recorded.
    await assert_april_closes_over_both_with_a_recorded_override(apps, hypervisor, storage)

    # May (the next open period) is held by both while they are active, from the command line too
    assert (await close(apps, "2000-05")).status_code == 409
    refused = govmeter("period", "close", "2000-05")
    assert refused.returncode == 1 and hypervisor in refused.stderr, refused.stderr
    forced = govmeter("period", "close", "2000-05", "--by", "ops-wang", "--override-watermarks", "collector retired")
    assert forced.returncode == 0, forced.stderr
    may = await period(apps, "2000-05")
    assert (may["watermark_override"]["by"], may["watermark_override"]["reason"]) == ("ops-wang", "collector retired")

    # June: once both have been silent for longer than the activity window they no longer hold, and it closes
    # without an override
    later = datetime.now(UTC) + timedelta(days=settings.source_active_days, minutes=1)
    assert (await close(apps, "2000-06")).status_code == 409
    listed = await sources(apps, at=later)
    assert listed[hypervisor]["active"] is False and listed[hypervisor]["holds"] == []
    june = await close(apps, "2000-06", at=later)
    assert june.status_code == 200, june.text
    assert june.json()["watermark_override"] is None


def govmeter(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


async def watermark(source: str) -> dict | None:
    async with get_engine().connect() as conn:
        row = (await conn.execute(text("SELECT * FROM source_watermarks WHERE source = :s"), {"s": source})).first()
    return None if row is None else dict(row._mapping)


async def test_watermarks_only_move_forward_and_count_each_event_once(apps, worker, window, producer, settings,
                                                                     refusing_trigger):
    """A batch the database partly refuses is bisected: the watermark counts the events that committed, not the
    refused one (however late its interval). A redelivered batch changes nothing; an older event arriving late
    is counted and leaves the watermark where it was."""
    source = f"urn:test:wm-{uuid.uuid4().hex[:8]}:collector"
    good = [usage_event(f"vm-{i}", "compute.vcpu", "1", window + timedelta(hours=i), source=source)
            for i in range(6)]
    poison = usage_event(f"poison-{uuid.uuid4().hex[:8]}", "compute.vcpu", "1", window + timedelta(days=20),
                         source=source)
    batch = [*good[:3], poison, *good[3:]]
    await producer.send_and_wait(settings.events_topic, orjson.dumps(batch))
    await wait_stored(good, worker)
    await wait_until(lambda: dead_letters(event_id=poison["id"]), worker=worker)
    mark = await watermark(source)
    assert (mark["complete_up_to"], mark["events"]) == (window + timedelta(hours=6), 6)

    # the batch redelivered whole, with an older event after it in the same record (parts commit in order)
    older = usage_event("vm-late", "compute.vcpu", "1", window - timedelta(days=3), source=source)
    await producer.send_and_wait(settings.events_topic, orjson.dumps([*batch, older]))
    await wait_stored([older], worker)
    mark = await watermark(source)
    assert (mark["complete_up_to"], mark["events"]) == (window + timedelta(hours=6), 7)
