"""Move the event store key's boundary (``govmeter event-keys --settle-before``, services/metering/key_tiers.py)
while 2,000 events/s are ingested through the metering API and worker, on the bench database
(``GOVMETER_BENCH_DATABASE_URL``, say a ``--years 5`` store): how long after posting each sampled batch is stored,
every 0.5 s, for 20 s before the move, during it and 20 s after. Prints the move's length and the lag's p50, p99
and maximum in each phase.

    python -m bench.key_move"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import asyncpg

from bench import run as runner
from services.common.db import asyncpg_dsn
from services.metering import key_tiers


async def main() -> None:
    logs = runner.REPO / "bench" / "results" / f"logs-{runner.STAMP}"
    logs.mkdir(parents=True, exist_ok=True)
    lags: list[tuple[float, str]] = []
    phase = "before"
    async with runner.steady_ingest(2000, logs) as ingest:
        async def probe() -> None:
            while True:
                key, posted = ingest.last_key, ingest.last_post
                if key:
                    while await runner.missing([key]):
                        await asyncio.sleep(0.02)
                    lags.append((time.monotonic() - posted, phase))
                await asyncio.sleep(0.5)

        prober = asyncio.create_task(probe())
        await asyncio.sleep(20)
        conn = await asyncpg.connect(asyncpg_dsn(runner.BENCH_DB))
        try:
            phase, started = "moving", time.monotonic()
            indexes = await key_tiers.settle_event_keys(conn, await conn.fetchval("SELECT now()"))
            moved_s = time.monotonic() - started
            phase = "after"
            await asyncio.sleep(20)
        finally:
            prober.cancel()
            await conn.close()
    print(f"moved in {moved_s:.1f} s to {', '.join(indexes)}; {ingest.accepted:,} events accepted")
    for name in ("before", "moving", "after"):
        values = sorted(lag for lag, p in lags if p == name)
        if values:
            print(f"{name:7} posted → stored: p50 {statistics.median(values):.2f} s, "
                  f"p99 {values[int(0.99 * (len(values) - 1))]:.2f} s, max {values[-1]:.2f} s ({len(values)} samples)")


if __name__ == "__main__":
    asyncio.run(main())
