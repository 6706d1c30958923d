"""Billing's subcommands of ``govmeter``: ``ledger verify``, ``replay``, ``period close``."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime


def register(sub) -> None:
    """Add billing's subcommands to the ``govmeter`` parser."""
    ledger = sub.add_parser("ledger", help="the billing ledger")
    actions = ledger.add_subparsers(dest="action", required=True)
    actions.add_parser("verify", help="check the hash chain; name any edited, deleted or reordered entry"
                       ).set_defaults(func=cmd_ledger_verify)

    replay = sub.add_parser("replay", help="rebuild every projection from the event store into a fresh schema and "
                                           "compare it (and every bill) with the live one")
    replay.add_argument("--keep", action="store_true", help="keep the replay schema for inspection")
    replay.add_argument("--json", action="store_true", help="also print a last line of JSON (for bench/run.py)")
    replay.set_defaults(func=cmd_replay)

    period = sub.add_parser("period", help="billing periods")
    period_actions = period.add_subparsers(dest="action", required=True)
    close = period_actions.add_parser("close", help="close a period now: its bills become final (idempotent)")
    close.add_argument("month", help="YYYY-MM")
    close.add_argument("--by", default="cli", help="who closes it (recorded)")
    close.add_argument("--override-watermarks", metavar="REASON",
                       help="close although event sources are behind the month's end (the reason is recorded)")
    close.set_defaults(func=cmd_close)


def with_engine(work):
    """Run ``work(engine)`` in a fresh event loop and release the engine's connections afterwards."""
    from services.common.db import get_engine

    async def run():
        engine = get_engine()
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def cmd_ledger_verify(args) -> int:
    from services.billing.bills import snapshot
    from services.billing.ledger import verify_ledger

    async def verify(engine):
        async with snapshot(engine) as conn:
            return await verify_ledger(conn)

    report = with_engine(verify)
    if report.ok:
        print(f"ledger intact: {report.entries} entries, head {report.head_seq} {report.head_hash}")
        return 0
    print(f"ledger NOT intact ({len(report.problems)} problems in {report.entries} entries):", file=sys.stderr)
    for problem in report.problems:
        print(f"  {problem.problem}", file=sys.stderr)
    return 1


def cmd_replay(args) -> int:
    from services.billing.replay import replay
    from services.common.config import get_settings

    report = with_engine(lambda engine: replay(engine, get_settings().database_url, keep=args.keep))
    print(f"replayed {report.events} events and {report.rate_cards} rate cards in {report.seconds:.1f} s "
          f"({report.events_per_second:,.0f} events/s) into schema {report.schema}"
          + (" (kept)" if args.keep else " (dropped)"))
    for table, rows in report.tables_compared.items():
        print(f"  {table}: {rows} rows compared")
    print(f"  final bills recomputed as of their close: {report.final_bills_checked}; "
          f"draft bills compared: {report.drafts_checked}")
    if args.json:
        print(json.dumps({"events": report.events, "seconds": report.seconds,
                          "events_per_second": report.events_per_second, "identical": report.ok}))
    if report.ok:
        print("identical: every projection and every bill")
        return 0
    print(f"{len(report.differences)} differences:", file=sys.stderr)
    for difference in report.differences:
        print(f"  {difference}", file=sys.stderr)
    return 1


def cmd_close(args) -> int:
    from services.billing.closing import PeriodNotEnded, close_period
    from services.billing.watermarks import HeldBySources
    from services.common.periods import Month

    try:
        Month.parse(args.month)
    except ValueError as exc:
        print(f"month: {exc}", file=sys.stderr)
        return 2

    try:
        outcome = with_engine(lambda engine: close_period(engine, args.month, datetime.now(UTC), closed_by=args.by,
                                                          override_reason=args.override_watermarks))
    except (PeriodNotEnded, HeldBySources) as exc:
        print(exc, file=sys.stderr)
        return 1
    state = "closed" if outcome.closed_now else "was already closed"
    print(f"{outcome.period} {state} at {outcome.closed_at.isoformat()} by {outcome.closed_by}: "
          f"{len(outcome.bills)} bills, total {outcome.total}")
    return 0
