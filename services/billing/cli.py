"""Billing's subcommands of ``govmeter``: ``ledger verify``, ``period close``."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from services.common.commands import verdict, with_engine


def register(sub) -> None:
    """Add billing's subcommands to the ``govmeter`` parser."""
    ledger = sub.add_parser("ledger", help="the billing ledger")
    actions = ledger.add_subparsers(dest="action", required=True)
    actions.add_parser("verify", help="check the hash chain; name any edited, deleted or reordered entry"
                       ).set_defaults(func=cmd_ledger_verify)

    period = sub.add_parser("period", help="billing periods")
    period_actions = period.add_subparsers(dest="action", required=True)
    close = period_actions.add_parser("close", help="close a period now: its bills become final (idempotent)")
    close.add_argument("month", help="YYYY-MM")
    close.add_argument("--by", default="cli", help="who closes it (recorded)")
    close.add_argument("--override-watermarks", metavar="REASON",
                       help="close although event sources are behind the month's end (the reason is recorded)")
    close.set_defaults(func=cmd_close)


def cmd_ledger_verify(args) -> int:
    from services.bill_reads.bills import snapshot
    from services.billing.ledger import verify_ledger

    async def verify(engine):
        async with snapshot(engine) as conn:
            return await verify_ledger(conn)

    report = with_engine(verify)
    return verdict(report.ok, f"ledger intact: {report.entries} entries, head {report.head_seq} {report.head_hash}",
                   f"ledger NOT intact ({len(report.problems)} problems in {report.entries} entries):",
                   (problem.problem for problem in report.problems))


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
