"""Least privilege in PostgreSQL: an owner role runs the migrations and owns every object; the services (APIs,
worker, CLI commands) connect as an app role that holds only the grants below.

Closed periods, final bills (the ``bills`` table holds final bills only: drafts are computed when read),
adjustments, usage baselines and the ledger get SELECT and INSERT, nothing else, so UPDATE, DELETE and TRUNCATE
are refused by the grants before the append-only triggers of migration 0002 are reached; the triggers still hold
for the owner. Dropping or disabling a trigger needs ownership, which the app role never has. The event store and
the dead letters are append-only too. Where the services update a few columns of a row (an upsert of a budget,
an alert marked published), only those columns are granted.

``govmeter migrate`` applies this after every upgrade; a table that has no entry here stops it, so a new table
gets a decision rather than a default."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import make_url

APPEND_ONLY = "SELECT, INSERT"
PROJECTION = "SELECT, INSERT, UPDATE, DELETE"  # derived state, re-derived in place (re-attribution, re-pricing)

APP_GRANTS: dict[str, str | None] = {
    "events": APPEND_ONLY,
    "event_keys": APPEND_ONLY,  # written with each event (migration 0021)
    "dead_letters": APPEND_ONLY,
    "event_key_tiers": "SELECT",  # moved by the owner (govmeter event-keys), read by every batch
    "departments": "SELECT, INSERT, UPDATE (parent_id)",  # re-parenting (0008) moves a department, nothing else
    "rate_cards": APPEND_ONLY,  # a new price is a new card
    # a proposal is decided once (approved or rejected); a trigger refuses any change after that
    "rate_card_proposals": "SELECT, INSERT, UPDATE (status, decided_by, decided_role, decided_at, reason, "
                           "rate_card_id)",
    "projection_state": "SELECT, UPDATE (ownership_version, rate_card_version)",
    "resource_intervals": PROJECTION,
    "usage_hourly": PROJECTION,
    "usage_daily": PROJECTION,
    "usage_department_daily": PROJECTION,
    "usage_monthly": PROJECTION,
    "usage_department_totals_daily": PROJECTION,
    # a counter per department and month, bumped with every write to usage_daily (migration 0017)
    "usage_versions": "SELECT, INSERT, UPDATE (version)",
    "utilization_hourly": "SELECT, INSERT, UPDATE",
    "source_watermarks": "SELECT, INSERT, UPDATE (complete_up_to, last_seen_at, events)",
    "spend_warnings": "SELECT, INSERT, UPDATE (published_at)",
    "budgets": "SELECT, INSERT, UPDATE (amount, updated_by, updated_at)",
    "budget_alerts": "SELECT, INSERT, UPDATE (published_at)",
    # closed periods, final bills, adjustments and the ledger (and the usage fingerprints a close recorded)
    "billing_periods": APPEND_ONLY,
    "bills": APPEND_ONLY,
    "adjustments": APPEND_ONLY,
    "usage_baselines": APPEND_ONLY,
    "ledger_entries": APPEND_ONLY,
    # webhooks: a subscription is created and deleted, never edited (its deliveries go with it, by the
    # foreign key's cascade, which runs with the owner's rights); a delivery's body and target never change
    "webhook_subscriptions": "SELECT, INSERT, DELETE",
    "webhook_deliveries": "SELECT, INSERT, UPDATE (attempts, next_attempt_at, delivered_at, failed_at, last_status, "
                          "last_error)",
    # disputes: opened once, answered once (only the answer's columns; migration 0008's trigger holds the rest)
    "disputes": "SELECT, INSERT, UPDATE (status, answered_by, answered_at, reply, credit, credit_period, "
                "adjustment_id)",
    # resource applications: the state and clocks move forward in place; every step is appended, never changed
    "applications": "SELECT, INSERT, UPDATE (state, decided_at, fulfilment_due_at, fulfilment_calendar, "
                    "fulfilled_at, resource_id)",
    "application_steps": APPEND_ONLY,
    # trial phases: recorded at fulfilment; going live moves only the end, once (migration 0012's trigger)
    "resource_trials": "SELECT, INSERT, UPDATE (ends_at, went_live_by, went_live_at)",
    "alembic_version": None,
}
# Owner's functions the services call (SECURITY DEFINER): creating a month's partition of usage_hourly or of the
# event store needs the table's owner (migrations 0016, 0021), and the worker and the billing API keep the next
# months' partitions made.
APP_FUNCTIONS = ("govmeter_usage_hourly_month(date)", "govmeter_events_month(date)")


@dataclass(frozen=True)
class Login:
    """A role named by a database URL, and the database it names."""

    role: str
    password: str | None
    database: str

    @classmethod
    def of(cls, url: str) -> Login:
        parsed = make_url(url)
        if not parsed.username or not parsed.database:
            raise ValueError("a database URL must name its user and its database")
        return cls(parsed.username, parsed.password, parsed.database)


async def _run(conn, template: str, *values: str) -> None:
    """A utility statement with identifiers (%I) and literals (%L) quoted by PostgreSQL's own format()."""
    arguments = ", ".join(f"${i + 1}::text" for i in range(len(values)))
    await conn.execute(await conn.fetchval(f"SELECT format('{template}', {arguments})", *values))


