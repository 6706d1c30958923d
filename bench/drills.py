"""Fault drills: govmeter's processes started as an operator would, a known load with duplicates, and four faults.

    .venv/bin/python bench/drills.py [--size smoke|full]      (or: govmeter drill [--size …])

The drill owns everything it breaks: a PostgreSQL cluster of its own (initdb into a temporary directory, on its own
port), an Apache Kafka broker of its own (scripts/kafka-broker.sh on its own ports and data directory), and its own
metering API and worker processes. Nothing shared on the machine is stopped.

Load: usage events of quantity 1, each with a unique id, sent straight into Kafka (a backlog, 10 % of records
resent) and posted over HTTP at a steady rate throughout (10 % of events resent in later posts); a post that does
not get 202 is resent with the same ids, as a provider would. Faults, one after another:

1. the worker is SIGKILLed mid-backlog and restarted at once;
2. a second worker joins the group, and 15 s later leaves it;
3. PostgreSQL is stopped for 30 s (``--pg-outage``), then started;
4. the broker is stopped for 10 s (``--broker-outage``), then started.

For each fault it prints how long metering stood still (no new event committed while input was waiting) and what
HTTP ingest answered meanwhile; at the end, events lost (accepted but never counted) and double counts (stored
quantity beyond one per distinct event). Exit status 1 if any event was lost or counted twice."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaProducer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SIZES = {
    # backlog events straight into Kafka, HTTP events/s, events per post
    "smoke": dict(backlog=40_000, rate=400, post=100),
    "full": dict(backlog=120_000, rate=2_000, post=200),
}
SOURCE = "urn:drill:collector"
RESOURCES = 50
T0 = datetime(2031, 1, 1, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Scratch:
    """A server of the drill's own in a temporary directory: stopped and removed when the drill ends."""

    dir: Path

    def stop(self) -> None:
        raise NotImplementedError

    def destroy(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


class Postgres(Scratch):
    """A PostgreSQL cluster of the drill's own, from Debian's binaries."""

    def __init__(self) -> None:
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
        if not versions:
            raise SystemExit("PostgreSQL binaries not found under /usr/lib/postgresql (run scripts/postgres.sh)")
        self.bin = versions[-1]
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="govmeter-drill-pg-"))
        if os.geteuid() == 0:  # initdb refuses root: the cluster belongs to Debian's postgres user
            shutil.chown(self.dir, "postgres", "postgres")
        # As in production: migrations as the owner role, the services as the app role, both made by the superuser
        # (the cluster trusts loopback, so the passwords are only what the URLs say).
        at = f"127.0.0.1:{self.port}/govmeter_drill"
        self.urls = {"GOVMETER_BOOTSTRAP_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres",
                     "GOVMETER_MIGRATION_DATABASE_URL": f"postgresql+asyncpg://govmeter_owner:owner@{at}",
                     "DATABASE_URL": f"postgresql+asyncpg://govmeter_app:app@{at}"}

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.dir / "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "server.log"), "-w", "-o",
                  f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c max_connections=100", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")


class Broker(Scratch):
    """An Apache Kafka broker of the drill's own (scripts/kafka-broker.sh on other ports)."""

    def __init__(self) -> None:
        self.port, self.controller = free_port(), free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="govmeter-drill-kafka-"))
        self.env = {**os.environ, "KAFKA_PORT": str(self.port), "KAFKA_CONTROLLER_PORT": str(self.controller),
                    "KAFKA_DATA_DIR": str(self.dir)}
        self.bootstrap = f"127.0.0.1:{self.port}"

    def _script(self, action: str) -> None:
        subprocess.run(["bash", str(REPO / "scripts" / "kafka-broker.sh"), action], env=self.env, check=True,
                       stdout=subprocess.DEVNULL)

    def start(self) -> None:
        self._script("start")

    def stop(self) -> None:
        self._script("stop")


