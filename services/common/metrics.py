"""Prometheus metrics of every govmeter process (prometheus-client's default registry, one per process).

Labels are bounded so that no client can grow a process's series without limit: HTTP routes are the route
templates (``/v1/bills/{bill_id}``, never the path; ``unmatched`` for a 404 of no route), reasons are the first
error's field, and event sources are the first ``GOVMETER_METRICS_MAX_SOURCES`` (50) distinct ones a process sees,
every later one counted as ``other`` (a provider token can only write its own sources; admin can write any).
No label carries department data: /metrics needs no token."""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily

from services.common.config import get_settings

OTHER = "other"
UNKNOWN = "unknown"
_LABEL_CHARS = 128

SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
EVENTS_BUCKETS = (1, 10, 100, 500, 1_000, 2_500, 5_000, 10_000, 20_000, 50_000)

# --- HTTP (the three APIs) ---------------------------------------------------------------------------------------
HTTP_REQUESTS = Counter("govmeter_http_requests", "HTTP requests answered, by route template and status",
                        ["service", "method", "route", "status"])
HTTP_SECONDS = Histogram("govmeter_http_request_duration_seconds", "Time to answer an HTTP request",
                         ["service", "method", "route"], buckets=SECONDS_BUCKETS)

# --- ingest (metering API) ---------------------------------------------------------------------------------------
EVENTS_ACCEPTED = Counter("govmeter_events_accepted", "Events the metering API put on the broker (202)", ["source"])
EVENTS_REJECTED = Counter("govmeter_events_rejected", "Events the metering API refused, by the first error's field",
                          ["source", "reason"])

# --- the metering worker -----------------------------------------------------------------------------------------
WORKER_EVENTS = Counter("govmeter_worker_events", "Valid events the worker applied, by what they were",
                        ["outcome"])  # new_usage, new_lifecycle, new_other, duplicate
DEAD_LETTERS = Counter("govmeter_dead_letters", "Dead letters filed by the worker", ["reason", "source"])
BATCH_RECORDS = Histogram("govmeter_worker_batch_records", "Kafka records per worker batch",
                          buckets=(1, 2, 5, 10, 20, 50, 100, 200))
BATCH_EVENTS = Histogram("govmeter_worker_batch_events", "Events per worker batch (valid and dead letters)",
                         buckets=EVENTS_BUCKETS)
BATCH_SECONDS = Histogram("govmeter_worker_batch_seconds", "Time to commit a batch (its transaction, with retries "
                          "and bisection)", buckets=SECONDS_BUCKETS)
CONSUMER_LAG = Gauge("govmeter_worker_consumer_lag", "Records on the partition after the worker's committed offset "
                     "(highwater - committed)", ["topic", "partition"])

# --- billing and reports -----------------------------------------------------------------------------------------
PERIOD_CLOSES = Counter("govmeter_period_closes", "Billing periods closed", ["trigger"])  # auto, manual
PERIOD_CLOSE_SECONDS = Histogram("govmeter_period_close_seconds", "Time to close a billing period",
                                 buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600))
BUDGET_ALERTS = Counter("govmeter_budget_alerts_published", "Budget alerts published on the alerts topic", ["kind"])
SPEND_WARNINGS = Counter("govmeter_spend_warnings_published", "Spend anomaly warnings published on the warnings topic")


class BoundedLabel:
    """The first ``limit`` distinct values pass as themselves (cut to 128 characters); later ones are ``other``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str | None) -> str:
        if not value:
            return UNKNOWN
        value = value[:_LABEL_CHARS]
        if value in self._seen:
            return value
        if len(self._seen) < self.limit:
            self._seen.add(value)
            return value
        return OTHER


source_label = BoundedLabel(get_settings().metrics_max_sources)
reason_label = BoundedLabel(100)


def error_field(error: str) -> str:
    """``data.quantity`` of ``data.quantity: must be ...``: the reason label of a rejected event."""
    return error.partition(":")[0].strip()


def count_ingest(raws: list, rejected: Iterable, accepted: bool) -> None:
    """Count one POST's events: rejected ones by source and reason; the rest as accepted when ``accepted``
    (the broker acknowledged them). Sources are read from the raw events, one tally per request."""
    from schemas.events import event_identity

    refused: dict[int, list[str]] = {r.index: r.errors for r in rejected}
    taken: Tally = Tally()
    for index, raw in enumerate(raws):
        source = source_label(event_identity(raw)[0])
        errors = refused.get(index)
        if errors is None:
            taken[source] += 1
        else:
            EVENTS_REJECTED.labels(source, reason_label(error_field(errors[0]) if errors else UNKNOWN)).inc()
    if accepted:
        for source, n in taken.items():
            EVENTS_ACCEPTED.labels(source).inc(n)


def count_batch(records: int, outcome) -> None:
    """One worker batch's counters (per batch, not per event: the worker's hot path)."""
    BATCH_RECORDS.observe(records)
    BATCH_EVENTS.observe(outcome.events + len(outcome.dead_letters))
    for name, value in (("new_usage", outcome.new_usage), ("new_lifecycle", outcome.new_lifecycle),
                        ("new_other", outcome.new_other), ("duplicate", outcome.duplicates)):
        if value:
            WORKER_EVENTS.labels(name).inc(value)
    if outcome.dead_letters:
        for (reason, source), n in Tally((d.reason, d.source) for d in outcome.dead_letters).items():
            DEAD_LETTERS.labels(reason_label(reason), source_label(source)).inc(n)


class Timer:
    """``with Timer() as t: ...``; then ``t.seconds``."""

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._start


class ResponseCacheCollector:
    """Hits and misses of the response caches, read from their own counters at scrape time (nothing is added
    to the request path)."""

    def __init__(self) -> None:
        self.caches: dict[str, object] = {}

    def collect(self):
        family = CounterMetricFamily("govmeter_response_cache_requests", "Response cache lookups by result",
                                     labels=["cache", "result"])
        for name, cache in self.caches.items():
            family.add_metric([name, "hit"], cache.hits)
            family.add_metric([name, "miss"], cache.misses)
        yield family


response_caches = ResponseCacheCollector()
REGISTRY.register(response_caches)


def observe_cache(name: str, cache) -> None:
    """Expose ``cache``'s hits and misses as govmeter_response_cache_requests_total{cache=name}."""
    response_caches.caches[name] = cache


def start_metrics_server(port: int, host: str) -> None:
    """The worker's /metrics (it has no web server of its own): prometheus-client's HTTP server in a thread.
    A port already taken (a second worker on the host with the same setting) costs the metrics, not the worker."""
    import logging

    from prometheus_client import start_http_server

    if not port:
        return
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        logging.getLogger("govmeter.metrics").error(
            "no /metrics: cannot listen on %s:%d (%s); give each worker its own GOVMETER_WORKER_METRICS_PORT",
            host, port, exc)
