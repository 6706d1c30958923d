"""Provider trust: a provider token writes only the CloudEvents sources it lists (admin any), and a lifecycle event
that attributes a resource to a department that does not exist is a dead letter, not an owner."""

from __future__ import annotations

import time

import jwt
import pytest

from services.cli import main as govmeter
from tests.integration.support import ADMIN, SOURCE, auth, dead_letters, lifecycle_event, post_events, stored_count, \
    usage_event, wait_stored, wait_until
from tests.integration.test_billing import department, local, new_id, publish

pytestmark = pytest.mark.usefixtures("worker")


async def test_a_provider_token_writes_only_the_sources_it_lists(apps, worker):
    metering = apps["metering"]
    vm = new_id("vm")
    mine = usage_event(vm, "compute.vcpu", "1", local(2063, 1, 1))
    other = usage_event(vm, "compute.vcpu", "1", local(2063, 1, 1), source="urn:test:another-collector")
    collector = auth("provider", sources=(SOURCE, "urn:test:third"))

    for body in ([other], [mine, other], other):
        response = await post_events(metering, body, headers=collector)
        assert response.status_code == 403, response.text
        assert "urn:test:another-collector" in response.json()["detail"]
    unbound = await post_events(metering, [mine], headers=auth("provider"))
    assert unbound.status_code == 403 and SOURCE in unbound.json()["detail"]

    assert (await post_events(metering, [mine], headers=collector)).status_code == 202
    assert (await post_events(metering, [other], headers=ADMIN)).status_code == 202  # admin may write any source
    await wait_stored([mine, other], worker)
    assert await stored_count([mine, other]) == 2


async def test_a_token_whose_sources_claim_is_not_a_list_of_names_is_refused(apps):
    from services.common.config import get_settings

    now = int(time.time())
    token = jwt.encode({"sub": "p", "role": "provider", "iat": now, "exp": now + 600, "aud": "govmeter-metering",
                        "sources": "urn:everything"}, get_settings().jwt_secret, algorithm="HS256")
    response = await post_events(apps["metering"], [usage_event("vm-x", "compute.vcpu", "1", local(2063, 1, 1))],
                                 headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401 and "sources" in response.json()["detail"]


def test_govmeter_token_binds_a_provider_to_its_sources(capsys):
    from services.common.config import get_settings

    assert govmeter(["token", "--role", "provider", "--source", "urn:b", "--source", "urn:a"]) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), get_settings().jwt_secret, algorithms=["HS256"],
                        audience="govmeter-metering")
    assert claims["role"] == "provider" and claims["sources"] == ["urn:a", "urn:b"]


async def test_a_lifecycle_event_for_an_unknown_department_is_a_dead_letter(apps, worker):
    dep = await department(apps)
    known, unknown = new_id("vm"), new_id("vm")
    stray = lifecycle_event(unknown, "activated", "dep-does-not-exist", local(2063, 2, 1))
    kept = lifecycle_event(known, "activated", dep, local(2063, 2, 1))
    response = await post_events(apps["metering"], [stray, kept])
    assert response.status_code == 202 and response.json()["accepted"] == 2  # the API cannot know; the worker does
    await wait_stored([kept], worker)
    letters = await wait_until(lambda: dead_letters(event_id=stray["id"]), worker=worker)
    assert [(d["reason"], d["errors"]) for d in letters] == [
        ("unknown department", ["data.department_id: department dep-does-not-exist does not exist"])]
    assert await stored_count([stray]) == 0
    # a termination attributes nothing: it is stored whatever department it names
    end = lifecycle_event(known, "terminated", "dep-gone-too", local(2063, 3, 1))
    await publish(apps, [end], worker)
