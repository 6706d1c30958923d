"""The web console in a real browser: Debian's Chromium driven by Playwright, against the three APIs, the metering
worker and the console as real processes (``govmeter api …``, ``govmeter worker metering``) on free ports, over a
database of their own (its rate cards are global and dated this year, unlike the other tests' 2030 windows)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy.engine import make_url

from services.common.auth import issue_token
from services.common.db import drop_database
from services.common.periods import Month
from services.demo.rate_cards import propose_and_approve
from tests.conftest import APP_ROLE, OWNER_ROLE, SUPERUSER_URL
from tests.integration.conftest import drop_roles
from tests.integration.support import SOURCE, lifecycle_event, usage_event

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = REPO / ".cache" / "screenshots"
LOCAL = ZoneInfo("Asia/Shanghai")
DEPARTMENTS = {"ui-edu": "市教育局", "ui-health": "市卫生健康委员会", "ui-police": "市公安局"}
# resource -> (department, information system, meter, base quantity per hour)
RESOURCES = {
    "ui-vm-edu": ("ui-edu", "智慧教育平台", "compute.vcpu", 8),
    "ui-vm-health": ("ui-health", "医保结算系统", "compute.vcpu", 16),
    "ui-disk-health": ("ui-health", "医保结算系统", "storage.block", 2000),
    "ui-vm-police": ("ui-police", "警务云", "compute.vcpu", 32),
    "ui-waf-police": ("ui-police", "警务云", "security.waf", 1),
}
PRICES = {"compute.vcpu": "0.12", "storage.block": "0.0004", "security.waf": "0.35"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def month_start(moment: datetime, back: int = 0) -> datetime:
    return Month.of(moment).shifted(-back).start


@dataclass
class Stack:
    console: str
    apis: dict[str, str]
    kafka: str = ""
    events_topic: str = ""
    processes: list[subprocess.Popen] = field(default_factory=list)

    def token(self, role: str, department: str | None = None) -> str:
        return issue_token(role, department, sources=[SOURCE] if role == "provider" else ())

    def get(self, api: str, path: str, token: str, **params) -> httpx.Response:
        return httpx.get(f"{self.apis[api]}{path}", params=params, timeout=60,
                         headers={"Authorization": f"Bearer {token}"})


def _wait_healthy(url: str, processes: list[subprocess.Popen], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            raise RuntimeError("a console test process exited during start-up")
        try:
            if httpx.get(url + "/healthz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not become healthy")


async def _produce(bootstrap: str, topic: str, value: bytes) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


async def _propose_and_approve(billing: str, card: dict) -> httpx.Response:
    async with httpx.AsyncClient(timeout=60) as client:
        return await propose_and_approve(client, card, billing)


def _seed(stack: Stack, now: datetime) -> None:
    admin, provider = stack.token("admin"), stack.token("provider")
    with httpx.Client(timeout=60) as client:
        def post(api: str, path: str, body, token=admin):
            answer = client.post(f"{stack.apis[api]}{path}", json=body, headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code in (200, 201, 202), answer.text
            return answer

        for department, name in DEPARTMENTS.items():
            post("billing", "/v1/departments", {"id": department, "name": name})
        first = month_start(now, 13)
        card = {"version": "ui-1", "effective_from": first.isoformat(), "currency": "CNY", "prices": PRICES}
        approved = in_thread(_propose_and_approve(stack.apis["billing"], card))
        assert approved.status_code == 201, approved.text
        events = [lifecycle_event(resource, "activated", department, first, system=system)
                  for resource, (department, system, _, _) in RESOURCES.items()]
        until = now.replace(minute=0, second=0, microsecond=0)
        for back in range(13, -1, -1):
            start, end = month_start(now, back), month_start(now, back - 1) if back else until
            for n, (resource, (_, _, meter, base)) in enumerate(RESOURCES.items()):
                hours = int((end - start).total_seconds() // 3600)
                # a rising trend with a per-resource wobble, so the chart and the projections have a shape
                quantity = base * hours * (100 + 3 * (13 - back) + (n * back) % 7) / 100
                events.append(usage_event(resource, meter, f"{quantity:.3f}", start, end))
        # an hour of CPU and memory samples a day for last month: the department page's p95 column
        for day in range(1, 28):
            for resource, cpu in (("ui-vm-edu", 12), ("ui-vm-police", 71)):
                start = month_start(now, 1) + timedelta(days=day - 1, hours=10)
                events.append({"specversion": "1.0", "id": f"util-{resource}-{day}", "source": SOURCE,
                               "type": "gov.cloud.utilization.v1", "subject": resource, "time": start.isoformat(),
                               "data": {"cpu_percent": str(cpu + day % 5), "memory_percent": "40",
                                        "start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()}})
        post("metering", "/v1/events", events, token=provider)
        deadline = time.monotonic() + 120
        while True:
            sources = client.get(f"{stack.apis['billing']}/v1/sources",
                                 headers={"Authorization": f"Bearer {admin}"}).json()
            if sum(s["events"] for s in sources) >= len(events):
                break
            assert time.monotonic() < deadline, sources
            time.sleep(0.3)
        # a record produced straight into Kafka that the validator refuses: a dead letter with its reason
        bad = usage_event("ui-vm-edu", "compute.vcpu", "-1", until - timedelta(hours=1), event_id="ui-bad-quantity")
        in_thread(_produce(stack.kafka, stack.events_topic, json.dumps(bad).encode()))
        while not client.get(f"{stack.apis['metering']}/v1/dead-letters",
                             headers={"Authorization": f"Bearer {admin}"}).json()["dead_letters"]:
            assert time.monotonic() < deadline, "no dead letter"
            time.sleep(0.3)
        # last month closes: a final bill with its content hash; a budget that this year's spend has passed
        post("billing", f"/v1/periods/{month_start(now, 1):%Y-%m}/close", {})
        post_budget = client.put(f"{stack.apis['billing']}/v1/budgets/ui-police/{now.year}", json={"amount": "5000.00"},
                                 headers={"Authorization": f"Bearer {stack.token('finance')}"})
        assert post_budget.status_code == 200, post_budget.text


@pytest.fixture(scope="package")  # gone before the integration tests' session fixtures drop the roles
def console_stack(tmp_path_factory):
    env = dict(os.environ)
    suffix = "_ui"
    for name in ("DATABASE_URL", "GOVMETER_MIGRATION_DATABASE_URL"):
        url = make_url(env[name])
        env[name] = url.set(database=url.database + suffix).render_as_string(hide_password=False)
    env["GOVMETER_TOPIC_PREFIX"] = env["GOVMETER_TOPIC_PREFIX"] + "-ui"
    env["GOVMETER_BILLING_CHECK_SECONDS"] = "0"  # closes only when the test asks
    ports = {api: free_port() for api in ("metering", "billing", "query", "console")}
    for api, port in ports.items():
        env[f"GOVMETER_{api.upper()}_PORT"] = str(port)
    logs = tmp_path_factory.mktemp("console-stack")
    me = [sys.executable, "-m", "services.cli"]
    subprocess.run([*me, "migrate"], cwd=REPO, env=env, check=True, capture_output=True)
    stack = Stack(console=f"http://127.0.0.1:{ports['console']}",
                  apis={api: f"http://127.0.0.1:{port}" for api, port in ports.items() if api != "console"},
                  kafka=env["KAFKA_BOOTSTRAP_SERVERS"], events_topic=f"{env['GOVMETER_TOPIC_PREFIX']}.events")
    try:
        for name in ("metering", "billing", "query", "console"):
            stack.processes.append(subprocess.Popen([*me, "api", name], cwd=REPO, env=env, start_new_session=True,
                                                    stdout=open(logs / f"{name}.log", "ab"), stderr=subprocess.STDOUT))
        stack.processes.append(subprocess.Popen([*me, "worker", "metering"], cwd=REPO, env=env, start_new_session=True,
                                                stdout=open(logs / "worker.log", "ab"), stderr=subprocess.STDOUT))
        for url in [*stack.apis.values(), stack.console]:
            _wait_healthy(url, stack.processes)
        _seed(stack, datetime.now(LOCAL))
        yield stack
    finally:
        for process in stack.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in stack.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        superuser = make_url(env["GOVMETER_BOOTSTRAP_DATABASE_URL"])
        in_thread(drop_database(superuser.set(database=make_url(env["DATABASE_URL"]).database)
                                .render_as_string(hide_password=False)))
        try:  # the roles too, unless the integration tests' database still uses them (they drop them then)
            in_thread(drop_roles(SUPERUSER_URL, OWNER_ROLE, APP_ROLE))
        except Exception:
            pass


def in_thread(coroutine):
    """Run a coroutine to completion from sync code even while pytest-asyncio's loop runs in this thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@pytest.fixture(scope="package")  # sync Playwright runs an event loop in this thread: closed before other packages
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: bash scripts/bootstrap.sh installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
