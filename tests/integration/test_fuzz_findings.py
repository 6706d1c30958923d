"""What the fuzzer found (tests/integration/test_fuzz_openapi.py), pinned: each was a 500 and is now a 4xx naming
the field, and the metering API describes the body of POST /v1/events so that generated requests reach it."""

from __future__ import annotations

import pytest

from services.metering.api import app as metering_app
from tests.integration.support import ADMIN, FINANCE


def test_metering_api_describes_the_cloudevents_single_and_batch_bodies():
    body = metering_app.openapi()["paths"]["/v1/events"]["post"]["requestBody"]
    content = body["content"]
    assert body["required"] and set(content) == {
        "application/cloudevents+json", "application/cloudevents-batch+json", "application/json"}
    event = content["application/cloudevents+json"]["schema"]
    assert {branch["properties"]["type"]["const"] for branch in event["anyOf"]} == {
        "gov.cloud.usage.v1", "gov.cloud.resource.v1", "gov.cloud.utilization.v1"}
    assert content["application/cloudevents-batch+json"]["schema"]["items"] == event
    assert content["application/json"]["schema"]["oneOf"][0] == event
    assert "$ref" not in str(event)  # inlined: a $defs reference would resolve against the whole document


@pytest.mark.parametrize("path", ["/v1/budgets", "/v1/alerts"])
async def test_a_year_out_of_range_is_a_422_not_a_500(apps, path):
    response = await apps["billing"].get(path, params={"year": -4255475217754540}, headers=FINANCE)
    assert response.status_code == 422 and "year" in response.text


@pytest.mark.parametrize("path, body, field", [
    ("/v1/adjustments", {"department_id": "dep\x00", "amount": "1.00", "reason": "r"}, "department_id"),
    ("/v1/adjustments", {"department_id": "dep", "amount": "1.00", "reason": "r\x00"}, "reason"),
    ("/v1/adjustments", {"department_id": "dep", "amount": "1.00", "reason": "r", "reference": "\x00"}, "reference"),
    ("/v1/departments", {"id": "dep-nul", "name": "市\x00局"}, "name"),
    ("/v1/rate-cards", {"version": "v\x00", "effective_from": "2040-01-01T00:00:00+08:00", "prices": {}}, "version"),
])
async def test_a_nul_in_a_text_field_is_a_422_naming_it(apps, path, body, field):
    response = await apps["billing"].post(path, json=body, headers=ADMIN)
    assert response.status_code == 422 and field in response.text, response.text
