"""Disputes of final bill lines (Art. 13) end to end through the billing API: every state change, every refusal,
the credit on the next open bill and in the ledger, and a department's scope (Art. 18). Years 2090–2091 only."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from services.replay.run import replay
from services.common.db import asyncpg_dsn, get_engine
from tests.integration.support import ADMIN, FINANCE, PROVIDER, auth, lifecycle_event, usage_event
from tests.integration.test_billing import close, department, get_bill, local, new_id, publish, rate_card

pytestmark = pytest.mark.usefixtures("worker")


async def billed(apps, worker, year: int, vcpu: str = "10", name: str = "市财政局", month: int = 1,
                 later: tuple[tuple[str, tuple[int, int, int]], ...] = ()) -> str:
    """A department whose VM, active from the 1st of ``month``, used ``vcpu`` compute.vcpu on its 5th (and
    ``later``: (quantity, (year, month, day)) more)."""
    dep = await department(apps, name)
    vm = new_id("vm")
    await publish(apps, [lifecycle_event(vm, "activated", dep, local(year, month, 1)),
                         usage_event(vm, "compute.vcpu", vcpu, local(year, month, 5)),
                         *(usage_event(vm, "compute.vcpu", q, local(*day)) for q, day in later)], worker)
    return dep


async def disputed_final_bill(apps, worker, year: int, month: int, vcpu: str) -> tuple[str, dict]:
    """A department's closed ``month`` (compute.vcpu at ¥1.00) and an open dispute of its compute.vcpu line."""
    await rate_card(apps, local(year, month, 1), compute_vcpu="1.00")
    dep = await billed(apps, worker, year, vcpu, month=month)
    await close(apps, f"{year}-{month:02d}", local(year, month + 1, 1))
    return dep, await dispute(apps, dep, f"GM-{year}-{month:02d}-{dep}")


async def dispute(apps, dep: str, bill_id: str, meter: str = "compute.vcpu", reason: str = "主机已停用仍计费",
                  expected: int = 201, headers=None) -> dict:
    response = await apps["billing"].post("/v1/disputes", json={"bill_id": bill_id, "meter": meter, "reason": reason},
                                          headers=headers or auth("department", dep))
    assert response.status_code == expected, response.text
    return response.json()


async def answer(apps, dispute_id: int, verb: str, body: dict, headers=FINANCE, expected: int = 200) -> dict:
    response = await apps["billing"].post(f"/v1/disputes/{dispute_id}/{verb}", json=body, headers=headers)
    assert response.status_code == expected, response.text
    return response.json()


def detail(answer: dict) -> str:
    return answer["detail"] if isinstance(answer["detail"], str) else str(answer["detail"][0]["loc"])


async def test_only_a_line_of_the_departments_own_final_bill_can_be_disputed_once_at_a_time(apps, worker):
    await rate_card(apps, local(2090, 1, 1), compute_vcpu="1.00")
    mine, theirs = await billed(apps, worker, 2090), await billed(apps, worker, 2090, "7", "市公安局")
    idle = await department(apps, "市档案馆")  # no resources, no bill
    bill = f"GM-2090-01-{mine}"
    draft = await dispute(apps, mine, bill, expected=409)
    assert draft["detail"] == f"bill_id: {bill} is a draft (period 2090-01 is open); only a final bill can be disputed"
    await close(apps, "2090-01", local(2090, 2, 1))

    opened = await dispute(apps, mine, bill)
    assert {k: opened[k] for k in ("department_id", "bill_id", "period", "meter", "line_quantity", "line_amount",
                                   "status", "opened_by", "answered_by", "answered_at", "reply", "credit")} == {
        "department_id": mine, "bill_id": bill, "period": "2090-01", "meter": "compute.vcpu", "line_quantity": "10",
        "line_amount": "10.00", "status": "open", "opened_by": mine, "answered_by": None, "answered_at": None,
        "reply": None, "credit": None}
    assert opened["opened_at"] and opened["reason"] == "主机已停用仍计费"
    again = await dispute(apps, mine, bill, reason="再次提出", expected=409)
    assert again["detail"] == f"meter: dispute {opened['id']} of this line of {bill} is still open"
    refusals = [
        ({"bill_id": bill, "meter": "network.egress"}, 422, f"meter: bill {bill} has no line for network.egress"),
        ({"bill_id": f"GM-2090-01-{theirs}"}, 403, "bill_id: a department may dispute only its own"),
        ({"bill_id": "GM-2090-13-x"}, 422, "bill_id: not a bill number"),
        ({"bill_id": f"GM-2090-01-{idle}", "headers": auth("department", idle)}, 404,
         f"bill_id: no final bill GM-2090-01-{idle}"),
        ({"bill_id": bill, "reason": ""}, 422, "reason"),
        ({"bill_id": bill, "reason": "x" * 1001}, 422, "reason"),
        ({"bill_id": bill, "headers": FINANCE}, 403, "role finance may not do this"),
        ({"bill_id": bill, "headers": ADMIN}, 403, "role admin may not do this"),
    ]
    for change, status, why in refusals:
        headers = change.pop("headers", None)
        body = {"meter": "compute.vcpu", "reason": "理由", **change}
        response = await apps["billing"].post("/v1/disputes", json=body, headers=headers or auth("department", mine))
        assert response.status_code == status and why in detail(response.json()), (change, response.text)
    listed = await apps["billing"].get("/v1/disputes", params={"bill_id": bill}, headers=FINANCE)
    assert [d["id"] for d in listed.json()] == [opened["id"]]  # nothing refused was stored


