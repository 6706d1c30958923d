"""``govmeter event-keys``: the event store's key tiers (services/metering/key_tiers.py): show them, or move the
boundary before which received events are settled."""

from __future__ import annotations

import sys
from datetime import date


def register(sub) -> None:
    """Add ``event-keys`` to the ``govmeter`` parser."""
    parser = sub.add_parser("event-keys", help="the event store's key: settled and recent tiers (docs/partitioning.md)")
    move = parser.add_mutually_exclusive_group()
    move.add_argument("--settle-before", metavar="YYYY-MM-DD",
                      help="settle the events received before this local day (Asia/Shanghai midnight), as the "
                           "migration role (GOVMETER_MIGRATION_DATABASE_URL); once a year, in January")
    move.add_argument("--one-index", action="store_true", help="back to one key index over every event")
    parser.set_defaults(func=cmd_event_keys)


def cmd_event_keys(args) -> int:
    from services.common.commands import with_engine, with_owner_engine
    from services.common.db import raw_connection
    from services.metering import key_tiers
    from schemas.periods import local_midnight

    moving = args.settle_before is not None or args.one_index
    boundary = None
    if args.settle_before is not None:
        try:
            boundary = local_midnight(date.fromisoformat(args.settle_before))
        except ValueError as exc:
            raise SystemExit(f"--settle-before: {exc}") from None

    async def run(engine):
        async with raw_connection(engine) as conn:
            if moving:
                try:
                    await key_tiers.settle_event_keys(conn, boundary)
                except ValueError as exc:
                    print(f"--settle-before: {exc}", file=sys.stderr)
                    return 1
            settled = await key_tiers.settled_before(conn)
            print(f"settled before: {settled.isoformat() if settled else 'none (one index)'}")
            for name, valid, size in await key_tiers.key_indexes(conn):
                print(f"{name}\t{size / 2**20:,.0f} MB{'' if valid else ' (invalid)'}")
            return 0

    if moving:  # building and dropping indexes needs the table's owner
        return with_owner_engine(run)
    return with_engine(run)
