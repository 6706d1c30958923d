"""docker-compose.yml, the production shape, carries no default database password: each one must be set."""

import re
from pathlib import Path

import yaml
from sqlalchemy.engine import make_url

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
REQUIRED = re.compile(r"^\$\{[A-Z_]+:\?[^}]*\}$")  # ${NAME:?message}: compose refuses to start without it


def environments(node):
    if isinstance(node, dict):
        if isinstance(node.get("environment"), dict):
            yield node["environment"]
        for value in node.values():
            yield from environments(value)


def test_compose_file_has_no_default_database_password():
    text = COMPOSE.read_text()
    assert not re.search(r"PASSWORD:-", text), "a password with a default value"
    urls = passwords = 0
    for environment in environments(yaml.safe_load(text)):
        for name, value in environment.items():
            if "PASSWORD" in name:
                passwords += 1
                assert REQUIRED.match(str(value)), f"{name} must be required from the environment"
            if name.endswith("DATABASE_URL"):
                urls += 1
                assert REQUIRED.match(make_url(str(value)).password or ""), f"{name} carries a password"
    assert passwords >= 1 and urls >= 3


def test_services_connect_as_the_app_role_and_only_migrate_knows_the_others():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    for name, service in services.items():
        environment = service.get("environment") or {}
        if "DATABASE_URL" in environment:
            assert make_url(environment["DATABASE_URL"]).username == "govmeter_app"
        if name != "migrate":
            assert not {"GOVMETER_MIGRATION_DATABASE_URL", "GOVMETER_BOOTSTRAP_DATABASE_URL"} & environment.keys()
