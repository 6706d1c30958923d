"""Rate cards take effect only when approved (maker/checker): a proposal changes no figure; a second, different
person (admin or finance) approves it, and only then is it stored, re-prices and is published; the proposer never
decides on their own card; rejections keep their reason; who and when are on the card and in the ledger.
Years 2092–2093 belong to these tests."""

from __future__ import annotations

import pytest

from services.common.auth import issue_token
from services.common.db import get_engine, raw_connection
from services.demo.rate_cards import PROPOSER, checker_headers, proposer_headers
from tests.integration.support import ADMIN, FINANCE, PROVIDER, auth, lifecycle_event, usage_event
from tests.integration.test_billing import department, local, new_id, publish, rate_card

pytestmark = pytest.mark.usefixtures("worker")


def card_body(effective_from, **prices) -> dict:
    return {"version": new_id("rc-approval"), "effective_from": effective_from.isoformat(), "currency": "CNY",
            "prices": {meter.replace("_", "."): price for meter, price in prices.items()}}


async def propose(apps, body, headers=None) -> dict:
    response = await apps["billing"].post("/v1/rate-cards", json=body, headers=headers or proposer_headers())
    assert response.status_code == 202, response.text
    return response.json()


async def figures(apps, department_id: str, month: str) -> tuple:
    """What a department's month comes to: its bill (draft), its usage with amounts, and the rate cards."""
    bill = await apps["billing"].get(f"/v1/bills/GM-{month}-{department_id}", headers=FINANCE)
    usage = await apps["query"].get("/v1/usage", headers=FINANCE, params={
        "from": f"{month}-01", "to": f"{month}-28", "department": department_id, "group_by": "meter",
        "granularity": "total"})
    cards = await apps["billing"].get("/v1/rate-cards", headers=FINANCE)
    assert bill.status_code == usage.status_code == cards.status_code == 200, (bill.text, usage.text)
    return {k: v for k, v in bill.json().items() if k != "as_of"}, usage.json(), cards.json()  # as_of: when read


async def ledger_of(version: str) -> list[dict]:
    async with raw_connection(get_engine()) as conn:
        rows = await conn.fetch("SELECT kind, department_id, period, amount, reason, created_by FROM ledger_entries "
                                "WHERE reference = $1 AND kind LIKE 'rate_card_%' ORDER BY seq", version)
    return [dict(r) for r in rows]


async def test_a_pending_card_changes_no_figure_until_a_second_person_approves_it(apps, worker):
    dep = await department(apps)
    await rate_card(apps, local(2092, 1, 1), compute_vcpu="1.00")
    vm = new_id("vm")
    await publish(apps, [lifecycle_event(vm, "activated", dep, local(2092, 1, 1)),
                         usage_event(vm, "compute.vcpu", "3", local(2092, 2, 3, 10))], worker)
    before = await figures(apps, dep, "2092-02")
    assert before[0]["total"] == "3.00"

    body = card_body(local(2092, 2, 1), compute_vcpu="2.50")
    proposal = await propose(apps, body)
    assert (proposal["status"], proposal["proposed_by"], proposal["decided_by"]) == ("pending", PROPOSER, None)
    assert await figures(apps, dep, "2092-02") == before  # bills, usage and the effective cards: unchanged

    approved = await apps["billing"].post(f"/v1/rate-cards/proposals/{proposal['id']}/approve",
                                          headers=checker_headers())
    assert approved.status_code == 201, approved.text
    card = approved.json()
    assert (card["version"], card["created_by"], card["approved_by"]) == (body["version"], PROPOSER,
                                                                           "rate-card-checker")
    assert card["proposed_at"] == proposal["proposed_at"] and card["approved_at"] >= card["proposed_at"]
    bill, usage, cards = await figures(apps, dep, "2092-02")
    assert bill["total"] == "7.50" and usage["rows"][0]["amount"] == "7.50"  # re-priced at once: 3 × 2.50
    assert [c for c in cards if c["version"] == body["version"]] == [card]
    assert [(e["kind"], e["created_by"], e["department_id"], e["period"]) for e in await ledger_of(body["version"])] \
        == [("rate_card_proposed", PROPOSER, None, "2092-02"), ("rate_card_approved", "rate-card-checker", None,
                                                                "2092-02")]
    verified = (await apps["billing"].get("/v1/ledger/verify", headers=ADMIN)).json()
    assert not [p for p in verified["problems"] if body["version"] in p["problem"]], verified


