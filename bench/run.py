"""govmeter benchmark: how fast the real system is on this machine, beside the raw ceiling of the same machine.

    python bench/run.py --size smoke     # CI: tiny, keeps the script working
    python bench/run.py --size full      # by hand: the figures in docs/benchmark.md

Everything runs on loopback: the Apache Kafka broker of scripts/kafka-broker.sh, the local PostgreSQL, and govmeter's
own processes started as subprocesses exactly as `govmeter` starts them. Prints one table and writes it as JSON to
bench/results/<timestamp>-<size>.json and, for a whole run, bench/results/latest-<size>.json."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import random
import secrets
import statistics
import subprocess
import sys
import time
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
STAMP = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
BENCH_DB = os.environ.get("GOVMETER_BENCH_DATABASE_URL",
                          "postgresql+asyncpg://postgres:postgres@127.0.0.1:5432/govmeter_bench")
os.environ["DATABASE_URL"] = BENCH_DB
os.environ.setdefault("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
os.environ["GOVMETER_TOPIC_PREFIX"] = f"bench-{STAMP}"
os.environ["GOVMETER_JWT_SECRET"] = secrets.token_urlsafe(48)  # this run's own; its processes inherit it
_PORT_BASE = int(os.environ.get("GOVMETER_BENCH_PORT_BASE", "18000"))  # another bench at once: another base
PORTS = {"metering": _PORT_BASE + 1, "billing": _PORT_BASE + 2, "query": _PORT_BASE + 3, "console": _PORT_BASE + 4}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

import aiohttp  # noqa: E402
import httpx  # noqa: E402
import orjson  # noqa: E402
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402

from bench.finance_load import KINDS, percentile, request_source  # noqa: E402
from bench.history import add_history, history_months  # noqa: E402
from services.common.auth import issue_token  # noqa: E402
from services.common.config import Settings  # noqa: E402
from services.common.db import copy_database, drop_database, get_engine, raw_connection  # noqa: E402
from services.common.kafka import batch_records, ensure_topics  # noqa: E402
from services.common.migrate import migrate  # noqa: E402
from services.metering.key_tiers import settled_before, stored_by_key  # noqa: E402
from services.common.periods import Month  # noqa: E402
from services.projection.partitions import ensure_month_partitions  # noqa: E402
from schemas.events import validate_event  # noqa: E402
from services.demo.load import (  # noqa: E402
    DEMO_DEPARTMENTS,
    SOURCE,
    demo_resources,
    lifecycle_event,
    register_departments_and_prices,
    usage_events,
)

PROBE_SOURCE = "bench:probe"

SIZES = {
    #            worker events/run, runs, ingest events/run, freshness s, year events, query requests/client
    #            (repeated; distinct)
    "smoke": dict(worker=20_000, runs=1, ingest=10_000, freshness=5, year=40_000, queries=5, distinct=5),
    "medium": dict(worker=400_000, runs=3, ingest=200_000, freshness=30, year=2_000_000, queries=50, distinct=25),
    "full": dict(worker=400_000, runs=3, ingest=200_000, freshness=30, year=10_000_000, queries=50, distinct=25),
}
YEAR_START = datetime(2025, 1, 1, tzinfo=UTC)
QUERY_RUNS = 3  # the query figures are the median (and min–max) of this many runs


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    low: float | None = None
    high: float | None = None
    target: str = ""
    note: str = ""


def summary(name, values, unit, target="", note="") -> Figure:
    return Figure(name, statistics.median(values), unit, min(values), max(values), target, note)


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def database_cpu_seconds() -> float:
    """CPU used so far by the PostgreSQL backends serving the bench database (other than this query's)."""
    async with raw_connection(get_engine()) as conn:
        pids = [r["pid"] for r in await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")]
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def env_for(prefix: str, **extra) -> dict:
    # The stored year is a history loaded at once: every source was just seen and the probes sit in 2024, so the
    # data-complete watermarks would (rightly) hold its months open. The bench closes them on the grace alone.
    env = dict(os.environ, GOVMETER_TOPIC_PREFIX=prefix, GOVMETER_SOURCE_ACTIVE_DAYS="0",
               GOVMETER_WORKER_METRICS_PORT="0",  # several workers at once: no port to share
               **{k: str(v) for k, v in extra.items()})
    env.update({f"GOVMETER_{s.upper()}_PORT": str(p) for s, p in PORTS.items()})
    return env


def spawn(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "services.cli", *args], cwd=REPO, env=env,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen) -> float:
    rss = peak_rss_mb(process.pid) if process.poll() is None else 0.0
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    return rss


class Load:
    """Realistic events: ~30 departments, ~2,000 resources, every meter family, timestamps over a year,
    1 % duplicates and 0.1 % invalid events."""

    def __init__(self, seed: int = 1) -> None:
        self.fleet = demo_resources(2000)
        self.rng = random.Random(seed)

    def events(self, count: int, start: datetime = YEAR_START, span_days: int = 365,
               slots: int | None = None) -> tuple[list[bytes], list[tuple[str, str]]]:
        """Encoded events and the keys (source, id) of the distinct valid ones they hold. Each round of the
        fleet's meters is placed at its own random 5-minute slot in the span (``slots`` of them from ``start``,
        else ``span_days``)."""
        per_round = sum(len(r.meters) for r in self.fleet)
        stream = usage_events(self.fleet, start, timedelta(minutes=5), seed=self.rng.randint(0, 10**9))
        out: list[bytes] = []
        keys: list[tuple[str, str]] = []
        slot_start = slot_end = ""
        for i in range(count):
            if i % per_round == 0:
                begin = start + timedelta(minutes=5 * self.rng.randrange(slots or span_days * 288))
                slot_start, slot_end = begin.isoformat(), (begin + timedelta(minutes=5)).isoformat()
            event = next(stream)
            event["data"]["start"], event["data"]["end"], event["time"] = slot_start, slot_end, slot_end
            roll = self.rng.random()
            if roll < 0.001:
                event["data"]["meter"] = "compute.nonexistent"  # invalid: goes to the dead letters
            else:
                keys.append((event["source"], event["id"]))
            out.append(orjson.dumps(event))
            if 0.001 <= roll < 0.011:
                out.append(out[-1])  # duplicate: counted once
        return out, keys


async def produce(settings: Settings, encoded: list[bytes]) -> list[tuple[str, str]]:
    """Publish in records of 500 events; returns one key per partition: the last event of the partition's last
    record that occurs once in the whole load. A record's events commit together and a partition's records are
    taken in order, so once those keys are stored at most the batch in the other transaction is still open
    (``wait_stored`` then looks up the rest). A handful of keys keeps the poll's cost off the machine it measures."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all",
                                max_request_size=2_000_000, linger_ms=5)
    await producer.start()
    sent = []
    try:
        for record in batch_records(encoded, max_events=500):
            sent.append((await producer.send(settings.events_topic, record), record))
        await producer.flush()
    finally:
        await producer.stop()
    occurrences = Counter(encoded)  # duplicates are byte-identical copies
    last = {future.result().partition: record for future, record in sent}
    keys = []
    for record in last.values():
        for raw in reversed(orjson.loads(record)):
            event, _ = validate_event(raw)
            if event is not None and occurrences[orjson.dumps(raw)] == 1:
                keys.append((event["source"], event["id"]))
                break
    return keys


async def usage_count() -> int:
    async with raw_connection(get_engine()) as conn:
        return await conn.fetchval("SELECT count(*) FROM events WHERE type = 'gov.cloud.usage.v1'")


async def missing(keys: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The keys (source, id) whose events are not stored yet: one probe of each of the key's indexes a key."""
    async with raw_connection(get_engine()) as conn:
        found = await conn.fetch(
            stored_by_key(await settled_before(conn), "k.source, k.event_id",
                          "unnest($1::text[], $2::text[]) AS k(source, event_id)"),
            [k[0] for k in keys], [k[1] for k in keys])
    stored = {(r[0], r[1]) for r in found}
    return [k for k in keys if k not in stored]


async def wait_stored(keys: list[tuple[str, str]], last_keys: list[tuple[str, str]], timeout: float = 1800,
                      poll: float = 0.1) -> float:
    """Poll until the events of ``keys`` are all stored; returns when (each check's snapshot is taken after the
    instant it returns, so that instant is exact to the poll). Polls the last records' keys; once those are in,
    looks up all of ``keys`` once, and then polls only the few still missing (the other transaction's batch).
    Never counts the event store: a count(*) reads all of it (15 GB at five years, 10 s a count), taking a core
    and the OS page cache from the worker it measures."""
    deadline = time.monotonic() + timeout
    pending, all_checked = last_keys, False
    while True:
        now = time.monotonic()
        pending = await missing(pending)
        if not pending and not all_checked:
            pending, all_checked = await missing(keys), True
        if not pending:
            return now
        if now > deadline:
            raise SystemExit(f"timed out: {len(await missing(keys))} of {len(keys)} events not stored")
        await asyncio.sleep(poll)


async def holds_stored_year(size: dict, years: int = 1) -> bool:
    """Whether the bench database holds (nearly: less the invalid events) a stored year of this size, and the
    ``years`` − 1 synthetic years before it (``--years``), no more and no fewer."""
    try:
        async with raw_connection(get_engine()) as conn:
            count, first = await conn.fetchrow(
                "SELECT count(*), min(event_time) FROM events WHERE type = 'gov.cloud.usage.v1' AND source <> $1",
                PROBE_SOURCE)
    except Exception:  # no bench database yet
        return False
    finally:
        await get_engine().dispose()
    present = YEAR_START.year - first.astimezone(UTC).year + 1 if first else 0
    return present == years and count >= 0.95 * size["year"] * years


async def seed_reference_data() -> None:
    from services.metering.pipeline import KafkaRecord, MeteringPipeline

    async with httpx.AsyncClient(timeout=60) as client:
        await register_departments_and_prices(client, f"http://127.0.0.1:{PORTS['billing']}", "bench",
                                              "2024-01-01T00:00:00+08:00")
    fleet = demo_resources(2000)
    lifecycle = orjson.dumps([lifecycle_event(r, YEAR_START - timedelta(days=1)) for r in fleet])
    await MeteringPipeline(get_engine()).process([KafkaRecord("bench", 0, 0, lifecycle)])


async def bench_workers(size: dict, load: Load, workers: int, logs: Path, at: str = ""
                        ) -> tuple[list[Figure], float]:
    """Events/s from the topic to committed rows, and where the CPU went: the worker process(es) and the
    PostgreSQL backends serving them, per event. ``at``: a label for a measure over a stored history (its own
    topics), as "year 5"."""
    rates, python_us, database_us, rss = [], [], [], 0.0
    for run in range(size["runs"]):
        prefix = f"bench-{STAMP}-w{workers}{at.replace(' ', '')}-{run}"
        settings = Settings(GOVMETER_TOPIC_PREFIX=prefix)
        await ensure_topics(settings)
        encoded, keys = load.events(size["worker"])
        last_keys = await produce(settings, encoded)
        worker_logs = [logs / f"worker-{workers}{at.replace(' ', '')}-{run}-{i}.log" for i in range(workers)]
        procs = [spawn(["worker", "metering"], env_for(prefix), log) for log in worker_logs]
        ready = await wait_ready(worker_logs)  # from here a worker consumes: start-up is not counted
        cpu_at_ready = sum(cpu_seconds(p.pid) for p in procs)
        done = await wait_stored(keys, last_keys)
        events = len(keys)
        rates.append(events / (done - ready))
        python_us.append((sum(cpu_seconds(p.pid) for p in procs) - cpu_at_ready) / events * 1e6)
        database_us.append(await database_cpu_seconds() / events * 1e6)  # the workers' backends, from connect
        rss = max([rss] + [stop(p) for p in procs])
    label = ("metering worker, 1 process" if workers == 1 else f"metering workers, {workers} processes") + (
        f", at {at} of history" if at else "")
    target_text = "≥ 25,000 /s" if workers == 1 else ""
    return [summary(label, rates, "events/s", target_text),
            summary(f"  CPU per event: worker process{'es' if workers > 1 else ''}", python_us, "µs"),
            summary("  CPU per event: PostgreSQL", database_us, "µs")], rss


async def wait_ready(worker_logs: list[Path], timeout: float = 120) -> float:
    """When the first worker has logged that it is ready (Faust's "[^Worker]: Ready"): from then on events are
    being consumed, so the others' start-up counts against the figure, never for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(log.exists() and "[^Worker]: Ready" in log.read_text(errors="replace") for log in worker_logs):
            return time.monotonic()
        await asyncio.sleep(0.05)
    raise SystemExit(f"workers not ready: see {worker_logs}")


async def bench_ceiling(size: dict, load: Load) -> Figure:
    """Plain aiokafka consume + JSON decode + batched asyncpg INSERT … ON CONFLICT into an equivalent table."""
    rates, python_us, database_us = [], [], []
    async with raw_connection(get_engine()) as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS ceiling_events (LIKE events INCLUDING ALL)")
        # the key, on the table itself: the ceiling's one table (the event store keeps it in event_keys)
        await conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS ceiling_events_key ON ceiling_events "
                           "(govmeter_event_key(source, event_id))")
    for run in range(size["runs"]):
        settings = Settings(GOVMETER_TOPIC_PREFIX=f"bench-{STAMP}-ceiling-{run}")
        await ensure_topics(settings)
        encoded, _ = load.events(size["worker"])
        await produce(settings, encoded)
        consumer = AIOKafkaConsumer(settings.events_topic, bootstrap_servers=settings.kafka_bootstrap_servers,
                                    group_id=f"ceiling-{run}", auto_offset_reset="earliest",
                                    enable_auto_commit=False, max_partition_fetch_bytes=8 << 20)
        await consumer.start()
        total, started = 0, None
        try:
            async with raw_connection(get_engine()) as conn:
                backend = await conn.fetchval("SELECT pg_backend_pid()")
                while total < len(encoded):
                    batch = await consumer.getmany(timeout_ms=1000, max_records=100)
                    if started is None and batch:
                        started = time.monotonic()
                        cpu_started, backend_started = time.process_time(), cpu_seconds(backend)
                    rows = []
                    for messages in batch.values():
                        for message in messages:
                            for e in orjson.loads(message.value):
                                d = e["data"]
                                rows.append((e["source"], e["id"], e["type"], e["subject"],
                                             datetime.fromisoformat(e["time"]), d["meter"], d["quantity"],
                                             datetime.fromisoformat(d["start"]), datetime.fromisoformat(d["end"]),
                                             orjson.dumps(e, option=orjson.OPT_SORT_KEYS)))
                    if not rows:
                        continue
                    columns = list(zip(*rows))
                    async with conn.transaction():
                        await conn.execute(
                            """INSERT INTO ceiling_events (source, event_id, type, subject, event_time, meter, quantity,
                                                           start_at, end_at, payload)
                               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                                                    $6::text[], $7::numeric[], $8::timestamptz[], $9::timestamptz[],
                                                    $10::bytea[])
                               ON CONFLICT (govmeter_event_key(source, event_id)) DO NOTHING""",
                            *[list(c) for c in columns[:6]], [str(q) for q in columns[6]], *[list(c) for c in columns[7:]])
                        for tp, messages in batch.items():
                            await consumer.commit({tp: messages[-1].offset + 1})
                    total += len(rows)
                rates.append(total / (time.monotonic() - started))
                python_us.append((time.process_time() - cpu_started) / total * 1e6)
                database_us.append((cpu_seconds(backend) - backend_started) / total * 1e6)
        finally:
            await consumer.stop()
    return [summary("raw ceiling (aiokafka + JSON + asyncpg)", rates, "events/s"),
            summary("  CPU per event: ceiling process", python_us, "µs"),
            summary("  CPU per event: PostgreSQL", database_us, "µs")]


async def bench_ingest(size: dict, load: Load, logs: Path) -> tuple[Figure, float]:
    prefix = f"bench-{STAMP}-ingest"
    api = spawn(["api", "metering"], env_for(prefix), logs / "metering-api.log")
    await wait_healthy("metering", api)
    provider = {"Authorization": f"Bearer {issue_token('provider', sources=[SOURCE, PROBE_SOURCE])}",
                "content-type": "application/json"}
    rates = []
    try:
        for _ in range(size["runs"]):
            encoded, _ = load.events(size["ingest"])
            bodies = [b"[" + b",".join(encoded[i:i + 500]) + b"]" for i in range(0, len(encoded), 500)]
            accepted = 0
            queue = list(bodies)

            async def client_loop(client):
                nonlocal accepted
                while queue:
                    body = queue.pop()
                    response = await client.post("/v1/events", content=body, headers=provider)
                    assert response.status_code == 202, response.text
                    accepted += response.json()["accepted"]

            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{PORTS['metering']}", timeout=60,
                                         limits=httpx.Limits(max_connections=16)) as client:
                started = time.monotonic()
                await asyncio.gather(*(client_loop(client) for _ in range(8)))
                rates.append(accepted / (time.monotonic() - started))
    finally:
        rss = stop(api)
    return summary("HTTP ingest, 1 process, batches of 500", rates, "events/s", "≥ 20,000 /s"), rss


async def wait_healthy(service: str, process: subprocess.Popen, timeout: float = 60) -> None:
    """Until the API we started answers; it must be ours (a port taken by another process fails here)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"{service} API exited (code {process.returncode}): see its log")
            try:
                if (await client.get(f"http://127.0.0.1:{PORTS[service]}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.3)
    raise SystemExit(f"{service} API did not become healthy")


async def bench_freshness(size: dict, load: Load, logs: Path) -> list[Figure]:
    """Publish → visible in /v1/usage at a steady 5,000 events/s: p50 and p99 of each run, median over runs."""
    runs = [await freshness_run(size, load, logs, run) for run in range(size["runs"])]
    note = (f"offered {statistics.median(r[2] for r in runs):,.0f} events/s; {sum(r[3] for r in runs)} probes in "
            f"{len(runs)} runs" + (f", {sum(r[4] for r in runs)} not seen" if any(r[4] for r in runs) else ""))
    return [summary("publish → queryable p50", [r[0] for r in runs], "s", note=note),
            summary("publish → queryable p99", [r[1] for r in runs], "s", "≤ 2 s", note=note)]


async def freshness_run(size: dict, load: Load, logs: Path, run: int) -> tuple[float, float, float, int, int]:
    """Offer 5,000 events/s through the API; probes carry their own resources in their own hour; poll /v1/usage.
    Returns p50, p99, the offered rate, probes seen and probes never seen."""
    prefix = f"bench-{STAMP}-fresh-{run}"
    env = env_for(prefix)
    await ensure_topics(Settings(GOVMETER_TOPIC_PREFIX=prefix))
    procs = [spawn(["api", "metering"], env, logs / f"fresh-{run}-metering.log"),
             spawn(["api", "query"], env, logs / f"fresh-{run}-query.log"),
             spawn(["worker", "metering"], env, logs / f"fresh-{run}-worker.log")]
    provider = {"Authorization": f"Bearer {issue_token('provider', sources=[SOURCE, PROBE_SOURCE])}",
                "content-type": "application/json"}
    finance = {"Authorization": f"Bearer {issue_token('finance')}"}
    probe_hour = datetime(2024, 6, 1, tzinfo=UTC) + timedelta(hours=random.randint(0, 5000))
    sent_at: dict[str, float] = {}
    seen_at: dict[str, float] = {}
    try:
        await wait_healthy("metering", procs[0])
        await wait_healthy("query", procs[1])
        await asyncio.sleep(3)  # let the worker join its group
        encoded, _ = load.events(size["freshness"] * 5000 + 5000)
        params = {"from": probe_hour.isoformat(), "to": (probe_hour + timedelta(hours=1)).isoformat(),
                  "group_by": "resource"}
        stop_polling = asyncio.Event()

        async def poll(client):
            while not stop_polling.is_set():
                response = await client.get(f"http://127.0.0.1:{PORTS['query']}/v1/usage", params=params,
                                            headers=finance)
                now = time.monotonic()
                for row in response.json()["rows"]:
                    seen_at.setdefault(row["resource_id"], now)
                await asyncio.sleep(0.05)

        async with httpx.AsyncClient(timeout=30) as client:
            poller = asyncio.create_task(poll(client))
            started = time.monotonic()
            tick, per_tick = 0.1, 500
            for n, i in enumerate(range(0, size["freshness"] * 5000, per_tick)):
                probe_id = f"probe-{uuid.uuid4().hex[:12]}"
                probe = orjson.dumps({
                    "specversion": "1.0", "id": probe_id, "source": PROBE_SOURCE, "type": "gov.cloud.usage.v1",
                    "subject": probe_id, "time": (probe_hour + timedelta(minutes=5)).isoformat(),
                    "data": {"meter": "compute.vcpu", "quantity": "1", "start": probe_hour.isoformat(),
                             "end": (probe_hour + timedelta(minutes=5)).isoformat()}})
                body = b"[" + b",".join(encoded[i:i + per_tick - 1] + [probe]) + b"]"
                delay = started + n * tick - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent_at[probe_id] = time.monotonic()
                response = await client.post(f"http://127.0.0.1:{PORTS['metering']}/v1/events", content=body,
                                             headers=provider)
                assert response.status_code == 202, response.text
            offered = size["freshness"] * 5000 / (time.monotonic() - started)
            deadline = time.monotonic() + 30
            while len(seen_at) < len(sent_at) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            stop_polling.set()
            await poller
    finally:
        for p in procs:
            stop(p)
    latencies = sorted(seen_at[k] - sent_at[k] for k in sent_at if k in seen_at)
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return p50, p99, offered, len(latencies), len(sent_at) - len(latencies)


async def load_year(size: dict, load: Load, logs: Path) -> tuple[int, float]:
    """Store a year of usage through the real worker (the data the finance queries read)."""
    prefix = f"bench-{STAMP}-year"
    settings = Settings(GOVMETER_TOPIC_PREFIX=prefix)
    await ensure_topics(settings)
    chunk = 500_000
    remaining = size["year"]
    worker = spawn(["worker", "metering"], env_for(prefix), logs / "year-worker.log")
    keys: list[tuple[str, str]] = []
    try:
        while remaining > 0:
            encoded, chunk_keys = load.events(min(chunk, remaining))
            last_keys = await produce(settings, encoded)
            keys += chunk_keys
            remaining -= chunk
        await wait_stored(keys, last_keys, timeout=7200, poll=1)
    finally:
        rss = stop(worker)
    return await usage_count(), rss


async def bench_history(size: dict, load: Load, logs: Path, years: int, workers: bool, rss: dict) -> list[Figure]:
    """``years`` − 1 older synthetic years added set-based to the stored year; with ``workers``, the worker
    measured at year 1 (on a copy of the stored year made first) and at year N in turn: cost that does not grow
    with history."""
    figures = []
    year_one = None
    if workers:
        await get_engine().dispose()  # a template must have no other session
        year_one = await copy_database(BENCH_DB, "_year1")
    try:
        t0 = time.monotonic()
        async with raw_connection(get_engine()) as conn:
            added = await add_history(conn, YEAR_START.year, years)
        await get_engine().dispose()  # the measures count the CPU of every session on the database
        figures.append(Figure(
            f"synthetic history: usage events added ({years - 1} older year{'s' * (years > 2)})", added, "events",
            note=f"inserted set-based with the rollups, then VACUUM (ANALYZE), their event keys settled (the "
                 f"stored year's recent), in {time.monotonic() - t0:.0f} s"))
        if year_one:
            figures.extend(await worker_pairs(size, logs, years, year_one, rss))
    finally:
        if year_one:
            await drop_database(year_one)
    figures.append(Figure("usage events stored for the queries", await usage_count(), "events",
                          note=f"{years} years"))
    return figures


async def worker_pairs(size: dict, logs: Path, years: int, year_one: str, rss: dict) -> list[Figure]:
    """The worker at year 1 and at year N measured in turn, ``size["runs"]`` times, each measure in its own
    process after a CHECKPOINT (bench/worker_at.py) and both of a pair with the same load: this machine's speed
    drifts by more than the 5 % the ratio is held to, and a pair shares the drift. The ratio is the median of the
    pairs' ratios."""
    measures: dict[int, list[dict]] = {1: [], years: []}
    for run in range(size["runs"]):
        for year, url in ((1, year_one), (years, BENCH_DB)):
            measures[year].append(await worker_at(url, f"year {year}", size["worker"], 1000 + run, logs))
    figures = []
    for year, runs in measures.items():
        def values(name: str) -> list[float]:
            return [r[name] for r in runs]

        figures += [summary(f"metering worker, 1 process, at year {year} of history", values("events_per_s"),
                            "events/s"),
                    summary("  CPU per event: worker process", values("worker_us"), "µs"),
                    summary("  CPU per event: PostgreSQL", values("database_us"), "µs"),
                    summary("  full-page images written to the WAL per event", values("full_page_images"), "",
                            note="after a CHECKPOINT: each page's first change is logged whole"),
                    summary("  WAL per event", values("wal_bytes"), "bytes")]
        rss[f"metering worker (year {year})"] = max(values("rss_mb"))
    ratios = [at_n["events_per_s"] / at_one["events_per_s"] for at_one, at_n in zip(measures[1], measures[years])]
    figures.append(summary(f"worker at year {years} / at year 1", ratios, "ratio", target="≥ 0.95",
                           note="median of pairs measured in turn: " + ", ".join(f"{r:.3f}" for r in ratios)))
    return figures


async def worker_at(url: str, label: str, events: int, seed: int, logs: Path) -> dict:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.worker_at", "--label", label, "--events", str(events), "--seed", str(seed),
        "--logs", str(logs), cwd=REPO, env=dict(os.environ, GOVMETER_BENCH_DATABASE_URL=url),
        stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    if process.returncode:
        raise SystemExit(f"worker measure at {label} failed ({process.returncode}): see {logs}")
    return json.loads(out.decode().strip().splitlines()[-1])


QUERY_CLIENTS = 20
USER_PAUSE_S = 1.0  # finance staff read an answer before asking the next question


async def bench_queries(size: dict, logs: Path, ingest_rate: int, console: bool = True
                        ) -> tuple[list[Figure], dict[str, float]]:
    """The finance questions three ways (repeated; distinct, idle; distinct while ingesting ``ingest_rate``
    events/s through the metering API and worker), with the response cache as configured, then distinct while
    ingesting once more with it off; and the console's overview, idle."""
    env = env_for(f"bench-{STAMP}-query")
    procs = start_readers(env, logs, "")
    finance = {"Authorization": f"Bearer {issue_token('finance')}"}
    cached = Settings().response_cache  # GOVMETER_RESPONSE_CACHE=false measures every figure uncached
    seen: set = set()  # every question asked so far: how often a distinct request was new to the cache
    figures: list[Figure] = []
    rss: dict[str, float] = {}
    try:
        await wait_healthy("query", procs["query"])
        await wait_healthy("billing", procs["billing"])
        # The stored year's months are long past: the billing API's background task closes them when it starts.
        # In service that happens once a month, not under a query burst, so the queries wait for it to catch up
        # (every due period closed) and the time it took is reported beside them.
        catch_up_s = await wait_due_periods_closed(finance)
        await asyncio.sleep(5)  # the warning task's start-up pass
        cache_text = "response cache on" if cached else "response cache off"
        closes = f"after the start-up close of the due months ({catch_up_s:.0f} s)"
        figures += await measure_kinds(size, "repeated", False, finance, seen, f"{cache_text}; {closes}")
        figures += await measure_kinds(size, "distinct, idle", True, finance, seen, cache_text)
        if console:
            procs["console"] = spawn(["api", "console"], env, logs / "console.log")
            await wait_healthy("console", procs["console"])
            figures.append(await bench_console_overview(issue_token("finance"), f"{YEAR_START.year}-12"))
        async with steady_ingest(ingest_rate, logs) as ingest:
            live = "distinct, while ingesting"
            figures += await measure_kinds(size, live, True, finance, seen, cache_text, ingest)
            figures += await measure_kinds(size, f"{live}, 20 users pausing {USER_PAUSE_S:g} s", True, finance, seen,
                                           cache_text, ingest, think_s=USER_PAUSE_S)
            rss.update({f"{name} API": stop(procs.pop(name)) for name in ("query", "billing")})
            uncached = start_readers(dict(env, GOVMETER_RESPONSE_CACHE="false"), logs, "-uncached")
            procs.update({f"{name} API (cache off)": process for name, process in uncached.items()})
            await wait_healthy("query", uncached["query"])
            await wait_healthy("billing", uncached["billing"])
            figures += await measure_kinds(size, f"{live}, cache off", True, finance, seen,
                                           "response cache off", ingest)
        figures.append(ingest.figure())
        rss["metering API (while querying)"], rss["metering worker (while querying)"] = ingest.rss
    finally:
        rss.update({name if "API" in name else f"{name} API": stop(process) for name, process in procs.items()})
    return figures, rss


def start_readers(env: dict, logs: Path, suffix: str) -> dict[str, subprocess.Popen]:
    return {"query": spawn(["api", "query"], env, logs / f"query-api{suffix}.log"),
            "billing": spawn(["api", "billing"], env, logs / f"billing-api{suffix}.log")}


async def measure_kinds(size: dict, measure: str, distinct: bool, headers: dict, seen: set, note: str,
                        ingest: SteadyIngest | None = None, think_s: float = 0.0) -> list[Figure]:
    """p50 and p99 of each finance kind, ``QUERY_RUNS`` runs of 20 clients (the median, min–max over runs).
    Repeated: one request, the cache warmed by a first one. Distinct: every client its own seeded stream.
    ``think_s``: each client waits a random time of that mean (exponential) between its requests, as people
    do; 0: back to back, which measures throughput as much as latency (20 waiting requests share 2 cores)."""
    departments = [d[0] for d in DEMO_DEPARTMENTS]
    per_client = size["distinct" if distinct else "queries"]
    figures = []
    # aiohttp, not httpx, sends the timed requests: an httpx client at 20 concurrent requests spends so much CPU
    # per request itself that, on a small machine, it measured mostly its own queueing.
    connector = aiohttp.TCPConnector(limit=2 * QUERY_CLIENTS)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as client:
        for k, kind in enumerate(KINDS):
            first_text = ""
            if not distinct:
                first_ms = await timed_get(client, request_source(kind, False, 0, departments, YEAR_START.year)(),
                                           headers, seen)
                first_text = f"; first request {first_ms:.0f} ms"
            p50s, p99s, new = [], [], 0
            for run in range(QUERY_RUNS):
                latencies: list[float] = []
                before = len(seen)
                sources = [request_source(kind, distinct, zlib.crc32(f"{measure}/{k}/{run}/{c}".encode()),
                                          departments, YEAR_START.year) for c in range(QUERY_CLIENTS)]

                pause = random.Random(run)  # the clients' pauses: seeded, as their questions are

                async def one_client(next_request):
                    for _ in range(per_client):
                        if think_s:
                            await asyncio.sleep(pause.expovariate(1 / think_s))
                        latencies.append(await timed_get(client, next_request(), headers, seen))

                await asyncio.gather(*(one_client(source) for source in sources))
                new += len(seen) - before
                latencies.sort()
                p50s.append(percentile(latencies, 0.5))
                p99s.append(percentile(latencies, 0.99))
            asked = QUERY_RUNS * QUERY_CLIENTS * per_client
            pacing = f", each pausing {think_s:g} s on average between requests" if think_s else ""
            text = (f"median of {QUERY_RUNS} runs of {QUERY_CLIENTS} clients{pacing} × {per_client} requests; {note}"
                    f"{first_text}" + (f"; {100 * new / asked:.0f} % of the requests never asked before"
                                       if distinct else "") + (f"; {ingest.describe()}" if ingest else ""))
            figures.append(summary(f"query p50: {kind} ({measure})", p50s, "ms", "≤ 20 ms" if ingest else "",
                                   note=text))
            figures.append(summary(f"query p99: {kind} ({measure})", p99s, "ms", "≤ 100 ms", note=text))
    return figures


async def timed_get(client: aiohttp.ClientSession, request: tuple[str, str, dict], headers: dict,
                    seen: set) -> float:
    """One request's latency in ms (it must answer 200); remembers the question in ``seen``."""
    service, path, params = request
    seen.add((service, path, tuple(sorted(params.items()))))
    t0 = time.perf_counter()
    async with client.get(f"http://127.0.0.1:{PORTS[service]}{path}", params=params, headers=headers) as response:
        body = await response.read()
    elapsed = (time.perf_counter() - t0) * 1000
    assert response.status == 200, (request, response.status, body[:500])
    return elapsed


class SteadyIngest:
    """Usage of the last hour posted to the metering API at a steady rate (batches of 500, on a fixed schedule, as
    a provider's collector would), stored by a metering worker of its own topic prefix."""

    def __init__(self, rate: int) -> None:
        self.rate, self.rng = rate, random.Random(2)
        self.stream = usage_events(demo_resources(2000), YEAR_START, timedelta(minutes=5), seed=2)
        self.accepted, self.late, self.started, self.stopped, self.last_post = 0, 0, 0.0, 0.0, 0.0
        self.last_key: tuple[str, str] | None = None
        self.drain_s = float("nan")
        self.rss = (0.0, 0.0)

    def batch(self) -> tuple[bytes, tuple[str, str]]:
        """500 events of the fleet's next meters, in one random 5-minute slot of the last hour."""
        now = datetime.now(UTC)
        begin = (now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0)
                 - timedelta(minutes=5 * self.rng.randint(1, 12)))
        slot_start, slot_end = begin.isoformat(), (begin + timedelta(minutes=5)).isoformat()
        events = [next(self.stream) for _ in range(500)]
        for event in events:
            event["data"]["start"], event["data"]["end"], event["time"] = slot_start, slot_end, slot_end
        return orjson.dumps(events), (events[-1]["source"], events[-1]["id"])

    async def post_steadily(self) -> None:
        provider = {"Authorization": f"Bearer {issue_token('provider', sources=[SOURCE])}",
                    "content-type": "application/json"}
        tick = 500 / self.rate
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{PORTS['metering']}", timeout=60) as client:
            self.started = time.monotonic()
            for n in itertools.count():
                delay = self.started + n * tick - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    self.late += 1
                body, key = self.batch()
                response = await client.post("/v1/events", content=body, headers=provider)
                assert response.status_code == 202, response.text
                self.accepted += response.json()["accepted"]
                self.last_key, self.last_post = key, time.monotonic()

    def offered(self) -> float:
        return self.accepted / max(1e-9, (self.stopped or time.monotonic()) - self.started)

    def describe(self) -> str:
        return f"while {self.offered():,.0f} events/s were ingested (asked {self.rate:,})"

    def figure(self) -> Figure:
        return Figure("ingest while querying", self.offered(), "events/s", note=(
            f"asked {self.rate:,}/s through the metering API and worker; {self.accepted:,} events accepted; "
            f"{self.late} batches posted late; the worker stored the last batch {self.drain_s:.1f} s after it "
            "was posted"))


@contextlib.asynccontextmanager
async def steady_ingest(rate: int, logs: Path):
    """A metering API and worker of their own topic prefix, and ``rate`` events/s posted until the block ends;
    then waits for the worker to store the last batch (how far it lagged)."""
    prefix = f"bench-{STAMP}-live"
    env = env_for(prefix)
    await ensure_topics(Settings(GOVMETER_TOPIC_PREFIX=prefix))
    api = spawn(["api", "metering"], env, logs / "live-metering.log")
    worker = spawn(["worker", "metering"], env, logs / "live-worker.log")
    ingest = SteadyIngest(rate)
    try:
        await wait_healthy("metering", api)
        await wait_ready([logs / "live-worker.log"])
        poster = asyncio.create_task(ingest.post_steadily())
        await asyncio.sleep(3)  # a steady state before the first timed request
        try:
            yield ingest
        finally:
            poster.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poster
            ingest.stopped = time.monotonic()
        if ingest.last_key:
            deadline = ingest.stopped + 120
            while await missing([ingest.last_key]) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            ingest.drain_s = time.monotonic() - ingest.last_post
    finally:
        ingest.rss = (stop(api), stop(worker))


async def bench_console_overview(token: str, month: str, runs: int = 5) -> Figure:
    """The console's overview in Debian's Chromium over loopback: from the route change to the page drawn (its five
    API answers through the console's proxy, the chart and tables), warm (the second and later visits)."""
    if not Path(CHROMIUM).exists():
        return Figure("console: overview rendered", float("nan"), "ms", note=f"{CHROMIUM} missing")
    from playwright.async_api import async_playwright

    route = f"#/overview?month={month}"
    base = f"http://127.0.0.1:{PORTS['console']}/"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            await page.goto(base)
            await page.fill("#token", token)
            await page.click("#signin-form button[type=submit]")
            await page.wait_for_selector("main[data-ready]")
            times = []
            for _ in range(runs + 1):
                await page.evaluate("() => { location.hash = '#/bills' }")
                await page.wait_for_function("() => document.querySelector('main').dataset.ready === '#/bills'")
                t0 = time.perf_counter()
                await page.evaluate("route => { location.hash = route }", route)
                await page.wait_for_function("r => document.querySelector('main').dataset.ready === r", arg=route,
                                             timeout=60_000)
                times.append((time.perf_counter() - t0) * 1000)
        finally:
            await browser.close()
    return summary(f"console: overview of {month} rendered", times[1:], "ms", target="< 1,000 ms",
                   note=f"Chromium, loopback, median of {runs} warm visits; first {times[0]:.0f} ms")


async def wait_due_periods_closed(headers: dict, timeout: float = 1800) -> float:
    """Seconds until the billing API's background task has closed every period past its grace."""
    t0 = time.monotonic()
    async with httpx.AsyncClient(timeout=60) as client:
        while True:
            response = await client.get(f"http://127.0.0.1:{PORTS['billing']}/v1/periods", headers=headers)
            response.raise_for_status()
            now = datetime.now(UTC)
            due = [p["period"] for p in response.json()
                   if p["status"] == "open" and datetime.fromisoformat(p["closes_at"]) <= now]
            if not due:
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise SystemExit(f"the billing API did not close the due periods {due} in {timeout:.0f} s")
            await asyncio.sleep(1)


def descendants(pid: int) -> list[int]:
    try:
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []
    return children + [d for c in children for d in descendants(c)]


async def bench_replay(size: dict, logs: Path) -> tuple[Figure, dict[str, float]]:
    """`govmeter replay` rebuilds every projection from the event store and checks it; its own rate, per run.
    Returns the figure and the peak RSS of the replay process and of the largest of its rater processes."""
    rates, events, identical = [], "?", []
    rss = {"replay": 0.0, "replay rater (largest)": 0.0}
    for run in range(size["runs"]):
        log = logs / f"replay-{run}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen([sys.executable, "-m", "services.cli", "replay", "--json"], cwd=REPO,
                                       env=env_for(f"bench-{STAMP}-replay"), stdout=out, stderr=subprocess.STDOUT)
            while process.poll() is None:  # VmHWM only grows: the last reading before exit is the peak
                for pid in [process.pid, *descendants(process.pid)]:
                    name = "replay" if pid == process.pid else "replay rater (largest)"
                    try:
                        rss[name] = max(rss[name], peak_rss_mb(pid))
                    except (FileNotFoundError, ProcessLookupError):
                        pass
                await asyncio.sleep(0.5)
        stdout = log.read_bytes()
        if process.returncode != 0:
            return Figure("replay", float("nan"), "events/s", target="≥ 50,000 /s",
                          note=f"govmeter replay failed: see {log.name}"), rss
        report = json.loads([line for line in stdout.decode().splitlines()
                             if line.startswith("{") and '"events_per_second"' in line][-1])  # not a log line
        rates.append(report["events_per_second"])
        events, identical = report.get("events", "?"), identical + [report.get("identical")]
    async with raw_connection(get_engine()) as conn:
        closes = await conn.fetchval("SELECT count(*) FROM billing_periods")
    return summary("replay (rebuild all projections)", rates, "events/s", "≥ 50,000 /s",
                   note=f"{events} events; final bills of {closes} closed months re-checked; "
                        f"identical: {all(identical)}"), rss


