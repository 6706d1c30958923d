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


DEPLOY = COMPOSE.parent / "deploy"


def test_prometheus_scrapes_every_govmeter_process_at_the_port_it_serves_metrics_on():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in scrape["scrape_configs"] for group in job["static_configs"] for t in group["targets"]}
    served = set()
    for name, service in services.items():
        command = service.get("command") or []
        if command[:1] == ["api"]:
            served.add(f"{name}:{command[command.index('--port') + 1]}")
        elif command[:1] == ["worker"]:
            served.add(f"{name}:{service['expose'][0]}")  # GOVMETER_WORKER_METRICS_PORT's default
    assert len(served) == 5 and targets == served  # three APIs, the console, the worker
    from services.common.config import Settings

    assert str(Settings().worker_metrics_port) == services["metering-worker"]["expose"][0]


def test_prometheus_and_grafana_are_published_on_loopback_and_grafana_has_no_default_password():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["ports"] and all(p.startswith("127.0.0.1:") for p in services[name]["ports"])
    assert REQUIRED.match(services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"])
    assert services["grafana"]["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    for volume in services["grafana"]["volumes"] + services["prometheus"]["volumes"]:
        source = volume.split(":")[0]
        assert not source.startswith("./") or (COMPOSE.parent / source).exists(), volume


def test_the_dashboard_queries_only_metrics_that_govmeter_exports():
    import json

    from prometheus_client import REGISTRY

    import services.common.metrics  # noqa: F401  (registers govmeter's metrics)

    exported = {s.name for family in REGISTRY.collect() for s in family.samples} | {
        f"{m.name}{suffix}" for m in REGISTRY.collect() for suffix in ("", "_total", "_bucket", "_sum", "_count")}
    dashboard = json.loads((DEPLOY / "grafana" / "govmeter.json").read_text())
    used = {name for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"\bgovmeter_[a-z_]+", target["expr"])}
    assert used and used <= exported, used - exported
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {"govmeter-prometheus"}
    provisioned = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert provisioned["datasources"][0]["uid"] == "govmeter-prometheus"
