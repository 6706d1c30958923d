"""Magnitudes: amounts, prices and rate-card figures beyond the documented maxima are refused with 422 before
anything is stored; JSON numbers in request bodies are read as decimals, never as binary floats; and the largest
quantity the events contract allows, at the largest price, closes to an exact bill.

Era: 2046–2047 (rate cards are global and effective-dated; other tests live in other years)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal, localcontext

import orjson
import pytest

from tests.integration.support import ADMIN, FINANCE, lifecycle_event, usage_event
from tests.integration.test_billing import close, department, get_bill, local, new_id, publish, rate_card

pytestmark = pytest.mark.usefixtures("worker")

LARGEST_QUANTITY = "999999999999999999999.999999999"  # 21 whole digits, 9 places
LARGEST_PRICE = "999999.999999"


async def post_raw(client, path: str, text: str, method: str = "POST"):
    """A JSON body sent as written, so that its numbers are numbers with every digit given."""
    return await client.request(method, path, content=text.encode(),
                                headers={**ADMIN, "content-type": "application/json"})


async def test_adjustments_and_budgets_beyond_the_maximum_are_refused_before_anything_is_stored(apps):
    dep = await department(apps)
    billing = apps["billing"]
    for amount in ("1E+30", "-1000000000000", "1000000000000.00"):
        response = await post_raw(billing, "/v1/adjustments", f'{{"department_id": "{dep}", "amount": {amount}, '
                                                              f'"reason": "x", "month": "2047-03"}}')
        assert response.status_code == 422, response.text
        assert "amount" in response.text and "less than 1,000,000,000,000 yuan" in response.text
    assert (await billing.get("/v1/adjustments", params={"department": dep}, headers=FINANCE)).json() == []
    response = await post_raw(billing, f"/v1/budgets/{dep}/2047", '{"amount": 4e193}', method="PUT")
    assert response.status_code == 422, response.text
    assert (await billing.get("/v1/budgets", params={"department": dep}, headers=FINANCE)).json() == []

    largest = await post_raw(billing, "/v1/adjustments",
                             f'{{"department_id": "{dep}", "amount": -999999999999.99, "reason": "x", '
                             f'"month": "2047-03"}}')
    assert largest.status_code == 201, largest.text
    assert largest.json()["amount"] == "-999999999999.99"
    budget = await post_raw(billing, f"/v1/budgets/{dep}/2047", '{"amount": 999999999999.99}', method="PUT")
    assert budget.status_code == 200 and budget.json()["amount"] == "999999999999.99", budget.text
    bill = await get_bill(apps, f"GM-2047-03-{dep}")
    assert bill["total"] == "-999999999999.99"


async def test_rate_card_figures_beyond_the_maxima_are_refused(apps):
    effective = local(2047, 6, 1).isoformat()
    for prices, field in (('{"compute.vcpu": 1000000}', "compute.vcpu"),
                          ('{"compute.vcpu": "1e7"}', "compute.vcpu"),
                          ('{"network.egress": {"tiers": [{"up_to": 1e21, "unit_price": 1}, '
                           '{"up_to": null, "unit_price": 1}]}}', "up_to"),
                          ('{"network.egress": {"tiers": [{"up_to": 0.0000000001, "unit_price": 1}, '
                           '{"up_to": null, "unit_price": 1}]}}', "up_to")):
        response = await post_raw(apps["billing"], "/v1/rate-cards",
                                  f'{{"version": "{new_id("big")}", "effective_from": "{effective}", '
                                  f'"prices": {prices}}}')
        assert response.status_code == 422 and field in response.text, (prices, response.text)


async def test_json_numbers_in_bodies_are_read_as_decimals_not_floats(apps):
    effective = local(2047, 1, 1).isoformat()
    # 0.1000000000000000055511151231257827 is the binary float nearest 0.1: read as a float it would pass as "0.1"
    hidden_places = await post_raw(apps["billing"], "/v1/rate-cards",
                                   f'{{"version": "{new_id("rc")}", "effective_from": "{effective}", '
                                   f'"prices": {{"compute.vcpu": 0.1000000000000000055511151231257827}}}}')
    assert hidden_places.status_code == 422 and "6 decimal places" in hidden_places.text, hidden_places.text
    exact = await post_raw(apps["billing"], "/v1/rate-cards",
                           f'{{"version": "{new_id("rc")}", "effective_from": "{effective}", "prices": '
                           f'{{"compute.vcpu": 0.123457, "network.egress": {{"tiers": ['
                           f'{{"up_to": 1234567890.123456789, "unit_price": 0.5}}, '
                           f'{{"up_to": null, "unit_price": 0.25}}'
                           f']}}}}}}')
    assert exact.status_code == 202, exact.text  # proposed: the prices as read
    tiers = exact.json()["prices"]["network.egress"]["tiers"]
    assert [(t["up_to"], t["unit_price"]) for t in tiers] == [("1234567890.123456789", "0.5"), (None, "0.25")]
    assert exact.json()["prices"]["compute.vcpu"] == "0.123457"


async def test_the_largest_quantities_at_the_largest_price_close_to_an_exact_bill(apps, worker):
    dep = await department(apps)
    await rate_card(apps, local(2046, 1, 1), compute_vcpu=LARGEST_PRICE)
    vm = new_id("vm")
    await publish(apps, [lifecycle_event(vm, "activated", dep, local(2046, 1, 1)),
                         *(usage_event(vm, "compute.vcpu", LARGEST_QUANTITY, local(2046, 1, 2) + timedelta(hours=h))
                           for h in range(3))], worker)
    await rate_card(apps, local(2046, 2, 1), compute_vcpu="1.00")  # later years are not priced at the maximum
    closed = await close(apps, "2046-01", local(2046, 2, 5))
    with localcontext() as context:
        context.prec = 100
        quantity = 3 * Decimal(LARGEST_QUANTITY)
        amount = (quantity * Decimal(LARGEST_PRICE)).quantize(Decimal("0.01"))
    assert amount > Decimal(10) ** 27
    bill = await get_bill(apps, f"GM-2046-01-{dep}")
    (line,) = bill["lines"]
    assert (line["quantity"], line["amount"], bill["total"]) == (f"{quantity:f}", f"{amount:f}", f"{amount:f}")
    assert [b["total"] for b in closed["bills"] if b["department_id"] == dep] == [f"{amount:f}"]
    csv = await apps["billing"].get(f"/v1/bills/GM-2046-01-{dep}.csv", headers=FINANCE)
    assert f"{quantity:f}" in csv.content.decode() and f"{amount:f}" in csv.content.decode()
    usage = await apps["query"].get("/v1/usage", headers=FINANCE, params={
        "from": "2046-01-01", "to": "2046-02-01", "department": dep})
    assert orjson.loads(usage.content)["rows"][0]["amount"] == f"{amount:f}"
