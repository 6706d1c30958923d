"""One measure of the metering worker on the database ``GOVMETER_BENCH_DATABASE_URL`` names, for ``bench/run.py
--years N``: the worker at year 1 and at year N are measured in turn, each in a process of its own, on two
databases (the stored year, and a copy of it with the older years added).

Each measure starts with a CHECKPOINT, so both start alike: every page the worker touches is then written to the
WAL whole the first time (a full-page image). Which pages those are is what grows with history (the event store's
key index), and the measure reports them an event beside the events/s. Prints one JSON object."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from bench import run as runner
from services.common.db import get_engine, raw_connection

WAL = "SELECT wal_fpi, wal_bytes FROM pg_stat_wal"


async def measure(label: str, events: int, seed: int, logs: Path) -> dict:
    async with raw_connection(get_engine()) as conn:
        await conn.execute("CHECKPOINT")
        fpi_before, bytes_before = await conn.fetchrow(WAL)
    size = {"runs": 1, "worker": events}  # what bench_workers reads of a size
    figures, rss = await runner.bench_workers(size, runner.Load(seed), 1, logs, at=f"{label} pair {seed}")  # own logs
    async with raw_connection(get_engine()) as conn:
        fpi_after, bytes_after = await conn.fetchrow(WAL)
    await get_engine().dispose()
    return {"events_per_s": figures[0].value, "worker_us": figures[1].value, "database_us": figures[2].value,
            "full_page_images": (fpi_after - fpi_before) / events,
            "wal_bytes": float(bytes_after - bytes_before) / events, "rss_mb": rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--label", required=True, help='as "year 1"')
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True,
                        help="the same seed on both databases: the same load (times, meters, quantities; new ids)")
    parser.add_argument("--logs", type=Path, required=True)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.label, args.events, args.seed, args.logs))))


if __name__ == "__main__":
    main()
