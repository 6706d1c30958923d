"""The lifespan every API shares: its topics exist, a producer is ready, and an optional background loop runs."""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import asynccontextmanager
from typing import Awaitable, Callable

from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from services.common.auth import jwt_secret
from services.common.config import Settings, get_settings
from services.common.db import get_engine, limit_statement_time
from services.common.kafka import ensure_topics, start_producer

BackgroundLoop = Callable[[AIOKafkaProducer, Settings], Awaitable[None] | None]


def producer_lifespan(background: BackgroundLoop | None = None):
    """``background(producer, settings)`` returns the loop's coroutine, or None when it is switched off."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        settings = get_settings()
        jwt_secret(settings)  # no API starts without a signing secret (MissingSecret says what to set)
        limit_statement_time(settings.statement_timeout_seconds)
        await get_engine().dispose()  # connections made before (none when served) get the limit when made anew
        await ensure_topics(settings)
        app.state.producer = await start_producer(settings)
        loop = background(app.state.producer, settings) if background else None
        task = asyncio.create_task(loop) if loop is not None else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await app.state.producer.stop()

    return lifespan
