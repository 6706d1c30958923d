"""A pooled connection whose user was cancelled is never handed out again: cancelled while awaiting BEGIN, asyncpg
forgets the transaction the server has opened, and the next user of the connection would write inside it (a
snapshot's READ ONLY transaction: "cannot execute INSERT in a read-only transaction" on every later write)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from services.common.db import raw_connection


@pytest.fixture
async def one_connection_engine(database):
    engine = create_async_engine(database, pool_size=1, max_overflow=0)
    yield engine
    await engine.dispose()


async def test_a_connection_left_in_a_transaction_by_a_cancelled_task_is_discarded(one_connection_engine):
    started = asyncio.Event()

    async def cancelled_after_begin():
        async with raw_connection(one_connection_engine) as conn:
            # What a cancellation during ``conn.transaction()``'s BEGIN leaves: the server's transaction open,
            # asyncpg not managing it.
            await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            started.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(cancelled_after_begin())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with raw_connection(one_connection_engine) as conn:
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SELECT current_setting('transaction_read_only')") == "off"


async def test_a_connection_is_discarded_when_an_error_leaves_it_in_a_transaction(one_connection_engine):
    with pytest.raises(ZeroDivisionError):
        async with raw_connection(one_connection_engine) as conn:
            await conn.execute("BEGIN READ ONLY")
            1 / 0
    async with raw_connection(one_connection_engine) as conn:
        assert not conn.is_in_transaction()
