"""Test configuration. Settings come from the environment and are read once, so they are set before any
service module is imported: each test run gets its own database and its own topics on the real broker."""

import os
import secrets
import uuid

RUN_ID = uuid.uuid4().hex[:10]
os.environ.setdefault("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
os.environ["DATABASE_URL"] = os.environ.get(
    "GOVMETER_TEST_DATABASE_URL", "postgresql+asyncpg://postgres:postgres@127.0.0.1:5432/govmeter_test_" + RUN_ID
)
os.environ["GOVMETER_TOPIC_PREFIX"] = f"govmeter-test-{RUN_ID}"
os.environ["GOVMETER_JWT_SECRET"] = secrets.token_urlsafe(48)  # this run's own; the worker inherits it
os.environ["GOVMETER_WORKER_BATCH_SECONDS"] = "0.05"
