"""Alembic environment: async engine, URL from the application's settings."""

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

from services.common.config import get_settings
from services.common.models import Base
from services.metering.key_tiers import WHOLE
from services.projection.partitions import is_partition_name
import services.billing.models  # noqa: F401  (registers billing tables on Base.metadata)
import services.billing.application_models  # noqa: F401  (registers the applications' tables)
import services.query.models  # noqa: F401  (registers report tables)

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name)

target_metadata = Base.metadata


def _include_object(obj, name, type_, reflected, compare_to) -> bool:
    # the partitions of usage_hourly and of events (migrations 0016, 0021) are made at run time, not modelled: the
    # parents are the model
    if type_ == "table" and reflected and compare_to is None and is_partition_name(name):
        return False
    # the event store's key: the one index of the model, or the pair of partial ones that ``govmeter event-keys``
    # builds in its place (services/metering/key_tiers.py)
    return not (type_ == "index" and compare_to is None and name is not None and name.startswith(WHOLE))


def _url() -> str:
    return config.attributes.get("database_url") or get_settings().database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, include_object=_include_object)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    engine = create_async_engine(_url())
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