async def test_an_upheld_dispute_is_a_credit_on_the_next_open_bill_and_in_the_ledger_and_closed_bills_never_change(
        apps, worker, settings):
    await rate_card(apps, local(2090, 4, 1), compute_vcpu="1.00")
    dep = await billed(apps, worker, 2090, month=4, later=(("3", (2090, 6, 5)),))
    await close(apps, "2090-04", local(2090, 5, 1))
    await close(apps, "2090-05", local(2090, 6, 1))  # the credit skips the closed May: it lands on June
    bill = f"GM-2090-04-{dep}"
    before = await apps["billing"].get(f"/v1/bills/{bill}", headers=FINANCE)
    opened = await dispute(apps, dep, bill)
    mine = auth("department", dep)

    for body, why in [({"amount": "10.01"}, "amount: at most 10.00 (the line's 10.00)"), ({"amount": "0"}, "amount"),
                      ({"amount": "-1.00"}, "amount"), ({"amount": "1.001"}, "amount"), ({}, "amount")]:
        refused = await answer(apps, opened["id"], "uphold", body, expected=422)
        assert why in detail(refused), (body, refused)
    assert (await answer(apps, opened["id"], "uphold", {"amount": "1.00"}, headers=mine, expected=403))
    assert (await answer(apps, opened["id"], "uphold", {"amount": "1.00"}, headers=PROVIDER, expected=403))
    upheld = await answer(apps, opened["id"], "uphold", {"amount": "4.00", "reply": "核实停用，核减"})
    assert {k: upheld[k] for k in ("status", "credit", "credit_period", "answered_by", "reply", "opened_by")} == {
        "status": "upheld", "credit": "4.00", "credit_period": "2090-06", "answered_by": "finance",
        "reply": "核实停用，核减", "opened_by": dep}
    assert upheld["answered_at"] >= upheld["opened_at"] and upheld["adjustment_id"] and upheld["ledger_seq"]
    for verb, body in (("reject", {"reply": "晚了"}), ("uphold", {"amount": "1.00"})):  # an answer is final
        twice = await answer(apps, opened["id"], verb, body, headers=ADMIN, expected=409)
        assert twice["detail"].startswith(f"status: dispute {opened['id']} is already upheld (by finance at ")

    after = await apps["billing"].get(f"/v1/bills/{bill}", headers=FINANCE)
    assert after.content == before.content  # the disputed final bill is as issued
    june = await get_bill(apps, f"GM-2090-06-{dep}", mine)
    credit = [a for a in june["adjustments"] if a["kind"] == "manual"]
    assert [(a["id"], a["amount"], a["reference"], a["created_by"]) for a in credit] == [
        (upheld["adjustment_id"], "-4.00", f"dispute:{opened['id']}", "finance")]
    assert credit[0]["reason"] == f"争议 #{opened['id']} 成立 (dispute upheld): {bill} compute.vcpu"
    assert (june["usage_total"], june["adjustments_total"], june["total"]) == ("3.00", "-4.00", "-1.00")
    audit = (await apps["billing"].get("/v1/adjustments", params={"department": dep}, headers=mine)).json()
    assert [(a["id"], a["period"], a["amount"], a["ledger_seq"]) for a in audit] == [
        (upheld["adjustment_id"], "2090-06", "-4.00", upheld["ledger_seq"])]

    # a new dispute of the line once none is open: the line's amount less what was credited is the limit
    second = await dispute(apps, dep, bill, reason="剩余部分")
    refused = await answer(apps, second["id"], "uphold", {"amount": "6.01"}, expected=422)
    assert refused["detail"] == "amount: at most 6.00 (the line's 10.00 less 4.00 already credited by earlier disputes)"
    await answer(apps, second["id"], "uphold", {"amount": "6.00"}, headers=ADMIN)
    third = await dispute(apps, dep, bill, reason="还有")
    assert "amount: at most 0.00" in (await answer(apps, third["id"], "uphold", {"amount": "0.01"}, expected=422))[
        "detail"]

    closed = await close(apps, "2090-06", local(2090, 7, 1))
    final = await get_bill(apps, f"GM-2090-06-{dep}", mine)
    assert (final["status"], final["adjustments_total"], final["total"]) == ("final", "-10.00", "-7.00")
    assert {b["bill_id"]: b["total"] for b in closed["bills"]}[f"GM-2090-06-{dep}"] == "-7.00"
    verified = (await apps["billing"].get("/v1/ledger/verify", headers=ADMIN)).json()
    assert verified["ok"], verified["problems"]
    report = await replay(get_engine(), settings.database_url)
    assert report.ok, report.differences


