"""What the ``govmeter`` subcommands share: an engine for the length of one command, and a verdict printed."""

from __future__ import annotations

import asyncio
import sys
from typing import Iterable


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


def with_owner_engine(work):
    """``with_engine``, on an engine of the owner's (the migration role's, ``GOVMETER_MIGRATION_DATABASE_URL``): for
    the commands that change what only the owner may (detaching a partition, the event store's key indexes)."""
    from services.common.config import get_settings
    from services.common.db import get_engine

    async def run():
        engine = get_engine(get_settings().migration_database_url)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def verdict(ok: bool, success: str, heading: str, problems: Iterable[str]) -> int:
    """Print ``success`` (exit code 0), or ``heading`` and each problem on standard error (exit code 1)."""
    if ok:
        print(success)
        return 0
    print(heading, file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    return 1