async def ensure_login_role(conn, login: Login) -> bool:
    """Create the role (LOGIN, nothing more) if it is missing; True if created. ``conn`` may create roles."""
    import asyncpg

    if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", login.role):
        return False
    try:
        await _run(conn, "CREATE ROLE %I LOGIN PASSWORD %L", login.role, login.password or "")
    except asyncpg.DuplicateObjectError:  # another migrate created it meanwhile
        return False
    return True


async def adopt_database(conn, owner: str) -> None:
    """Make ``owner`` the owner of the connected database and of what lives in its public schema (a database
    migrated before the roles existed belongs to whoever ran the migrations). ``conn`` is a superuser's."""
    await _run(conn, "ALTER DATABASE %I OWNER TO %I", await conn.fetchval("SELECT current_database()"), owner)
    schema_owner = await conn.fetchval("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'public'")
    if schema_owner not in (owner, "pg_database_owner"):  # PostgreSQL < 15 gives public to the bootstrap superuser
        await _run(conn, "ALTER SCHEMA public OWNER TO %I", owner)
    relations = await conn.fetch(
        """
        SELECT c.oid::regclass::text AS name, c.relkind FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v', 'm', 'S', 'p')
          AND c.relowner <> $1::regrole
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                          AND d.deptype IN ('a', 'i'))  -- identity and owned sequences follow their table
        """,
        owner,
    )
    for r in relations:
        kind = {"S": "SEQUENCE", "v": "VIEW", "m": "MATERIALIZED VIEW"}.get(r["relkind"], "TABLE")
        await conn.execute(f'ALTER {kind} {r["name"]} OWNER TO "{owner}"')
    for signature in await conn.fetch(
        "SELECT p.oid::regprocedure::text AS f FROM pg_proc p "
        "WHERE p.pronamespace = 'public'::regnamespace AND p.proowner <> $1::regrole", owner,
    ):
        await conn.execute(f'ALTER FUNCTION {signature["f"]} OWNER TO "{owner}"')


async def grant_app_role(conn, app: str) -> None:
    """Give the app role exactly ``APP_GRANTS`` on the public schema of the connected database. ``conn`` is the
    owner's, inside a transaction; idempotent."""
    database = await conn.fetchval("SELECT current_database()")
    if await conn.fetchval("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = $1", app):
        raise RuntimeError(f"the services' role {app} (DATABASE_URL) is a superuser: least privilege needs a plain role")
    if app == await conn.fetchval("SELECT current_user"):
        raise RuntimeError(f"DATABASE_URL and the migration URL use the same role ({app}): the services would own "
                           "the tables, triggers included")
    tables = {r["relname"] for r in await conn.fetch(
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p') "
        "AND NOT relispartition")}  # a partition is reached through its parent, whose grants apply
    undecided = sorted(tables - APP_GRANTS.keys())
    if undecided:
        raise RuntimeError(f"no grant decided for table(s) {', '.join(undecided)}: add them to "
                           "services.common.privileges.APP_GRANTS")
    # Nobody but the two roles connects; CREATE: `govmeter replay` builds its scratch schema (replay_<id>) and
    # drops it, owning only what it made. TEMPORARY: the worker stages batches in session tables.
    await _run(conn, "REVOKE ALL ON DATABASE %I FROM PUBLIC", database)
    await _run(conn, "GRANT CONNECT, TEMPORARY, CREATE ON DATABASE %I TO %I", database, app)
    await conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    await _run(conn, "GRANT USAGE ON SCHEMA public TO %I", app)
    await _run(conn, "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM %I", app)
    await _run(conn, "REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM %I", app)  # identity columns need none
    for table in sorted(tables):
        if APP_GRANTS[table]:
            await _run(conn, f"GRANT {APP_GRANTS[table]} ON TABLE %I TO %I", table, app)
    for function in APP_FUNCTIONS:
        if await conn.fetchval("SELECT to_regprocedure($1) IS NOT NULL", function):
            await _run(conn, f"GRANT EXECUTE ON FUNCTION {function} TO %I", app)
