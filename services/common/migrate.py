"""Running the Alembic migrations from code (``govmeter migrate``, tests, ``govmeter dev``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

import migrations

from services.common.db import ensure_database


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    return config


def migrate(database_url: str) -> None:
    """Create the database if missing and bring it to the newest schema. Call outside a running event loop."""
    asyncio.run(ensure_database(database_url))
    command.upgrade(alembic_config(database_url), "head")
