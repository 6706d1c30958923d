"""The trial phase (试运行) end to end: a fulfilment with a trial, usage during and after it, the draft and final
bills with trial lines at the trial rate (0 by default), going live early, replay, and department scope. Closes
billing months in 2069 only (the year given to this file)."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta

import openpyxl
import pytest

from services.common.config import get_settings
from services.common.db import get_engine
from services.replay.run import replay
from tests.integration.support import ADMIN, PROVIDER, SOURCE, auth, usage_event, wait_stored
from tests.integration.test_applications import EGOV, apply, clock, department, step
from tests.integration.test_billing import close, get_bill, local, publish, rate_card

pytestmark = pytest.mark.usefixtures("worker")


async def approved_application(apps, dep: str, month: int) -> dict:
    with clock(local(2069, month, 2, 9)):
        created = await apply(apps, dep, wanted_by=f"2069-{month:02d}-20")
        await step(apps, created["id"], "accept", EGOV)
        return await step(apps, created["id"], "approve", EGOV)


async def in_trial(apps, month: int, fulfilled_at, trial_days: int) -> tuple[str, str, dict, str]:
    """(department, another department, the application fulfilled with a trial, its VM) at ¥1.00 a vCPU hour."""
    await rate_card(apps, local(2069, 1, 1), compute_vcpu="1.00")
    dep, other = await department(apps), await department(apps)
    application = await approved_application(apps, dep, month)
    vm = f"vm-{uuid.uuid4().hex[:8]}"
    with clock(fulfilled_at):
        fulfilled = await step(apps, application["id"], "fulfil", PROVIDER, resource_id=vm, source=SOURCE,
                               trial_days=trial_days)
    return dep, other, fulfilled, vm


def lines_of(bill: dict) -> list[tuple]:
    return [(line["meter"], line.get("trial_rate"), line["quantity"], line["amount"]) for line in bill["lines"]]


async def test_trial_usage_is_metered_and_billed_on_trial_lines_at_zero_and_replay_gives_the_same_bill(apps, worker):
    dep, other, fulfilled, vm = await in_trial(apps, 3, local(2069, 3, 3, 10, 30), 2)
    mine, application = auth("department", dep), fulfilled
    trial = fulfilled["trial"]
    assert (trial["phase"], trial["rate"]) == ("trial", "0")
    assert fulfilled["steps"][-1]["note"].endswith("trial of 2 days")
    # The trial runs from 3 March 10:30 to 5 March 10:30: hours touching the window are trial hours.
    used = [usage_event(vm, "compute.vcpu", "5", local(2069, 3, 4, 10)),
            usage_event(vm, "compute.vcpu", "2", local(2069, 3, 5, 10)),
            usage_event(vm, "compute.vcpu", "3", local(2069, 3, 6, 10))]
    await wait_stored([{"source": SOURCE, "id": f"application-{application['id']}"}])
    await publish(apps, used, worker)

    draft = await get_bill(apps, f"GM-2069-03-{dep}", mine)
    assert lines_of(draft) == [("compute.vcpu", None, "3", "3.00"), ("compute.vcpu", "0", "7", "0.00")]
    assert draft["total"] == "3.00"
    with clock(local(2069, 3, 4)):
        assert (await step(apps, application["id"], "go-live", auth("department", other), expect=404))
    csv = (await apps["billing"].get(f"/v1/bills/GM-2069-03-{dep}.csv", headers=mine)).content.decode("utf-8-sig")
    assert "试运行用量" in csv and "按正常价格的 0 倍计费" in csv
    assert (await apps["billing"].get(f"/v1/bills/GM-2069-03-{dep}", headers=auth("department", other))
            ).status_code in (403, 404)

    await close(apps, "2069-03", local(2069, 4, 1))
    final = await get_bill(apps, f"GM-2069-03-{dep}", mine)
    assert final["status"] == "final" and lines_of(final) == lines_of(draft)
    xlsx = await apps["billing"].get(f"/v1/bills/GM-2069-03-{dep}/document.xlsx", headers=mine)
    cells = {c.value for row in openpyxl.load_workbook(io.BytesIO(xlsx.content)).active.iter_rows() for c in row}
    assert "试运行用量" in cells
    report = await replay(get_engine(), get_settings().database_url)
    assert report.ok, report.differences


async def test_the_department_goes_live_early_and_usage_from_then_is_billed_normally(apps, worker):
    dep, other, fulfilled, vm = await in_trial(apps, 5, local(2069, 5, 3, 10), 30)
    mine, application = auth("department", dep), fulfilled
    assert fulfilled["trial"]["phase"] == "trial"
    with clock(local(2069, 5, 5, 12)):
        await step(apps, application["id"], "go-live", auth("department", other), expect=404)
        await step(apps, application["id"], "go-live", PROVIDER, expect=403)
        live = await step(apps, application["id"], "go-live", mine)
        assert (live["state"], live["trial"]["phase"], live["trial"]["went_live_by"]) == ("fulfilled", "live", dep)
        assert live["steps"][-1]["action"] == "go-live"
        again = await step(apps, application["id"], "go-live", mine, expect=409)
        assert again["detail"].startswith("state: the application is live")
    assert live["trial"]["ends_at"] != live["trial"]["planned_ends_at"]
    used = [usage_event(vm, "compute.vcpu", "4", local(2069, 5, 4, 10)),
            usage_event(vm, "compute.vcpu", "6", local(2069, 5, 6, 10))]
    await wait_stored([{"source": SOURCE, "id": f"application-{application['id']}"}])
    await publish(apps, used, worker)
    draft = await get_bill(apps, f"GM-2069-05-{dep}", mine)
    assert lines_of(draft) == [("compute.vcpu", None, "6", "6.00"), ("compute.vcpu", "0", "4", "0.00")]


async def test_a_trial_is_refused_naming_the_field_when_it_could_not_be_billed_truthfully(apps, worker):
    dep = await department(apps)
    application = await approved_application(apps, dep, 7)
    with clock(local(2069, 7, 20)):
        for body, field in (({"trial_days": 0}, "trial_days"), ({"trial_days": 91}, "trial_days"),
                            ({"trial_days": 1, "effective_at": local(2069, 7, 10).isoformat()}, "trial_days")):
            answer = await apps["billing"].post(f"/v1/applications/{application['id']}/fulfil", headers=PROVIDER,
                                                json={"resource_id": "vm-t", "source": SOURCE, **body})
            assert answer.status_code == 422 and field in answer.text, answer.text
        # Nothing was recorded: the application is still approved, without a trial.
        still = (await apps["billing"].get(f"/v1/applications/{application['id']}", headers=ADMIN)).json()
        assert (still["state"], still["trial"]) == ("approved", None)
        # Without a trial there is nothing to go live from
        with pytest.raises(AssertionError):
            await step(apps, application["id"], "go-live", ADMIN)