async def test_a_rejected_dispute_keeps_its_reply_and_who_and_when_and_changes_no_bill(apps, worker):
    dep, opened = await disputed_final_bill(apps, worker, 2090, 8, "5")
    for body, field in (({}, "reply"), ({"reply": ""}, "reply"), ({"reply": "x", "amount": "1.00"}, "amount")):
        assert field in detail(await answer(apps, opened["id"], "reject", body, expected=422)), body
    missing = await answer(apps, 2**62, "reject", {"reply": "无"}, expected=404)
    assert missing["detail"] == f"dispute_id: no dispute {2**62}"
    rejected = await answer(apps, opened["id"], "reject", {"reply": "监控显示主机持续运行"}, headers=ADMIN)
    assert {k: rejected[k] for k in ("status", "answered_by", "reply", "credit", "credit_period", "adjustment_id")} == {
        "status": "rejected", "answered_by": "admin", "reply": "监控显示主机持续运行", "credit": None,
        "credit_period": None, "adjustment_id": None}
    assert rejected["answered_at"] >= rejected["opened_at"]
    late = await answer(apps, opened["id"], "uphold", {"amount": "1.00"}, expected=409)
    assert late["detail"].startswith(f"status: dispute {opened['id']} is already rejected (by admin at ")
    seen = await apps["billing"].get(f"/v1/disputes/{opened['id']}", headers=auth("department", dep))
    assert seen.json() == rejected  # the department sees the answer
    september = await get_bill(apps, f"GM-2090-09-{dep}")
    assert september["adjustments"] == []
    adjustments = await apps["billing"].get("/v1/adjustments", params={"department": dep}, headers=FINANCE)
    assert adjustments.json() == []


