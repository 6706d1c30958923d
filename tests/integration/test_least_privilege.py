"""The services connect as a role that cannot change what must never change: UPDATE, DELETE and TRUNCATE on
closed periods, final bills, adjustments, usage baselines, the ledger, the event store and rate cards are refused by the grants
(before the append-only triggers are reached), and the triggers themselves cannot be dropped or bypassed."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from services.common.db import asyncpg_dsn
from services.common.migrate import migrate_from_settings
from services.common.privileges import grant_app_role
from tests.conftest import APP_ROLE, OWNER_ROLE

PROTECTED = ("billing_periods", "bills", "adjustments", "usage_baselines", "ledger_entries", "events", "rate_cards")


@pytest.fixture
async def as_app(database, settings):
    conn = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    yield conn
    await conn.close()


async def test_services_connect_as_a_plain_role_that_owns_nothing(as_app):
    role = await as_app.fetchrow("SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles "
                                 "WHERE rolname = current_user")
    assert role["rolname"] == APP_ROLE
    assert not (role["rolsuper"] or role["rolcreaterole"] or role["rolcreatedb"] or role["rolbypassrls"])
    owners = {r["relowner"] for r in await as_app.fetch(
        "SELECT relowner::regrole::text AS relowner FROM pg_class WHERE relnamespace = 'public'::regnamespace")}
    assert owners == {OWNER_ROLE}


@pytest.mark.parametrize("table", PROTECTED)
@pytest.mark.parametrize("statement", ["UPDATE {t} SET created_at = created_at", "DELETE FROM {t}", "TRUNCATE {t}"])
async def test_app_role_may_not_change_append_only_tables(as_app, table, statement):
    column = {"billing_periods": "closed_at", "bills": "closed_at", "events": "received_at",
              "rate_cards": "created_at"}.get(table, "period")
    sql = statement.format(t=table).replace("created_at", column)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match=f"permission denied for table {table}"):
        await as_app.execute(sql)


async def test_app_role_may_only_mark_budget_alerts_published(as_app):
    await as_app.execute("UPDATE budget_alerts SET published_at = now() WHERE false")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_app.execute("UPDATE budget_alerts SET spend = 0 WHERE false")


@pytest.mark.parametrize("statement", [
    "DROP TRIGGER bills_append_only ON bills",
    "ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_append_only",
    "DROP FUNCTION govmeter_append_only() CASCADE",
    "ALTER TABLE adjustments OWNER TO CURRENT_USER",
    "SET session_replication_role = replica",
])
async def test_app_role_may_not_remove_or_bypass_the_append_only_triggers(as_app, statement):
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_app.execute(statement)
    triggers = await as_app.fetchval(
        "SELECT count(*) FROM pg_trigger WHERE tgname LIKE '%append_only' AND tgenabled = 'O'")
    assert triggers == 6  # the five tables of migration 0002, and rate_cards (0019)


async def test_migrate_again_keeps_the_grants_and_refuses_a_table_without_a_decision(settings, as_app):
    await asyncio.to_thread(migrate_from_settings, settings)  # idempotent: roles exist, schema current, grants re-applied
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_app.execute("DELETE FROM ledger_entries")
    owner = await asyncpg.connect(asyncpg_dsn(settings.migration_database_url))
    try:
        async with owner.transaction():
            await owner.execute("CREATE TABLE undecided (id int)")
            with pytest.raises(RuntimeError, match="no grant decided for table.* undecided"):
                await grant_app_role(owner, APP_ROLE)
            raise _Rollback
    except _Rollback:
        pass
    finally:
        await owner.close()


class _Rollback(Exception):
    pass


async def test_app_role_may_not_redirect_or_rewrite_a_webhook_delivery(as_app):
    """A subscription is never edited (its URL, scope and secret stay as created) and a delivery's body and target
    never change; only its retry state does."""
    await as_app.execute("UPDATE webhook_deliveries SET attempts = attempts, last_error = NULL WHERE false")
    for statement in ("UPDATE webhook_deliveries SET body = body WHERE false",
                      "UPDATE webhook_deliveries SET subscription_id = subscription_id WHERE false",
                      "UPDATE webhook_subscriptions SET url = url WHERE false",
                      "UPDATE webhook_subscriptions SET department_id = NULL WHERE false"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await as_app.execute(statement)


@pytest.mark.parametrize("scope", [None, "dep-b"])
async def test_the_database_refuses_a_department_subscription_scoped_beyond_its_department(as_app, scope):
    with pytest.raises(asyncpg.CheckViolationError, match="department_scope"):
        await as_app.execute(
            "INSERT INTO webhook_subscriptions (id, owner_role, owner_subject, owner_department, url, events, "
            "department_id, secret) VALUES (gen_random_uuid(), 'department', 'dep-a', 'dep-a', 'http://127.0.0.1/', "
            "'{budget.alert}', $1, 's')", scope)