def print_table(figures: list[Figure]) -> None:
    def fmt(v):
        if v is None:
            return ""
        if v != v:  # nan
            return "n/a"
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}"

    rows = [("figure", "median", "min–max", "unit", "target", "note")]
    for f in figures:
        spread = f"{fmt(f.low)}–{fmt(f.high)}" if f.low is not None and f.low != f.high else ""
        rows.append((f.name, fmt(f.value), spread, f.unit, f.target, f.note))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=list(SIZES), default="smoke")
    parser.add_argument("--skip", default="", help="comma-separated stages to skip: ingest,worker,ceiling,fresh,"
                                                     "year,queries,console,replay")
    parser.add_argument("--queries-only", action="store_true",
                        help="measure only the finance queries and the console: on the stored year the bench "
                             "database holds when it holds one of this size, else after loading it")
    parser.add_argument("--note", default="", help="a note kept in the result JSON (say, what else loaded the machine)")
    parser.add_argument("--ingest-rate", type=int, default=2000,
                        help="events/s posted through the metering API while the queries are measured")
    parser.add_argument("--years", type=int, default=1,
                        help="years of history: after the stored year, N−1 older synthetic years are inserted "
                             "set-based and the worker is measured at year 1 and at year N (bench/history.py)")
    parser.add_argument("--reuse-database", action="store_true",
                        help="measure on the bench database the last run left (its stored year), without seeding: "
                             "e.g. --skip ingest,worker,ceiling,fresh,year to re-measure queries and replay")
    return parser.parse_args()