async def test_a_department_sees_only_its_own_disputes(apps, worker):
    await rate_card(apps, local(2091, 1, 1), compute_vcpu="1.00")
    mine, theirs = await billed(apps, worker, 2091), await billed(apps, worker, 2091, "7", "市公安局")
    await close(apps, "2091-01", local(2091, 2, 1))
    own = await dispute(apps, mine, f"GM-2091-01-{mine}", reason="本部门的理由")
    other = await dispute(apps, theirs, f"GM-2091-01-{theirs}", reason="公安局的理由")
    me = auth("department", mine)
    billing = apps["billing"]

    listed = await billing.get("/v1/disputes", headers=me)
    assert [d["id"] for d in listed.json()] == [own["id"]] and theirs not in listed.text and "公安局" not in listed.text
    for params in ({"department": theirs}, {"department": theirs, "status": "open"}):
        refused = await billing.get("/v1/disputes", params=params, headers=me)
        assert refused.status_code == 403 and theirs not in refused.text
    by_bill = await billing.get("/v1/disputes", params={"bill_id": f"GM-2091-01-{theirs}"}, headers=me)
    assert by_bill.status_code == 200 and by_bill.json() == []
    for path in (f"/v1/disputes/{other['id']}",):
        hidden = await billing.get(path, headers=me)
        assert hidden.status_code == 404 and theirs not in hidden.text and "公安局" not in hidden.text
    for verb, body in (("reject", {"reply": "不"}), ("uphold", {"amount": "1.00"})):
        assert (await billing.post(f"/v1/disputes/{other['id']}/{verb}", json=body, headers=me)).status_code == 403
    assert (await billing.get("/v1/disputes", headers=PROVIDER)).status_code == 403
    assert (await billing.get(f"/v1/disputes/{own['id']}", headers=PROVIDER)).status_code == 403

    everyone = await billing.get("/v1/disputes", params={"status": "open"}, headers=FINANCE)
    assert {own["id"], other["id"]} <= {d["id"] for d in everyone.json()}
    assert all(d["status"] == "open" for d in everyone.json())
    only_theirs = await billing.get("/v1/disputes", params={"department": theirs}, headers=ADMIN)
    assert [d["id"] for d in only_theirs.json()] == [other["id"]]
    bad = await billing.get("/v1/disputes", params={"status": "closed"}, headers=FINANCE)
    assert bad.status_code == 422 and "status" in str(bad.json()["detail"][0]["loc"])


async def test_the_database_lets_a_dispute_be_answered_once_and_never_edited_or_deleted(apps, worker, settings):
    _, opened = await disputed_final_bill(apps, worker, 2091, 3, "2")
    conn = await asyncpg.connect(asyncpg_dsn(settings.database_url))  # the services' role, as the API connects
    try:
        # what was disputed is not among the columns the services may change
        for statement in ("UPDATE disputes SET line_amount = 100 WHERE id = $1",
                          "UPDATE disputes SET reason = 'x' WHERE id = $1", "DELETE FROM disputes WHERE id = $1"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement, opened["id"])
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("TRUNCATE disputes")
        # an open dispute changes only by being answered; an answer is never taken back or given twice
        with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="answered once"):
            await conn.execute("UPDATE disputes SET reply = 'x' WHERE id = $1", opened["id"])
        await answer(apps, opened["id"], "reject", {"reply": "不成立"})
        for change in ("status = 'open', answered_by = NULL, answered_at = NULL",
                       "status = 'upheld', credit = 1, credit_period = '2091-04', adjustment_id = 1",
                       "reply = 'changed'"):
            with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="answered once"):
                await conn.execute(f"UPDATE disputes SET {change} WHERE id = $1", opened["id"])
    finally:
        await conn.close()
    assert (await apps["billing"].get(f"/v1/disputes/{opened['id']}", headers=FINANCE)).json()["reply"] == "不成立"


async def test_racing_disputes_of_a_line_open_one_and_racing_answers_answer_it_once(apps, worker):
    await rate_card(apps, local(2091, 5, 1), compute_vcpu="1.00")
    dep = await billed(apps, worker, 2091, "3", month=5)
    await close(apps, "2091-05", local(2091, 6, 1))
    body = {"bill_id": f"GM-2091-05-{dep}", "meter": "compute.vcpu", "reason": "同时提交"}
    opened = await asyncio.gather(*(apps["billing"].post("/v1/disputes", json=body, headers=auth("department", dep))
                                    for _ in range(4)))
    assert sorted(r.status_code for r in opened) == [201, 409, 409, 409]
    (winner,) = [r.json() for r in opened if r.status_code == 201]
    answers = await asyncio.gather(
        apps["billing"].post(f"/v1/disputes/{winner['id']}/uphold", json={"amount": "2.00"}, headers=FINANCE),
        apps["billing"].post(f"/v1/disputes/{winner['id']}/reject", json={"reply": "不成立"}, headers=ADMIN),
        apps["billing"].post(f"/v1/disputes/{winner['id']}/uphold", json={"amount": "3.00"}, headers=ADMIN))
    assert sorted(r.status_code for r in answers) == [200, 409, 409]
    (answered,) = [r.json() for r in answers if r.status_code == 200]
    credits = (await apps["billing"].get("/v1/adjustments", params={"department": dep}, headers=FINANCE)).json()
    assert [a["amount"] for a in credits] == ([] if answered["status"] == "rejected" else [f"-{answered['credit']}"])
