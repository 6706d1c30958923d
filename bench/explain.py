"""The plans of the finance questions on the bench database (docs/benchmark.md): each statement a distinct question
of each kind runs (bench/finance_load.py), run again under EXPLAIN (ANALYZE, BUFFERS), with its time and the
buffers it read. Read-only.

    python bench/explain.py                  # the bench database (GOVMETER_BENCH_DATABASE_URL), seed 1
    python bench/explain.py --plans          # and print each plan in full"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ["DATABASE_URL"] = os.environ.get("GOVMETER_BENCH_DATABASE_URL",
                                            "postgresql+asyncpg://postgres:postgres@127.0.0.1:5432/govmeter_bench")

from bench.finance_load import KINDS, distinct_request  # noqa: E402
from services.bill_reads import issued  # noqa: E402
from services.common.db import get_engine, raw_connection  # noqa: E402
from services.common.periods import parse_bound  # noqa: E402
from services.demo.load import DEMO_DEPARTMENTS  # noqa: E402
from services.query.views import UsageQuery, usage_report_sql  # noqa: E402

YEAR = 2025


def usage_query(params: dict) -> UsageQuery:
    groups = tuple(params.get("group_by", "").split(",")) if params.get("group_by") else ()
    department = params.get("department")
    return UsageQuery(parse_bound(params["from"]), parse_bound(params["to"]), groups,
                      params.get("granularity", "total"), (department,) if department else None, None)


async def explain(conn, sql: str, args: list, full: bool) -> str:
    plan = [r[0] for r in await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *args)]
    total = next((line for line in plan if line.startswith("Execution Time")), "?")
    # the top node's buffers: the first "Buffers:" line of the plan belongs to its first node
    buffers = next((line.strip() for line in plan if line.strip().startswith("Buffers:")), "Buffers: none")
    head = f"    {total.split(': ')[-1]:>12}  {plan[0].strip()[:90]}  ({buffers})"
    return head + ("\n" + "\n".join("      " + line for line in plan) if full else "")


async def bill_list_statements(department: str, month: str | None) -> list[tuple[str, list, float]]:
    """Every statement one bill list runs, with its arguments and time, as the billing API runs it."""
    logged: list[tuple[str, list, float]] = []
    original = issued.snapshot

    def logging_snapshot(engine):
        context = original(engine)

        class Logged:
            def log(self, record) -> None:
                logged.append((record.query, list(record.args or ()), record.elapsed * 1000))

            async def __aenter__(self):
                self.conn = await context.__aenter__()
                self.conn.add_query_logger(self.log)
                return self.conn

            async def __aexit__(self, *exc):
                self.conn.remove_query_logger(self.log)
                return await context.__aexit__(*exc)

        return Logged()

    issued.snapshot = logging_snapshot
    try:
        await issued.bill_summaries(get_engine(), month, [department], datetime.now(UTC))
    finally:
        issued.snapshot = original
    return logged


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--plans", action="store_true", help="print every plan in full")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    departments = [d[0] for d in DEMO_DEPARTMENTS]
    async with raw_connection(get_engine()) as conn:
        for kind in KINDS:
            service, path, params = distinct_request(kind, rng, departments, YEAR)
            print(f"{kind}: {path} {params}")
            if service == "query":
                sql, sql_args = usage_report_sql(usage_query(params), 100_000)
                print(await explain(conn, sql, sql_args, args.plans))
                continue
            t0 = time.perf_counter()
            statements = await bill_list_statements(params["department"], params.get("month"))
            print(f"    {len(statements)} statements, {(time.perf_counter() - t0) * 1000:.1f} ms in all")
            for sql, sql_args, ms in statements:
                if sql.lstrip().upper().startswith(("SELECT", "WITH")):
                    print(f"    ran in {ms:.1f} ms: {' '.join(sql.split())[:100]}")
                    print(await explain(conn, sql, sql_args, args.plans))
    await get_engine().dispose()


if __name__ == "__main__":
    asyncio.run(main())
