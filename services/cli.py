"""The ``govmeter`` command: run the whole system (``dev``) or any one piece of it. The composition root: the one
module that imports every service (each registers its own subcommands)."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BROKER_SCRIPT = REPO / "scripts" / "kafka-broker.sh"
POSTGRES_SCRIPT = REPO / "scripts" / "postgres.sh"
LOCAL_SUPERUSER = "postgresql+asyncpg://postgres:postgres@127.0.0.1:5432/postgres"  # what postgres.sh sets up
APIS = {"metering": "services.metering.api:app", "billing": "services.billing.api:app", "query": "services.query.api:app"}
CONSOLE = "services.console.app:app"  # the web console: static pages and a same-origin proxy to the APIs


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def cmd_broker(args) -> int:
    return subprocess.call(["bash", str(BROKER_SCRIPT), args.action])


def cmd_migrate(args) -> int:
    from services.common.config import get_settings
    from services.common.migrate import migrate_from_settings

    import asyncpg

    settings = get_settings()
    try:
        migrate_from_settings(settings)
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
        raise SystemExit(f"{exc}: create the roles of GOVMETER_MIGRATION_DATABASE_URL and DATABASE_URL, or set "
                         "GOVMETER_BOOTSTRAP_DATABASE_URL to a superuser's URL and `govmeter migrate` creates them")
    print("database migrated to the newest schema; the services' role has its grants")
    return 0


def cmd_api(args) -> int:
    import uvicorn

    from services.common.auth import MissingSecret, jwt_secret
    from services.common.config import get_settings
    from services.common.runtime import tune_garbage_collector

    settings = get_settings()
    try:  # refuse before anything starts, in one line rather than a failed lifespan's traceback
        jwt_secret(settings)
    except MissingSecret as exc:
        print(f"govmeter api {args.service}: {exc}", file=sys.stderr)
        return 2
    port = args.port or getattr(settings, f"{args.service}_port")
    module, _, attribute = (CONSOLE if args.service == "console" else APIS[args.service]).partition(":")
    app = getattr(importlib.import_module(module), attribute)
    tune_garbage_collector()  # after the imports, so that what they built is frozen
    # log_config=None: uvicorn keeps the JSON logging main() set up; the request log is the middleware's.
    uvicorn.run(app, host=settings.host, port=port, log_level="warning", access_log=False, log_config=None)
    return 0


def cmd_worker(args) -> int:
    from services.metering.worker import main

    main()
    return 0


def cmd_drill(drill_args: list[str]) -> int:
    sys.path.insert(0, str(REPO))
    from bench.drills import main as drill

    return drill(drill_args)


def cmd_token(args) -> int:
    from services.common.auth import MissingSecret, issue_token

    if args.source and args.role != "provider":
        raise SystemExit("--source is for provider tokens (admin may write any source)")
    try:
        print(issue_token(args.role, args.department, ttl_seconds=args.ttl, audience=args.audience,
                          sources=args.source))
    except (MissingSecret, ValueError) as exc:
        print(f"govmeter token: {exc}", file=sys.stderr)
        return 2
    return 0


def _ensure_postgres(database_url: str) -> bool:
    """Start the local development server if the database is on loopback and nothing answers; True if the
    database is the local one."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    host, port = url.host or "127.0.0.1", url.port or 5432
    local = host in ("127.0.0.1", "localhost") and port == 5432
    if not _port_open(host, port) and local:
        print("PostgreSQL is not answering; starting it (installing from Debian's packages if needed)")
        subprocess.check_call(["bash", str(POSTGRES_SCRIPT)])
    return local