class Process:
    """``govmeter <args>`` as a child process with its own log."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args, self.env, self.log_path = args, env, log_path
        self.popen: subprocess.Popen | None = None

    def start(self) -> None:
        self.popen = subprocess.Popen([sys.executable, "-m", "services.cli", *self.args], cwd=REPO,
                                      env=self.env, stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT,
                                      start_new_session=True)

    def kill(self) -> None:
        assert self.popen is not None
        os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()

    def stop(self) -> None:
        if self.popen and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def usage_event(n: int) -> dict:
    start = T0 + timedelta(minutes=n)
    return {"specversion": "1.0", "id": f"drill-{n}", "source": SOURCE, "type": "gov.cloud.usage.v1",
            "subject": f"drill-vm-{n % RESOURCES}", "time": (start + timedelta(minutes=1)).isoformat(),
            "data": {"meter": "compute.vcpu", "quantity": "1", "start": start.isoformat(),
                     "end": (start + timedelta(minutes=1)).isoformat()}}


@dataclass
class Answers:
    """What HTTP ingest answered, in a time slice of the drill."""

    statuses: Counter = field(default_factory=Counter)
    slowest: float = 0.0
    retry_after: set = field(default_factory=set)
    sequence: list = field(default_factory=list)

    def add(self, status: str, seconds: float, retry_after: str | None) -> None:
        self.statuses[status] += 1
        if status != "202":
            self.sequence.append(f"{status} in {seconds:.1f} s")
        self.slowest = max(self.slowest, seconds)
        if retry_after:
            self.retry_after.add(retry_after)

    def text(self) -> str:
        counts = ", ".join(f"{n}× {s}" for s, n in sorted(self.statuses.items())) or "nothing"
        after = f", Retry-After {'/'.join(sorted(self.retry_after))} s" if self.retry_after else ""
        failures = f" ({', '.join(self.sequence[:6])}{', …' if len(self.sequence) > 6 else ''})" if self.sequence else ""
        return f"{counts}; slowest answer {self.slowest:.1f} s{after}{failures}"


class Drill:
    def __init__(self, size: dict, pg_outage: float, broker_outage: float, workdir: Path) -> None:
        self.size, self.pg_outage, self.broker_outage, self.workdir = size, pg_outage, broker_outage, workdir
        self.postgres, self.broker = Postgres(), Broker()
        self.api_port = free_port()
        secret = secrets.token_urlsafe(48)
        self.env = {**os.environ, **self.postgres.urls, "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap,
                    "GOVMETER_JWT_SECRET": secret, "GOVMETER_TOPIC_PREFIX": f"drill-{uuid.uuid4().hex[:8]}",
                    "GOVMETER_METERING_PORT": str(self.api_port), "GOVMETER_WORKER_INSTANCE_ID": "drill-worker-1",
                    "GOVMETER_WORKER_METRICS_PORT": "0"}
        os.environ.update({k: v for k, v in self.env.items() if k.startswith(("GOVMETER_", "DATABASE_", "KAFKA_B"))})
        self.api = Process(["api", "metering"], self.env, workdir / "metering-api.log")
        self.worker = Process(["worker", "metering"], self.env, workdir / "metering-worker.log")
        self.accepted: set[int] = set()  # event numbers the API answered 202 for, or the broker acknowledged
        self.answers: list[tuple[float, str, float, str | None]] = []  # (when, status, seconds, Retry-After)
        self.counts: list[tuple[float, int | None]] = []  # (when, stored events) sampled; None: database away
        self.accepted_at: list[tuple[float, int]] = []  # (when, events accepted so far) at each HTTP 202
        self.next_event = 0
        self.sending = True

    # -- the parts -------------------------------------------------------------------------------------------

    def start(self) -> None:
        log(f"own PostgreSQL on 127.0.0.1:{self.postgres.port}, own Kafka on {self.broker.bootstrap}")
        self.postgres.init()
        self.postgres.start()
        self.broker.start()
        subprocess.run([sys.executable, "-m", "services.cli", "migrate"], cwd=REPO, env=self.env, check=True,
                       stdout=subprocess.DEVNULL)
        self.api.start()
        self.worker.start()

    def stop(self) -> None:
        for process in (self.api, self.worker):
            process.stop()
        self.broker.destroy()
        self.postgres.destroy()

    # -- load and observation ---------------------------------------------------------------------------------

    def take(self, count: int) -> list[int]:
        numbers = list(range(self.next_event, self.next_event + count))
        self.next_event += count
        return numbers

    async def backlog(self, count: int) -> None:
        """Records straight into Kafka, 10 % of them resent (the same bytes: exact duplicates)."""
        producer = AIOKafkaProducer(bootstrap_servers=self.broker.bootstrap, acks="all", max_request_size=2_000_000)
        await producer.start()
        try:
            records = []
            for i in range(0, count, 250):
                numbers = self.take(min(250, count - i))
                records.append((numbers, orjson.dumps([usage_event(n) for n in numbers])))
            resent = records[::10]
            for numbers, record in [*records, *resent]:
                await producer.send(self.env["GOVMETER_TOPIC_PREFIX"] + ".events", record)
            await producer.flush()
            for numbers, _ in records:
                self.accepted.update(numbers)
        finally:
            await producer.stop()

    async def http_load(self) -> None:
        """Posts at a steady rate; a post that is not accepted is resent with the same ids after Retry-After."""
        from services.common.auth import issue_token

        headers = {"Authorization": f"Bearer {issue_token('provider', sources=[SOURCE])}"}
        rate, per_post = self.size["rate"], self.size["post"]
        previous: list[int] = []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.api_port}", timeout=30) as client:
            while self.sending:
                began = time.monotonic()
                numbers = self.take(per_post)
                resent = previous[: per_post // 10]  # 10 % of each post was in the post before
                body = orjson.dumps([usage_event(n) for n in numbers + resent])
                while True:
                    sent = time.monotonic()
                    try:
                        response = await client.post("/v1/events", content=body, headers={
                            **headers, "Content-Type": "application/cloudevents-batch+json"})
                        status, retry = str(response.status_code), response.headers.get("retry-after")
                    except httpx.HTTPError as exc:
                        status, retry = type(exc).__name__, None
                    self.answers.append((sent, status, time.monotonic() - sent, retry))
                    if status == "202":
                        self.accepted.update(numbers)
                        self.accepted_at.append((time.monotonic(), len(self.accepted)))
                        break
                    await asyncio.sleep(float(retry or 1))
                previous = numbers
                await asyncio.sleep(max(0.0, per_post / rate - (time.monotonic() - began)))

    async def stored(self) -> int | None:
        try:
            conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{self.postgres.port}/govmeter_drill",
                                         timeout=2)
        except (OSError, asyncpg.PostgresError):
            return None
        try:
            return await conn.fetchval("SELECT count(*) FROM events WHERE source = $1", SOURCE)
        except (OSError, asyncpg.PostgresError):
            return None
        finally:
            await conn.close()

    async def observe(self) -> None:
        while True:
            self.counts.append((time.monotonic(), await self.stored()))
            await asyncio.sleep(0.25)

    def first_progress_after(self, since: float) -> float | None:
        """The first moment after ``since`` at which more events were stored than at ``since``."""
        before = None
        for when, count in self.counts:
            if when <= since:
                before = count if count is not None else before
            elif count is not None and before is not None and count > before:
                return when
            elif count is not None and before is None:
                before = count
        return None

    def slowest_counting(self, start: float, end: float) -> float:
        """Of the posts accepted within [start, end], the longest wait from the 202 until as many events were
        stored as had been accepted by then: how long a provider's usage waited to count."""
        slowest = 0.0
        for accepted_when, accepted in self.accepted_at:
            if not start <= accepted_when <= end:
                continue
            counted = next((when for when, count in self.counts if when >= accepted_when and (count or 0) >= accepted),
                           None)
            slowest = max(slowest, (counted or self.counts[-1][0]) - accepted_when)
        return round(slowest, 1)

    def answers_between(self, start: float, end: float) -> Answers:
        answers = Answers()
        for when, status, seconds, retry in self.answers:
            if start <= when <= end:
                answers.add(status, seconds, retry)
        return answers

    async def caught_up(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (await self.stored() or 0) >= len(self.accepted) and self.accepted:
                return
            await asyncio.sleep(0.5)
        raise SystemExit(f"metering did not catch up within {timeout:.0f} s: see {self.workdir}")

    async def wait_for_progress(self, since: float, timeout: float = 300) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            moment = self.first_progress_after(since)
            if moment is not None:
                return moment
            await asyncio.sleep(0.25)
        raise SystemExit(f"metering made no progress within {timeout:.0f} s: see {self.workdir}")

    # -- the drill ---------------------------------------------------------------------------------------------

    async def run(self) -> dict:
        await wait_healthy(f"http://127.0.0.1:{self.api_port}/healthz")
        await wait_file(self.worker.log_path, "[^Worker]: Ready")
        observer = asyncio.create_task(self.observe())
        load = asyncio.create_task(self.http_load())
        results: dict[str, dict] = {}
        try:
            # 1. SIGKILL the worker mid-backlog, restart it at once.
            await self.backlog(self.size["backlog"])
            while (await self.stored() or 0) < self.size["backlog"] // 10:
                await asyncio.sleep(0.1)
            killed = time.monotonic()
            self.worker.kill()
            log("worker SIGKILLed, restarted at once")
            self.worker.start()
            resumed = await self.wait_for_progress(killed + 0.3)
            results["worker SIGKILL + restart"] = {
                "stood still s": round(resumed - killed, 1), "ingest": self.answers_between(killed, resumed).text()}
            await self.caught_up()

            # 2. A second worker joins the group, then leaves it (SIGTERM): the partitions move twice.
            await asyncio.sleep(10)  # a steady stretch to compare with
            second = Process(["worker", "metering"], {**self.env, "GOVMETER_WORKER_INSTANCE_ID": "drill-worker-2"},
                             self.workdir / "metering-worker-2.log")
            joined = time.monotonic()
            second.start()
            await wait_file(second.log_path, "[^Worker]: Ready")
            await asyncio.sleep(15)
            left = time.monotonic()
            await asyncio.to_thread(second.stop)
            log("a second worker joined and left")
            await asyncio.sleep(15)
            await self.caught_up()
            results["a second worker joins, then leaves"] = {
                "slowest post→counted, join s": self.slowest_counting(joined, left),
                "slowest post→counted, leave s": self.slowest_counting(left, time.monotonic()),
                "slowest post→counted, before s": self.slowest_counting(joined - 10, joined)}
            await self.caught_up()

            # 3. PostgreSQL away for a while.
            stopped = time.monotonic()
            await asyncio.to_thread(self.postgres.stop)
            log(f"PostgreSQL stopped for {self.pg_outage:.0f} s")
            await asyncio.sleep(self.pg_outage)
            await asyncio.to_thread(self.postgres.start)
            back = time.monotonic()
            resumed = await self.wait_for_progress(back)
            results[f"PostgreSQL stopped {self.pg_outage:.0f} s"] = {
                "stood still s": round(resumed - stopped, 1), "after it returned s": round(resumed - back, 1),
                "ingest": self.answers_between(stopped, resumed).text()}
            await self.caught_up()

            # 4. The broker away for a while.
            stopped = time.monotonic()
            await asyncio.to_thread(self.broker.stop)  # the load goes on while the broker shuts down
            down = time.monotonic()
            log(f"broker stopped ({down - stopped:.1f} s to shut down), down for {self.broker_outage:.0f} s")
            await asyncio.sleep(self.broker_outage)
            await asyncio.to_thread(self.broker.start)
            back = time.monotonic()
            log(f"broker answering again ({back - down - self.broker_outage:.1f} s to start)")
            resumed = await self.wait_for_progress(back)
            results[f"broker stopped {self.broker_outage:.0f} s"] = {
                "stood still s": round(resumed - stopped, 1), "after it returned s": round(resumed - back, 1),
                "ingest while it was away": self.answers_between(down, back).text(),
                "ingest": self.answers_between(stopped, resumed).text()}
        finally:
            self.sending = False
            await load
        await self.caught_up()
        observer.cancel()
        return await self.verdict(results)

    async def verdict(self, results: dict) -> dict:
        conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{self.postgres.port}/govmeter_drill")
        try:
            stored_ids = {r["event_id"] for r in await conn.fetch(
                "SELECT event_id FROM events WHERE source = $1", SOURCE)}
            quantity = await conn.fetchval(
                "SELECT coalesce(sum(quantity), 0) FROM usage_hourly WHERE resource_id LIKE 'drill-vm-%'")
        finally:
            await conn.close()
        accepted = {f"drill-{n}" for n in self.accepted}
        lost = len(accepted - stored_ids)
        double = int(quantity) - len(stored_ids)
        return {"faults": results, "events accepted": len(accepted), "events stored": len(stored_ids),
                "lost": lost, "double counted": double}


async def wait_healthy(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
    raise SystemExit(f"{url} not healthy within {timeout:.0f} s")


async def wait_file(path: Path, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        await asyncio.sleep(0.25)
    raise SystemExit(f"{path}: {text!r} not seen within {timeout:.0f} s")


def report(outcome: dict) -> None:
    print("\nDrill results")
    for fault, figures in outcome["faults"].items():
        print(f"  {fault}")
        for name, value in figures.items():
            print(f"      {name:22s} {value}")
    print(f"  events accepted {outcome['events accepted']}, stored {outcome['events stored']}: "
          f"lost {outcome['lost']}, double counted {outcome['double counted']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="smoke")
    parser.add_argument("--pg-outage", type=float, default=30.0, help="seconds PostgreSQL stays stopped")
    parser.add_argument("--broker-outage", type=float, default=10.0, help="seconds the broker stays stopped")
    parser.add_argument("--keep", action="store_true", help="keep the drill's logs directory")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="govmeter-drill-logs-"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the cleanup below runs
    drill = Drill(SIZES[args.size], args.pg_outage, args.broker_outage, workdir)
    try:
        drill.start()
        outcome = asyncio.run(drill.run())
    finally:
        drill.stop()
    report(outcome)
    print(f"  logs: {workdir}")
    return 1 if outcome["lost"] or outcome["double counted"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
