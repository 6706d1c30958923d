"""Query and report subcommands of ``govmeter``: ``govmeter warnings evaluate --day YYYY-MM-DD``."""

from __future__ import annotations

import asyncio
import json
from datetime import date


def cmd_warnings_evaluate(args) -> int:
    from services.common.config import get_settings
    from services.common.db import get_engine
    from services.common.kafka import ensure_topics, start_producer
    from services.query.warnings import evaluate_day, publish_pending

    async def run() -> tuple[list[int], int]:
        settings = get_settings()
        engine = get_engine()
        try:
            ids = await evaluate_day(engine, args.day)
            await ensure_topics(settings)
            producer = await start_producer(settings)
            try:
                sent = await publish_pending(engine, producer, settings.warnings_topic)
            finally:
                await producer.stop()
            return ids, sent
        finally:
            await engine.dispose()

    ids, sent = asyncio.run(run())
    print(json.dumps({"day": args.day.isoformat(), "new_warnings": ids, "published": sent}))
    return 0


def register(sub) -> None:
    """Add the query side's subcommands to the ``govmeter`` parser."""
    warnings = sub.add_parser("warnings", help="spend anomaly warnings (Art. 12(2))")
    actions = warnings.add_subparsers(dest="action", required=True)
    evaluate = actions.add_parser("evaluate", help="judge one local day's spend, store and publish its warnings")
    evaluate.add_argument("--day", required=True, type=date.fromisoformat, help="local day, YYYY-MM-DD")
    evaluate.set_defaults(func=cmd_warnings_evaluate)