def cmd_dev(args) -> int:
    from services.common.auth import issue_token
    from services.common.config import get_settings
    from services.common.migrate import migrate

    own_secret = bool(os.environ.get("GOVMETER_JWT_SECRET"))
    if not own_secret:  # a secret of this run only, inherited by the children; its tokens are printed below
        os.environ["GOVMETER_JWT_SECRET"] = secrets.token_urlsafe(48)
        get_settings.cache_clear()
    settings = get_settings()
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        subprocess.check_call(["bash", str(BROKER_SCRIPT), "start"])
    local = _ensure_postgres(settings.database_url)
    # On the development server the roles are made with its superuser (scripts/postgres.sh's credentials).
    migrate(settings.migration_database_url, settings.database_url,
            settings.bootstrap_database_url or (LOCAL_SUPERUSER if local else None))
    children: list[subprocess.Popen] = []
    me = [sys.executable, "-m", "services.cli"]
    try:
        logs = REPO / ".cache" / "dev"
        logs.mkdir(parents=True, exist_ok=True)
        for service in [*APIS, "console"]:  # JSON lines, one per request: to a file, not over the demo's output
            children.append(subprocess.Popen([*me, "api", service], cwd=REPO, stderr=subprocess.STDOUT,
                                             stdout=open(logs / f"{service}-api.log", "ab")))
        worker_log = logs / "metering-worker.log"
        children.append(subprocess.Popen([*me, "worker", "metering"], cwd=REPO, stdout=open(worker_log, "ab"),
                                         stderr=subprocess.STDOUT))
        urls = {s: f"http://{settings.host}:{getattr(settings, f'{s}_port')}" for s in APIS}
        console = f"http://{settings.host}:{settings.console_port}"
        _wait_healthy([*urls.values(), console], children)
        print("\ngovmeter is running (Ctrl-C stops everything):")
        print(f"  web console    {console}/   (sign in: paste one of the tokens below)")
        for service, url in urls.items():
            print(f"  {service:9s} API  {url}   docs: {url}/docs")
        print(f"  metering worker log: {worker_log}")
        print(f"  logs (JSON lines): {logs}/{{metering,billing,query}}-api.log, {worker_log.name}")
        print(f"  metrics: {', '.join(u + '/metrics' for u in urls.values())}, "
              f"http://{settings.host}:{settings.worker_metrics_port}/metrics (worker)")
        print("\nTokens (valid 24 h, for all three APIs" + (")" if own_secret else
              "; signed with a secret made for this run: set GOVMETER_JWT_SECRET to keep one and mint more with "
              "`govmeter token`)") + ":")
        from services.demo.load import SOURCE as DEMO_SOURCE

        for role in ("admin", "finance", "egov"):
            print(f"  {role:10s} {issue_token(role)}")
        print(f"  provider   {issue_token('provider', sources=[DEMO_SOURCE])}   (source {DEMO_SOURCE})")
        if args.demo:
            from services.demo.load import DEMO_DEPARTMENTS, run_demo

            first = DEMO_DEPARTMENTS[0][0]
            print(f"  department ({first}) {issue_token('department', first)}")
            asyncio.run(run_demo(urls, rate=args.rate, duration=args.duration))
            if args.duration:
                return 0
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        print("a govmeter process exited; stopping the rest", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()


def _wait_healthy(urls, children, timeout: float = 90.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    pending = list(urls)
    while pending:
        if time.monotonic() > deadline:
            raise SystemExit(f"services did not become healthy: {pending}")
        if any(child.poll() is not None for child in children):
            raise SystemExit("a govmeter process exited during start-up")
        try:
            if httpx.get(pending[0] + "/healthz", timeout=5).status_code == 200:
                pending.pop(0)
                continue
        except httpx.HTTPError:
            pass
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="govmeter", description="Metering and billing for the government cloud")
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="run broker, database, the three APIs and the worker")
    dev.add_argument("--demo", action="store_true", help="also stream a realistic demo load")
    dev.add_argument("--rate", type=float, default=200.0, help="demo events per second")
    dev.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: run until Ctrl-C)")
    dev.set_defaults(func=cmd_dev)

    broker = sub.add_parser("broker", help="the local Apache Kafka broker (KRaft, loopback)")
    broker.add_argument("action", nargs="?", default="start", choices=["start", "stop", "status", "fetch", "logs"])
    broker.set_defaults(func=cmd_broker)

    sub.add_parser("migrate", help="create the database if needed and migrate it").set_defaults(func=cmd_migrate)

    api = sub.add_parser("api", help="run one HTTP API")
    api.add_argument("service", choices=[*APIS, "console"])
    api.add_argument("--port", type=int, default=None)
    api.set_defaults(func=cmd_api)

    worker = sub.add_parser("worker", help="run a stream worker")
    worker.add_argument("service", choices=["metering"])
    worker.set_defaults(func=cmd_worker)

    # The drill parses its own options (bench/drills.py); listed here for --help.
    sub.add_parser("drill", help="fault drills on a private PostgreSQL and broker (bench/drills.py)")

    token = sub.add_parser("token", help="print a signed JWT for a role")
    token.add_argument("--role", required=True, choices=["provider", "finance", "department", "admin", "egov"])
    token.add_argument("--department", default=None)
    token.add_argument("--source", action="append", default=[],
                       help="a CloudEvents source the provider token may write (repeat for more)")
    token.add_argument("--ttl", type=int, default=86_400,
                       help="seconds the token is valid (at most GOVMETER_JWT_MAX_LIFETIME_SECONDS, default 86400)")
    token.add_argument("--audience", action="append", choices=["metering", "billing", "query"],
                       help="an API the token is for (repeat for several; default: all three)")
    token.set_defaults(func=cmd_token)

    from services.billing.cli import register as register_billing
    from services.metering.key_tiers_cli import register as register_event_keys
    from services.projection.partitions_cli import register as register_partitions
    from services.query.cli import register as register_query
    from services.replay.cli import register as register_replay

    register_billing(sub)
    register_replay(sub)
    register_query(sub)
    register_partitions(sub)
    register_event_keys(sub)

    argv = sys.argv[1:] if argv is None else argv
    from services.common.logs import configure_logging

    configure_logging()  # JSON lines on stderr (the worker's Faust sets the same up again)
    if argv[:1] == ["drill"]:
        return cmd_drill(argv[1:])
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