async def test_the_proposer_never_approves_or_rejects_their_own_card_under_any_role(apps):
    proposal = await propose(apps, card_body(local(2093, 12, 1), compute_vcpu="9.00"))
    same_admin = proposer_headers()
    same_subject_as_finance = auth_for("finance", PROPOSER)
    for headers in (same_admin, same_subject_as_finance):
        approve = await apps["billing"].post(f"/v1/rate-cards/proposals/{proposal['id']}/approve", headers=headers)
        assert approve.status_code == 403 and approve.json()["detail"].startswith("sub:"), approve.text
        reject = await apps["billing"].post(f"/v1/rate-cards/proposals/{proposal['id']}/reject", headers=headers,
                                            json={"reason": "mine"})
        assert reject.status_code == 403 and reject.json()["detail"].startswith("sub:"), reject.text
    pending = (await apps["billing"].get("/v1/rate-cards/proposals?status=pending", headers=FINANCE)).json()
    assert proposal["id"] in [p["id"] for p in pending]
    # a second, different admin may approve
    other_admin = auth_for("admin", "second-admin")
    approved = await apps["billing"].post(f"/v1/rate-cards/proposals/{proposal['id']}/approve", headers=other_admin)
    assert approved.status_code == 201 and approved.json()["approved_by"] == "second-admin", approved.text


def auth_for(role: str, subject: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(role, subject=subject)}"}


async def test_a_rejected_card_keeps_its_reason_prices_nothing_and_frees_its_version(apps):
    body = card_body(local(2093, 11, 1), compute_vcpu="8.00")
    proposal = await propose(apps, body)
    taken = await apps["billing"].post("/v1/rate-cards", json=body, headers=proposer_headers())
    assert taken.status_code == 409 and taken.json()["detail"].startswith("version:"), taken.text
    url = f"/v1/rate-cards/proposals/{proposal['id']}"
    no_reason = await apps["billing"].post(f"{url}/reject", json={"reason": ""}, headers=checker_headers())
    assert no_reason.status_code == 422 and "reason" in no_reason.text, no_reason.text
    rejected = await apps["billing"].post(f"{url}/reject", json={"reason": "单价高于招标价"}, headers=checker_headers())
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["status"], rejected.json()["reason"], rejected.json()["decided_by"],
            rejected.json()["decided_role"]) == ("rejected", "单价高于招标价", "rate-card-checker", "finance")
    for decision, extra in (("approve", {}), ("reject", {"json": {"reason": "again"}})):
        again = await apps["billing"].post(f"{url}/{decision}", headers=checker_headers(), **extra)
        assert again.status_code == 409 and again.json()["detail"].startswith("status:"), again.text
    cards = (await apps["billing"].get("/v1/rate-cards", headers=ADMIN)).json()
    assert body["version"] not in [c["version"] for c in cards]
    assert [(e["kind"], e["reason"]) for e in await ledger_of(body["version"])] == [
        ("rate_card_proposed", None), ("rate_card_rejected", "单价高于招标价")]
    assert (await apps["billing"].post("/v1/rate-cards", json=body, headers=proposer_headers())).status_code == 202


async def test_only_admin_proposes_and_only_admin_or_finance_see_and_decide_proposals(apps):
    dep = await department(apps)
    proposal = await propose(apps, card_body(local(2093, 10, 1), compute_vcpu="7.00"))
    department_token, provider_token = auth("department", dep), PROVIDER
    body = card_body(local(2093, 10, 1), compute_vcpu="1.00")
    for headers in (department_token, provider_token, FINANCE):
        assert (await apps["billing"].post("/v1/rate-cards", json=body, headers=headers)).status_code == 403
    for headers in (department_token, provider_token):
        listed = await apps["billing"].get("/v1/rate-cards/proposals", headers=headers)
        assert listed.status_code == 403, listed.text
        for decision, extra in (("approve", {}), ("reject", {"json": {"reason": "no"}})):
            answer = await apps["billing"].post(f"/v1/rate-cards/proposals/{proposal['id']}/{decision}",
                                                headers=headers, **extra)
            assert answer.status_code == 403, answer.text
    bad_status = await apps["billing"].get("/v1/rate-cards/proposals?status=maybe", headers=ADMIN)
    assert bad_status.status_code == 422 and "status" in bad_status.text
    for bad_id in ("0", "x", str(2**63)):
        answer = await apps["billing"].post(f"/v1/rate-cards/proposals/{bad_id}/approve", headers=checker_headers())
        assert answer.status_code == 422 and "proposal_id" in answer.text, answer.text
    unknown = await apps["billing"].post("/v1/rate-cards/proposals/999999999/approve", headers=checker_headers())
    assert unknown.status_code == 404 and unknown.json()["detail"].startswith("proposal_id:")
