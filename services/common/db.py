"""The database engine and sessions (SQLAlchemy 2 async over asyncpg)."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from decimal import Decimal
from functools import lru_cache

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from services.common.config import get_settings


LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}


_statement_timeout_ms = 0  # see limit_statement_time


def limit_statement_time(seconds: float) -> None:
    """Have PostgreSQL cancel any statement of this process's later connections after ``seconds`` (0: never).
    The APIs set it at start (GOVMETER_STATEMENT_TIMEOUT_SECONDS) so that no request holds a backend for long;
    the worker, replay and the CLI do not."""
    global _statement_timeout_ms
    _statement_timeout_ms = round(seconds * 1000)


async def without_statement_timeout(conn) -> None:
    """Lift the limit for the current transaction: for work whose size is the data's, not a caller's choice
    (closing a period, re-rating stored usage for a new rate card, evaluating warnings)."""
    await conn.execute("SET LOCAL statement_timeout = 0")


@lru_cache(maxsize=4)
def get_engine(url: str | None = None) -> AsyncEngine:
    url = url or get_settings().database_url
    connect_args = {"ssl": False} if _tls_pointless(make_url(url)) else {}
    # At most 20 connections a process, all kept: an overflow connection is closed when it is returned, and a new
    # one costs a SCRAM handshake, a backend and asyncpg's type introspection (~9 ms, 3 of them in this process)
    # in the very bursts that needed it. A 21st concurrent checkout waits for a connection, as it did past 10 + 10.
    engine = create_async_engine(url, pool_size=20, max_overflow=0, pool_pre_ping=False, connect_args=connect_args)
    event.listen(engine.sync_engine, "connect", _numeric_as_text)
    event.listen(engine.sync_engine, "do_connect", _statement_timeout)
    return engine


def _statement_timeout(_dialect, _record, _args, params: dict) -> None:
    # Sent in the connection's start-up packet: no extra round trip.
    if _statement_timeout_ms:
        params["server_settings"] = {**params.get("server_settings", {}),
                                     "statement_timeout": str(_statement_timeout_ms)}


def _numeric_as_text(dbapi_connection, _record) -> None:
    # asyncpg's binary numeric codec goes through Decimal.as_tuple() per value, the largest single cost of a
    # worker batch; the text form is str(Decimal) one way and Decimal(str) the other, exact both ways.
    dbapi_connection.run_async(
        lambda conn: conn.set_type_codec("numeric", encoder=str, decoder=Decimal, schema="pg_catalog", format="text")
    )


def get_sessionmaker(url: str | None = None) -> async_sessionmaker:
    return async_sessionmaker(get_engine(url), expire_on_commit=False)


def _tls_pointless(url: URL) -> bool:
    # TLS to a database on the same host only burns CPU on both ends (asyncpg's default, sslmode=prefer, takes it
    # whenever the server offers it, as Debian's does); a URL that says how to connect is obeyed.
    return url.host in LOOPBACK_HOSTS and not {"ssl", "sslmode"} & set(url.query)


def asyncpg_dsn(url: str) -> str:
    """The plain ``postgresql://`` form of a SQLAlchemy URL, for asyncpg and psql (without TLS on loopback, as
    the engine connects: the response cache's listener makes a round trip for nearly every cached answer)."""
    parsed = make_url(url).set(drivername="postgresql")
    if _tls_pointless(parsed):
        parsed = parsed.update_query_dict({"sslmode": "disable"})
    return parsed.render_as_string(hide_password=False)


@asynccontextmanager
async def _maintenance_connection(url: str):
    """A plain asyncpg connection to the ``postgres`` database of ``url``'s server, and ``url``'s database name:
    databases are created, copied and dropped from outside them."""
    import asyncpg

    target = make_url(url)
    conn = await asyncpg.connect(asyncpg_dsn(target.set(database="postgres").render_as_string(hide_password=False)))
    try:
        yield conn, target.database
    finally:
        await conn.close()


async def ensure_database(url: str) -> bool:
    """Create the database named in ``url`` if it is missing; True if it was created."""
    async with _maintenance_connection(url) as (conn, name):
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
        return not exists


async def drop_database(url: str) -> None:
    async with _maintenance_connection(url) as (conn, name):
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def copy_database(url: str, suffix: str) -> str:
    """A copy of the database ``url`` names (CREATE DATABASE … TEMPLATE: a file copy), named with ``suffix``; its
    URL. The template must have no other session: the ones left on it are ended first."""
    copy = make_url(url).set(database=make_url(url).database + suffix)
    async with _maintenance_connection(url) as (conn, name):
        await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
        await conn.execute(f'DROP DATABASE IF EXISTS "{copy.database}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{copy.database}" TEMPLATE "{name}"')
    return copy.render_as_string(hide_password=False)


@asynccontextmanager
async def raw_connection(engine: AsyncEngine):
    """The asyncpg connection under a pooled SQLAlchemy connection, for array-heavy SQL (``unnest``)."""
    async with engine.connect() as sa_conn:
        driver = (await sa_conn.get_raw_connection()).driver_connection
        try:
            yield driver
        except BaseException as exc:
            # Errors raised by asyncpg itself bypass SQLAlchemy's disconnect detection: a connection the server
            # closed (a restart, an outage) would go back to the pool and fail every later use. So would one whose
            # task was cancelled: cancelled while awaiting BEGIN, asyncpg marks its transaction failed and never
            # rolls it back, the server's transaction stays open (READ ONLY for a snapshot), and SQLAlchemy's
            # reset on return only rolls back transactions it began itself.
            if driver.is_closed() or driver.is_in_transaction() or isinstance(exc, asyncio.CancelledError):
                await sa_conn.invalidate()
            raise


@asynccontextmanager
async def raw_transaction(engine: AsyncEngine):
    """An asyncpg connection inside a real transaction. SQLAlchemy's adapter only begins its transaction on its
    own first statement, so statements sent straight to asyncpg need asyncpg's own transaction to be atomic."""
    async with raw_connection(engine) as conn:
        async with conn.transaction():
            yield conn