def write_result(args: argparse.Namespace, skip: set[str], figures: list[Figure]) -> None:
    """Print the table and keep the figures under bench/results (latest-<size>.json only for a whole run)."""
    print(f"\ngovmeter benchmark ({args.size}) on {platform.node()}: {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, Python "
          f"{platform.python_version()}, {STAMP}\n")
    print_table(figures)
    result = {"size": args.size, "stamp": STAMP, "machine": {"cores": os.cpu_count(), "node": platform.node()},
              "skipped": sorted(skip), "reused_database": args.reuse_database, "note": args.note,
              "figures": [f.__dict__ for f in figures]}
    out = REPO / "bench" / "results"
    text = json.dumps(result, indent=2, ensure_ascii=False, default=str)
    partial = "-partial" if skip or args.reuse_database else ""
    (out / f"{STAMP}-{args.size}{partial}.json").write_text(text)
    if not partial:  # latest-<size>.json is always a whole run
        (out / f"latest-{args.size}.json").write_text(text)


async def main() -> None:
    args = parse_args()
    size = SIZES[args.size]
    skip = set(filter(None, args.skip.split(",")))
    logs = REPO / "bench" / "results" / f"logs-{STAMP}"
    logs.mkdir(parents=True, exist_ok=True)
    subprocess.check_call(["bash", str(REPO / "scripts" / "postgres.sh")], stdout=subprocess.DEVNULL)
    subprocess.check_call(["bash", str(REPO / "scripts" / "kafka-broker.sh"), "start"], stdout=subprocess.DEVNULL)
    if args.queries_only:
        skip |= {"ingest", "worker", "ceiling", "fresh", "replay"}
        if await holds_stored_year(size, args.years):
            args.reuse_database = True
            skip.add("year")
    if not args.reuse_database:
        await drop_database(BENCH_DB)
    await asyncio.to_thread(migrate, BENCH_DB)
    async with raw_connection(get_engine()) as conn:  # the stored years' months (and the 2024 probes) partitioned
        first, last = history_months(YEAR_START.year, args.years)
        await ensure_month_partitions(conn, min(first, Month(2024, 1)), last)
    if args.years > 1:
        skip.add("replay")  # the synthetic years' rollups are copies, not rated from their events: nothing to replay

    figures: list[Figure] = []
    rss: dict[str, float] = {}
    load = Load()
    if not args.reuse_database:
        billing = spawn(["api", "billing"], env_for(f"bench-{STAMP}-seed"), logs / "seed-billing.log")
        try:
            await wait_healthy("billing", billing)
            await seed_reference_data()
        finally:
            rss["billing API (seed)"] = stop(billing)
    if "ingest" not in skip:
        figure, rss["metering API"] = await bench_ingest(size, load, logs)
        figures.append(figure)
    worker_figure = ceiling_figure = None
    if "worker" not in skip:
        worker_figures, rss["metering worker"] = await bench_workers(size, load, 1, logs)
        worker_figure = worker_figures[0]
        figures.extend(worker_figures)
        two, rss["metering worker (of 2)"] = await bench_workers(size, load, 2, logs)
        figures.extend(two)
    if "ceiling" not in skip:
        ceiling_figures = await bench_ceiling(size, load)
        ceiling_figure = ceiling_figures[0]
        figures.extend(ceiling_figures)
    if worker_figure and ceiling_figure:
        figures.append(Figure("worker / ceiling", worker_figure.value / ceiling_figure.value, "ratio",
                              target="≥ 0.5"))
    if "fresh" not in skip:
        figures.extend(await bench_freshness(size, load, logs))
    if "year" not in skip:
        stored, rss["metering worker (year load)"] = await load_year(size, load, logs)
        figures.append(Figure("usage events stored for the queries", stored, "events"))
        if args.years > 1:
            # the worker at year 1 and N is measured unless only the queries are (not skipped with "worker")
            figures.extend(await bench_history(size, load, logs, args.years, not args.queries_only, rss))
    elif args.reuse_database and "queries" not in skip:
        figures.append(Figure("usage events stored for the queries", await usage_count(), "events",
                              note="the stored year the bench database held"))
    if "queries" not in skip:
        query_figures, query_rss = await bench_queries(size, logs, args.ingest_rate, "console" not in skip)
        figures.extend(query_figures)
        rss.update(query_rss)
    if "replay" not in skip:
        figure, replay_rss = await bench_replay(size, logs)
        rss.update({name: mb for name, mb in replay_rss.items() if mb})
        figures.append(figure)
    for process, mb in rss.items():
        figures.append(Figure(f"peak RSS: {process}", mb, "MB", target="≤ 500 MB"))
    write_result(args, skip, figures)
    await get_engine().dispose()


if __name__ == "__main__":
    asyncio.run(main())
