"""Tokens and request limits at the three real APIs (#13): claims checked, one audience per API, authentication
before a body is read, and bounded requests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest

from services.common.auth import AUDIENCES, issue_token
from tests.integration.support import ADMIN, PROVIDER, post_events, usage_event

REPO = Path(__file__).resolve().parents[2]


def signed(settings, **claims) -> dict[str, str]:
    """A token with exactly ``claims`` (None drops a claim), signed with the run's secret."""
    now = int(time.time())
    base = {"sub": "someone", "role": "admin", "iat": now, "exp": now + 3600, "aud": list(AUDIENCES.values())}
    body = {k: v for k, v in {**base, **claims}.items() if v is not None}
    return {"Authorization": f"Bearer {jwt.encode(body, settings.jwt_secret, algorithm='HS256')}"}


NOT_AN_ID = "department must be a department id"
BAD_CLAIMS = {  # the claims that differ from a good admin token, and the reason the 401 gives
    "department as a number": (dict(role="department", department=7), NOT_AN_ID),
    "department as a list": (dict(role="department", department=["a", "b"]), NOT_AN_ID),
    "department as an object": (dict(role="department", department={"id": "a"}), NOT_AN_ID),
    "department not an id": (dict(role="department", department="a b/../c"), NOT_AN_ID),
    "department too long": (dict(role="department", department="d" * 65), NOT_AN_ID),
    "admin with a department list": (dict(department=["a"]), NOT_AN_ID),
    "department missing": (dict(role="department"), "must name its department"),
    "no iat": (dict(iat=None), '"iat"'),
    "iat not a number": (dict(iat="yesterday"), "(iat)"),
    "iat in the future": (dict(iat=int(time.time()) + 3600, exp=int(time.time()) + 7200), "(iat)"),
    "lifetime over 24 h": (dict(iat=int(time.time()) - 60, exp=int(time.time()) + 86_400), "lifetime over 86400"),
    "expired": (dict(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600), "expired"),
    "no exp": (dict(exp=None), '"exp"'),
    "no sub": (dict(sub=None), '"sub"'),
    "sub a number": (dict(sub=5), "Subject must be a string"),
    "no audience": (dict(aud=None), '"aud"'),
    "another audience": (dict(aud=["someone-else"]), "Audience doesn't match"),
    "role a list": (dict(role=["admin"]), "role must be one of"),
    "unknown role": (dict(role="root"), "role must be one of"),
}


async def responses_at_every_api(apps, headers):
    return (
        await apps["billing"].get("/v1/departments", headers=headers),
        await apps["query"].get("/v1/usage", params={"from": "2030-01-01", "to": "2030-01-02"}, headers=headers),
        await post_events(apps["metering"], [{}], headers=headers),
    )


async def test_a_good_token_is_taken_at_every_api(apps, settings):
    good = await responses_at_every_api(apps, signed(settings))
    assert [r.status_code for r in good] == [200, 200, 422]  # 422: the empty event was read and refused
    department = await responses_at_every_api(apps, signed(settings, role="department", department="dep-1.a_b"))
    assert [r.status_code for r in department[:2]] == [200, 200]


@pytest.mark.parametrize("claims, why", BAD_CLAIMS.values(), ids=BAD_CLAIMS.keys())
async def test_a_token_with_bad_claims_is_401_at_every_api(apps, settings, claims, why):
    for response in await responses_at_every_api(apps, signed(settings, **claims)):
        assert response.status_code == 401, response.text
        assert response.json()["detail"].startswith("Authorization:") and why in response.json()["detail"]
        assert response.headers["www-authenticate"] == "Bearer"


