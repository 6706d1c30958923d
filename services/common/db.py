"""The database engine and sessions (SQLAlchemy 2 async over asyncpg)."""

from __future__ import annotations

from contextlib import asynccontextmanager
from functools import lru_cache

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from services.common.config import get_settings


@lru_cache(maxsize=4)
def get_engine(url: str | None = None) -> AsyncEngine:
    return create_async_engine(url or get_settings().database_url, pool_size=10, max_overflow=10, pool_pre_ping=False)


def get_sessionmaker(url: str | None = None) -> async_sessionmaker:
    return async_sessionmaker(get_engine(url), expire_on_commit=False)


def asyncpg_dsn(url: str) -> str:
    """The plain ``postgresql://`` form of a SQLAlchemy URL, for asyncpg and psql."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def ensure_database(url: str) -> bool:
    """Create the database named in ``url`` if it is missing; True if it was created."""
    import asyncpg

    target = make_url(url)
    admin = asyncpg_dsn(str(target.set(database="postgres").render_as_string(hide_password=False)))
    conn = await asyncpg.connect(admin)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", target.database)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{target.database}"')
        return not exists
    finally:
        await conn.close()


async def drop_database(url: str) -> None:
    import asyncpg

    target = make_url(url)
    admin = asyncpg_dsn(str(target.set(database="postgres").render_as_string(hide_password=False)))
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
    finally:
        await conn.close()


@asynccontextmanager
async def raw_connection(engine: AsyncEngine):
    """The asyncpg connection under a pooled SQLAlchemy connection, for array-heavy SQL (``unnest``)."""
    async with engine.connect() as sa_conn:
        yield (await sa_conn.get_raw_connection()).driver_connection


@asynccontextmanager
async def raw_transaction(engine: AsyncEngine):
    """An asyncpg connection inside a real transaction. SQLAlchemy's adapter only begins its transaction on its
    own first statement, so statements sent straight to asyncpg need asyncpg's own transaction to be atomic."""
    async with raw_connection(engine) as conn:
        async with conn.transaction():
            yield conn
