"""Fixtures over the real parts: Apache Kafka (started by scripts/kafka-broker.sh), PostgreSQL, the metering
worker as its own process, and the three APIs served in-process through httpx."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from bench.drills import Process
from services.common.config import get_settings
from services.common.db import asyncpg_dsn, drop_database, get_engine
from services.common.kafka import broker_reachable, ensure_topics
from services.common.migrate import migrate_from_settings
from tests.conftest import APP_ROLE, OWNER_ROLE, SUPERUSER_DATABASE_URL, SUPERUSER_URL

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def settings():
    return get_settings()


@pytest.fixture(scope="session")
def broker(settings):
    if not asyncio.run(broker_reachable(settings.kafka_bootstrap_servers)):
        subprocess.check_call(["bash", str(REPO / "scripts" / "kafka-broker.sh"), "start"])
    asyncio.run(ensure_topics(settings))
    return settings.kafka_bootstrap_servers


@pytest.fixture(scope="session")
def database(settings):
    migrate_from_settings(settings)  # as `govmeter migrate`: roles, database, schema, grants
    yield settings.database_url
    asyncio.run(drop_database(SUPERUSER_DATABASE_URL))
    asyncio.run(drop_roles(SUPERUSER_URL, OWNER_ROLE, APP_ROLE))


async def drop_roles(superuser_url: str, *roles: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(superuser_url))
    try:
        for role in roles:
            await conn.execute(f'DROP ROLE IF EXISTS "{role}"')
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WorkerProcess(Process):
    """``govmeter worker metering`` as a child process that a test can kill outright (``kill``: SIGKILL, no clean
    shutdown, no offset commit, a batch possibly half done)."""

    def __init__(self, log_path: Path, topic_prefix: str | None = None) -> None:
        self.metrics_port = free_port()  # its /metrics; kept across restarts
        env = {**os.environ, "GOVMETER_WORKER_METRICS_PORT": str(self.metrics_port)}
        if topic_prefix is not None:  # topics and a worker group of a test's own
            env["GOVMETER_TOPIC_PREFIX"] = topic_prefix
        super().__init__(["worker", "metering"], env, log_path)

    @property
    def process(self) -> subprocess.Popen | None:
        return self.popen

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="session")
def worker(broker, database, tmp_path_factory):
    process = WorkerProcess(tmp_path_factory.mktemp("worker") / "worker.log")
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
async def apps(broker, database):
    from services.billing.api import app as billing_app
    from services.metering.api import app as metering_app
    from services.query.api import app as query_app

    clients = {}
    contexts = []
    for name, app in (("metering", metering_app), ("billing", billing_app), ("query", query_app)):
        context = app.router.lifespan_context(app)
        await context.__aenter__()
        contexts.append(context)
        clients[name] = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}")
    yield clients
    for client in clients.values():
        await client.aclose()
    for context in reversed(contexts):
        await context.__aexit__(None, None, None)
    await get_engine().dispose()


_windows = itertools.count()


@pytest.fixture
def window():
    """A time window of its own for each test (rate cards are global and effective-dated)."""
    return datetime(2030, 1, 1, tzinfo=UTC) + timedelta(days=120 * next(_windows))
