"""A realistic provider: ~30 departments, ~2,000 resources of every kind, usage every few simulated minutes.

The generators are plain functions (the benchmark reuses them); ``run_demo`` drives a running system over HTTP."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Iterator

import httpx

from services.common.auth import issue_token
from services.common.periods import Month
from services.demo.rate_cards import propose_and_approve

DEMO_DEPARTMENTS: list[tuple[str, str]] = [
    ("czj", "市财政局"), ("fgw", "市发展和改革委员会"), ("jyj", "市教育局"), ("gaj", "市公安局"),
    ("mzj", "市民政局"), ("sfj", "市司法局"), ("rsj", "市人力资源和社会保障局"), ("zrzyj", "市自然资源和规划局"),
    ("sthjj", "市生态环境局"), ("zjj", "市住房和城乡建设局"), ("jtj", "市交通运输局"), ("slj", "市水利局"),
    ("nyncj", "市农业农村局"), ("swj", "市商务局"), ("whgtj", "市文化广电旅游局"), ("wjw", "市卫生健康委员会"),
    ("tyjrswj", "市退役军人事务局"), ("yjglj", "市应急管理局"), ("sjj", "市审计局"), ("scjgj", "市市场监督管理局"),
    ("tjj", "市统计局"), ("ybj", "市医疗保障局"), ("dsjj", "市大数据发展管理局"), ("xfj", "市信访局"),
    ("gzw", "市国有资产监督管理委员会"), ("zxj", "市行政审批局"), ("qxj", "市气象局"), ("dag", "市档案馆"),
    ("gjj", "市住房公积金管理中心"), ("bgs", "市政府办公室"),
]
SYSTEMS = ["政务服务平台", "办公自动化系统", "数据共享交换平台", "业务管理系统", "门户网站", "视频监控平台"]

# Per resource kind: the meters it emits and a typical quantity per hour of use.
KIND_METERS: dict[str, list[tuple[str, str]]] = {
    "vm": [("compute.vcpu", "4"), ("compute.memory", "16"), ("security.host_protection", "1")],
    "volume": [("storage.block", "200")],
    "bucket": [("storage.object", "500"), ("storage.backup", "100")],
    "ip": [("network.public_ip", "1"), ("network.egress", "2.5")],
    "bandwidth": [("network.bandwidth", "50")],
    "lb": [("network.load_balancer", "1")],
    "security": [("security.waf", "1")],
}
KIND_WEIGHTS = {"vm": 45, "volume": 25, "bucket": 8, "ip": 8, "bandwidth": 5, "lb": 5, "security": 4}
DEMO_PRICES = {
    "compute.vcpu": "0.12", "compute.memory": "0.05", "compute.gpu": "8.50", "storage.block": "0.0012",
    "storage.object": "0.0006", "storage.backup": "0.0004", "network.bandwidth": "0.08", "network.egress": "0.50",
    "network.public_ip": "0.03", "network.load_balancer": "0.10", "security.waf": "1.20",
    "security.host_protection": "0.05",
}
SOURCE = "urn:govcloud:taizhou:demo-provider"


@dataclass(frozen=True)
class DemoResource:
    id: str
    department_id: str
    system: str
    kind: str
    meters: tuple[tuple[str, Decimal], ...]
    spec: dict


def demo_resources(count: int = 2000, seed: int = 7, departments=DEMO_DEPARTMENTS) -> list[DemoResource]:
    rng = random.Random(seed)
    kinds = list(KIND_WEIGHTS)
    weights = [KIND_WEIGHTS[k] for k in kinds]
    resources = []
    for n in range(count):
        kind = rng.choices(kinds, weights)[0]
        department_id = departments[n % len(departments)][0]
        scale = Decimal(rng.choice(["0.5", "1", "1", "2", "4"]))
        meters = tuple((meter, Decimal(q) * scale) for meter, q in KIND_METERS[kind])
        if kind == "vm" and rng.random() < 0.03:
            meters += (("compute.gpu", Decimal(1)),)
        spec = {"vcpu": int(4 * scale), "memory_gib": int(16 * scale)} if kind == "vm" else {"size": str(scale)}
        resources.append(DemoResource(f"{kind}-{n:05d}", department_id, rng.choice(SYSTEMS), kind, meters, spec))
    return resources


def lifecycle_event(resource: DemoResource, effective_at: datetime, action: str = "activated") -> dict:
    return {
        "specversion": "1.0", "id": str(uuid.uuid4()), "source": SOURCE, "type": "gov.cloud.resource.v1",
        "subject": resource.id, "time": effective_at.isoformat(),
        "data": {"action": action, "department_id": resource.department_id, "system": resource.system,
                 "effective_at": effective_at.isoformat(), "kind": resource.kind, "spec": resource.spec},
    }


def usage_events(resources: list[DemoResource], start: datetime, interval: timedelta, seed: int = 11,
                 source: str = SOURCE) -> Iterator[dict]:
    """Endless usage: every resource reports each of its meters for every interval, with some noise."""
    rng = random.Random(seed)
    hours = Decimal(interval.total_seconds()) / Decimal(3600)
    t = start
    while True:
        end = t + interval
        for resource in resources:
            for meter, per_hour in resource.meters:
                noise = Decimal(rng.randint(80, 120)) / 100
                quantity = (per_hour * hours * noise).quantize(Decimal("0.000001"))
                yield {
                    "specversion": "1.0", "id": str(uuid.uuid4()), "source": source, "type": "gov.cloud.usage.v1",
                    "subject": resource.id, "time": end.isoformat(),
                    "data": {"meter": meter, "quantity": str(quantity), "start": t.isoformat(),
                             "end": end.isoformat(), "attributes": {"tier": "ssd"} if meter == "storage.block" else {}},
                }
        t = end


async def register_departments_and_prices(client: httpx.AsyncClient, billing_url: str, version: str,
                                          effective_from: str) -> None:
    """The demo departments and a rate card with the demo prices, proposed and approved (already registered ones
    answer 409: fine)."""
    admin = {"Authorization": f"Bearer {issue_token('admin')}"}
    for dep_id, name in DEMO_DEPARTMENTS:
        await client.post(f"{billing_url}/v1/departments", json={"id": dep_id, "name": name}, headers=admin)
    await propose_and_approve(client, {"version": version, "effective_from": effective_from, "currency": "CNY",
                                       "prices": DEMO_PRICES}, billing_url)


HISTORY_METERS = ("compute.vcpu", "compute.memory", "storage.block", "network.bandwidth", "security.waf")


def history_resources(resources: list[DemoResource]) -> list[DemoResource]:
    """One resource per department standing for its fleet's past (the worker splits usage into hours: a year of every
    resource would be ~28 M hourly rows, a year of these ~1.3 M), with the fleet's hourly quantities of the main
    meters, retired when the live stream begins."""
    totals: dict[str, dict[str, Decimal]] = {}
    for resource in resources:
        for meter, per_hour in resource.meters:
            if meter in HISTORY_METERS:
                department = totals.setdefault(resource.department_id, {})
                department[meter] = department.get(meter, Decimal(0)) + per_hour
    return [DemoResource(f"history-{department}", department, SYSTEMS[0], "vm", tuple(sorted(meters.items())), {})
            for department, meters in totals.items()]


def history_events(resources: list[DemoResource], start: datetime, end: datetime, seed: int = 13) -> Iterator[dict]:
    """A year of history for the console's trends: per resource and meter one usage event per local month (the
    current month up to ``end``), growing about 2 % a month, with some noise."""
    rng = random.Random(seed)
    months = []
    t = start
    while t < end:
        following = Month.of(t).end
        months.append((t, min(following, end)))
        t = following
    for n, (first, last) in enumerate(months):
        hours = Decimal(int((last - first).total_seconds() // 3600))
        growth = Decimal(100 + 2 * (n - len(months))) / 100
        for resource in resources:
            for meter, per_hour in resource.meters:
                noise = Decimal(rng.randint(85, 115)) / 100
                quantity = (per_hour * hours * growth * noise).quantize(Decimal("0.000001"))
                yield {
                    "specversion": "1.0", "id": f"history-{resource.id}-{meter}-{first:%Y-%m}", "source": SOURCE,
                    "type": "gov.cloud.usage.v1", "subject": resource.id, "time": last.isoformat(),
                    "data": {"meter": meter, "quantity": str(quantity), "start": first.isoformat(),
                             "end": last.isoformat(), "attributes": {"tier": "ssd"} if meter == "storage.block" else {}},
                }


def utilisation_events(resources: list[DemoResource], end: datetime, days: int = 15, seed: int = 17) -> Iterator[dict]:
    """CPU and memory of every fifth VM over the last ``days`` (one event each, split into hours by the worker):
    the console's p95 column and the waste report's oversized VMs."""
    rng = random.Random(seed)
    start = end - timedelta(days=days)
    for resource in [r for r in resources if r.kind == "vm"][::5]:
        yield {"specversion": "1.0", "id": f"utilisation-{resource.id}-{end:%Y%m%d%H}", "source": SOURCE,
               "type": "gov.cloud.utilization.v1", "subject": resource.id, "time": end.isoformat(),
               "data": {"cpu_percent": str(rng.choice([6, 12, 18, 35, 55, 72])),
                        "memory_percent": str(rng.randint(20, 85)), "start": start.isoformat(), "end": end.isoformat()}}


def demo_budgets(resources: list[DemoResource], seed: int = 19) -> dict[str, Decimal]:
    """A yearly budget per department around its run rate (some above, some below: alerts to show)."""
    rng = random.Random(seed)
    yearly: dict[str, Decimal] = {}
    for resource in resources:
        for meter, per_hour in resource.meters:
            yearly[resource.department_id] = (yearly.get(resource.department_id, Decimal(0))
                                              + per_hour * 24 * 365 * Decimal(DEMO_PRICES[meter]))
    return {d: (amount * Decimal(rng.randint(70, 140)) / 100).quantize(Decimal("1000")) for d, amount in yearly.items()}


async def run_demo(urls: dict[str, str], rate: float = 200.0, duration: float = 0.0, resources: int = 2000) -> None:
    """Set up departments, a rate card, resources, budgets and a year of history, then stream usage at ``rate``
    events/s."""
    provider = {"Authorization": f"Bearer {issue_token('provider', sources=[SOURCE])}"}
    fleet = demo_resources(resources)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    since = now - timedelta(days=2)
    history_start = Month.of(now).shifted(-13).start  # the first of the month 13 months ago: same month last year too
    async with httpx.AsyncClient(timeout=60) as client:
        await register_departments_and_prices(client, urls["billing"], "demo", history_start.isoformat())
        past = history_resources(fleet)
        # the live fleet from 15 days back (its CPU samples, the waste report's window), the history until now
        lifecycle = [*(lifecycle_event(r, since - timedelta(days=15)) for r in fleet),
                     *(lifecycle_event(r, history_start) for r in past),
                     *(lifecycle_event(r, since, "terminated") for r in past)]
        for i in range(0, len(lifecycle), 500):
            await client.post(f"{urls['metering']}/v1/events", json=lifecycle[i:i + 500], headers=provider)
        finance = {"Authorization": f"Bearer {issue_token('finance')}"}
        for department, amount in demo_budgets(fleet).items():
            await client.put(f"{urls['billing']}/v1/budgets/{department}/{Month.of(now).year}", json={"amount": str(amount)},
                             headers=finance)
        backfill = [*history_events(past, history_start, since), *utilisation_events(fleet, since)]
        print(f"demo: sending a year of history ({len(backfill)} events, ids fixed: a restart resends duplicates)")
        for i in range(0, len(backfill), 2000):
            response = await client.post(f"{urls['metering']}/v1/events", json=backfill[i:i + 2000], headers=provider)
            response.raise_for_status()
        print(f"demo: {len(DEMO_DEPARTMENTS)} departments, {len(fleet)} resources; streaming ~{rate:.0f} events/s "
              f"of simulated 5-minute usage from {since.isoformat()}")
        stream = usage_events(fleet, since, timedelta(minutes=5))
        started = time.monotonic()
        sent = 0
        batch = max(1, min(500, int(rate)))
        while not duration or time.monotonic() - started < duration:
            events = [next(stream) for _ in range(batch)]
            response = await client.post(f"{urls['metering']}/v1/events", json=events, headers=provider)
            response.raise_for_status()
            sent += batch
            if sent % (batch * 20) == 0:
                print(f"demo: {sent} usage events sent; usage so far: {urls['query']}/v1/usage?from="
                      f"{since.date()}&to={(now + timedelta(days=2)).date()}&group_by=department")
            await asyncio.sleep(max(0.0, sent / rate - (time.monotonic() - started)))