async def test_a_token_is_taken_only_by_the_apis_it_names(apps, settings):
    def at(*apis):
        return {"Authorization": f"Bearer {issue_token('admin', audience=apis)}"}

    async def statuses(headers) -> dict[str, int]:
        return {
            "billing": (await apps["billing"].get("/v1/departments", headers=headers)).status_code,
            "query": (await apps["query"].get("/v1/usage", params={"from": "2030-01-01", "to": "2030-01-02"},
                                              headers=headers)).status_code,
            "metering": (await post_events(apps["metering"], [{}], headers=headers)).status_code,  # 422: checked
        }

    assert await statuses(at("billing")) == {"billing": 200, "query": 401, "metering": 401}
    assert await statuses(at("query", "metering")) == {"billing": 401, "query": 200, "metering": 422}
    assert await statuses(at()) == {"billing": 200, "query": 200, "metering": 422}  # default: all three
    single = signed(settings, aud=AUDIENCES["billing"])  # a single audience as a string is fine too
    assert (await apps["billing"].get("/v1/departments", headers=single)).status_code == 200
    within_leeway = signed(settings, iat=int(time.time()) + 10)
    assert (await apps["billing"].get("/v1/departments", headers=within_leeway)).status_code == 200


async def test_a_body_is_not_read_before_the_token_is_checked(apps):
    # Not JSON at all: before, the billing API parsed the body first and answered 422 to anyone.
    for client, path in ((apps["billing"], "/v1/adjustments"), (apps["billing"], "/v1/rate-cards"),
                         (apps["billing"], "/v1/departments"), (apps["metering"], "/v1/events")):
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            response = await client.post(path, content=b"{not json", headers={**headers, "content-type":
                                                                                 "application/json"})
            assert response.status_code == 401, (path, response.text)
    put = await apps["billing"].put("/v1/budgets/x/2030", content=b"[", headers={"content-type": "application/json"})
    assert put.status_code == 401, put.text
    # a valid token of the wrong role is still 403, and a bad body with a good token still 422
    wrong_role = await apps["billing"].post("/v1/adjustments", json={"department_id": "x"}, headers=PROVIDER)
    assert wrong_role.status_code == 403, wrong_role.text
    assert (await apps["billing"].post("/v1/adjustments", content=b"{", headers={
        **ADMIN, "content-type": "application/json"})).status_code == 422


async def test_a_body_over_the_limit_is_413_at_every_api(apps, settings):
    too_big = b"[" + b" " * settings.max_body_bytes + b"]"
    for client, path in ((apps["metering"], "/v1/events"), (apps["billing"], "/v1/adjustments"),
                         (apps["query"], "/v1/usage")):
        response = await client.post(path, content=too_big, headers={**ADMIN, "content-type": "application/json"})
        assert response.status_code == 413, (path, response.text)
        assert "GOVMETER_MAX_BODY_BYTES" in response.json()["detail"]


async def test_a_request_with_more_events_than_the_limit_is_413_and_nothing_is_sent(apps, settings, monkeypatch):
    monkeypatch.setattr(settings, "max_events_per_request", 3)
    start = datetime(2031, 1, 1, tzinfo=UTC)
    events = [usage_event("vm-limit", "compute.vcpu", "1", start) for _ in range(4)]
    refused = await post_events(apps["metering"], events)
    assert refused.status_code == 413, refused.text
    assert "at most 3" in refused.json()["detail"] and "GOVMETER_MAX_EVENTS_PER_REQUEST" in refused.json()["detail"]
    assert (await post_events(apps["metering"], events[:3])).status_code == 202


@pytest.mark.parametrize("secret", [None, "too-short-a-secret"])
def test_govmeter_api_and_token_refuse_to_run_without_a_long_secret(secret):
    env = {k: v for k, v in os.environ.items() if k != "GOVMETER_JWT_SECRET"}
    if secret is not None:
        env["GOVMETER_JWT_SECRET"] = secret
    for command in (["api", "metering", "--port", "0"], ["token", "--role", "admin"]):
        try:
            done = subprocess.run([sys.executable, "-m", "services.cli", *command], cwd=REPO, env=env,
                                  capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"govmeter {' '.join(command)} ran without a secret")
        assert done.returncode == 2, done.stderr
        assert "GOVMETER_JWT_SECRET" in done.stderr and "at least 32 bytes" in done.stderr
