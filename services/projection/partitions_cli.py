"""``govmeter partitions``: list the month partitions (usage_hourly's, the event store's), create a range of them,
detach a closed month."""

from __future__ import annotations

import sys


def register(sub) -> None:
    """Add ``partitions`` to the ``govmeter`` parser."""
    parser = sub.add_parser("partitions", help="month partitions of usage_hourly and of the event store: list, "
                                               "create, detach (docs/partitioning.md)")
    parser.add_argument("--from", dest="first", metavar="YYYY-MM", help="create the missing partitions from this "
                                                                       "month …")
    parser.add_argument("--to", dest="last", metavar="YYYY-MM", help="… to this one (default: --from)")
    parser.add_argument("--detach", metavar="YYYY-MM",
                        help="detach a closed month's partition into archive.usage_hourly_YYYY_MM (as the "
                             "migration role, GOVMETER_MIGRATION_DATABASE_URL)")
    parser.add_argument("--events", action="store_true",
                        help="with --detach: the event store's month (events received in it) into "
                             "archive.events_YYYY_MM, instead of usage_hourly's")
    parser.add_argument("--tablespace", help="with --detach: move the detached table to this tablespace")
    parser.set_defaults(func=cmd_partitions)


def _months(args):
    from services.common.periods import Month

    parsed = {}
    for field, text in (("--from", args.first), ("--to", args.last or args.first), ("--detach", args.detach)):
        if text is not None:
            try:
                parsed[field] = Month.parse(text)
            except ValueError as exc:
                raise SystemExit(f"{field}: {exc}") from None
    return parsed


def cmd_partitions(args) -> int:
    from services.common.commands import with_engine, with_owner_engine
    from services.common.db import raw_connection
    from services.projection import partitions

    months = _months(args)
    if args.tablespace and "--detach" not in months:
        raise SystemExit("--tablespace: only with --detach")
    if args.events and "--detach" not in months:
        raise SystemExit("--events: only with --detach")
    table = partitions.EVENTS if args.events else partitions.USAGE_HOURLY

    async def run(engine):
        async with raw_connection(engine) as conn:
            if "--detach" in months:
                month = months["--detach"]
                if not await conn.fetchval("SELECT 1 FROM billing_periods WHERE period = $1", str(month)):
                    print(f"--detach: {month} is not closed; only a closed month's partition may be detached",
                          file=sys.stderr)
                    return 1
                print(f"detached: {await partitions.detach_month(conn, month, args.tablespace, table)}")
                return 0
            if "--from" in months:
                created = await partitions.ensure_month_partitions(conn, months["--from"], months["--to"])
                print(f"created: {', '.join(created) or 'none (all existed)'}")
            for monthly in partitions.MONTHLY_TABLES:
                for name, rows in await partitions.month_partitions(conn, monthly):
                    print(f"{name}\t~{rows:,} rows")
            return 0

    if "--detach" in months:  # detaching needs the table's owner
        return with_owner_engine(run)
    return with_engine(run)

