import asyncio
import uuid

from alembic import command

from services.common.db import drop_database
from services.common.migrate import alembic_config, migrate


def test_migrations_create_exactly_the_schema_of_the_models():
    url = f"postgresql+asyncpg://postgres:postgres@127.0.0.1:5432/govmeter_migrations_{uuid.uuid4().hex[:8]}"
    try:
        migrate(url)
        command.check(alembic_config(url))  # raises if the models and the migrated schema differ
        command.downgrade(alembic_config(url), "base")
        command.upgrade(alembic_config(url), "head")
    finally:
        asyncio.run(drop_database(url))
