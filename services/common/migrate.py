"""Running the Alembic migrations from code (``govmeter migrate``, tests, ``govmeter dev``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

import migrations

from services.common.db import asyncpg_dsn, ensure_database
from services.common.privileges import Login, adopt_database, ensure_login_role, grant_app_role


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    return config


def migrate(database_url: str, app_url: str | None = None, bootstrap_url: str | None = None) -> None:
    """Bring the database at ``database_url`` to the newest schema as that URL's role, which owns what it makes.
    With ``bootstrap_url`` (a superuser's, as on a dev machine) the roles of both URLs and the database are made
    first if missing. With ``app_url`` the services' role then gets exactly ``privileges.APP_GRANTS``.
    Call outside a running event loop."""
    if app_url and Login.of(app_url).database != Login.of(database_url).database:
        raise ValueError("DATABASE_URL and the migration URL must name the same database")
    if bootstrap_url:
        asyncio.run(bootstrap(bootstrap_url, database_url, app_url))
    else:
        asyncio.run(ensure_database(database_url))
    command.upgrade(alembic_config(database_url), "head")
    if app_url:
        asyncio.run(_grant(database_url, Login.of(app_url).role))


def migrate_from_settings(settings) -> None:
    migrate(settings.migration_database_url, settings.database_url, settings.bootstrap_database_url)


async def bootstrap(bootstrap_url: str, owner_url: str, app_url: str | None = None) -> None:
    """As a superuser: the owner and app roles if missing, the database owned by the owner if missing (or made
    the owner's if it was migrated before the roles existed)."""
    import asyncpg

    owner = Login.of(owner_url)
    superuser = make_url(bootstrap_url)
    conn = await asyncpg.connect(asyncpg_dsn(superuser.set(database=superuser.database or "postgres")))
    try:
        for login in (owner, *([Login.of(app_url)] if app_url else [])):
            await ensure_login_role(conn, login)
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", owner.database):
            try:
                await conn.execute(f'CREATE DATABASE "{owner.database}" OWNER "{owner.role}"')
                return
            except asyncpg.DuplicateDatabaseError:
                pass
    finally:
        await conn.close()
    conn = await asyncpg.connect(asyncpg_dsn(superuser.set(database=owner.database)))
    try:
        async with conn.transaction():
            await adopt_database(conn, owner.role)
    finally:
        await conn.close()


async def _grant(owner_url: str, app_role: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(owner_url))
    try:
        async with conn.transaction():
            await grant_app_role(conn, app_role)
    finally:
        await conn.close()
