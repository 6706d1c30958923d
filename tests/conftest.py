"""Test configuration. Settings come from the environment and are read once, so they are set before any
service module is imported: each test run gets its own database and its own topics on the real broker.

The database is owned by a role of the run's own (the migrations run as it) and every service connects as
another, with only the grants of services/common/privileges.py, so the suite exercises least privilege. A
superuser (``GOVMETER_TEST_SUPERUSER_URL``, scripts/postgres.sh's by default) makes both roles and, in the tests
that tamper with the database on purpose, plays the intruder."""

import os
import secrets
import uuid

from sqlalchemy.engine import make_url

RUN_ID = uuid.uuid4().hex[:10]
SUPERUSER_URL = os.environ.get("GOVMETER_TEST_SUPERUSER_URL",
                               "postgresql+asyncpg://postgres:postgres@127.0.0.1:5432/postgres")
DATABASE = "govmeter_test_" + RUN_ID
OWNER_ROLE, APP_ROLE = f"govmeter_test_{RUN_ID}_owner", f"govmeter_test_{RUN_ID}_app"


def _url(role: str | None = None) -> str:
    url = make_url(SUPERUSER_URL).set(database=DATABASE)
    if role:
        url = url.set(username=role, password=secrets.token_hex(16))
    return url.render_as_string(hide_password=False)


os.environ.setdefault("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
os.environ["DATABASE_URL"] = _url(APP_ROLE)
os.environ["GOVMETER_MIGRATION_DATABASE_URL"] = _url(OWNER_ROLE)
os.environ["GOVMETER_BOOTSTRAP_DATABASE_URL"] = SUPERUSER_URL
os.environ["GOVMETER_TOPIC_PREFIX"] = f"govmeter-test-{RUN_ID}"
os.environ["GOVMETER_JWT_SECRET"] = secrets.token_urlsafe(48)  # this run's own; the worker inherits it
os.environ["GOVMETER_WORKER_BATCH_SECONDS"] = "0.05"
# Webhook retries in tenths of seconds, not seconds (tests/integration/test_webhooks.py waits on them).
os.environ["GOVMETER_WEBHOOK_POLL_SECONDS"] = "0.2"
os.environ["GOVMETER_WEBHOOK_RETRY_BASE_SECONDS"] = "0.3"
# The run's database as the superuser: for tests that tamper with it the way an intruder with full rights would.
SUPERUSER_DATABASE_URL = _url()
