"""``govmeter replay``: rebuild every projection into a fresh schema and compare it, and every bill, with the live."""

from __future__ import annotations

import json

from services.common.commands import verdict, with_engine


def register(sub) -> None:
    """Add ``replay`` to the ``govmeter`` parser."""
    replay = sub.add_parser("replay", help="rebuild every projection from the event store into a fresh schema and "
                                           "compare it (and every bill) with the live one")
    replay.add_argument("--keep", action="store_true", help="keep the replay schema for inspection")
    replay.add_argument("--json", action="store_true", help="also print a last line of JSON (for bench/run.py)")
    replay.set_defaults(func=cmd_replay)


def cmd_replay(args) -> int:
    from services.common.config import get_settings
    from services.replay.run import replay

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
    return verdict(report.ok, "identical: every projection and every bill",
                   f"{len(report.differences)} differences:", report.differences)
