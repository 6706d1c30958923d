"""Configuration from the environment, in one typed object (pydantic-settings)."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _topic(suffix: str) -> property:
    """A settings property: the topic ``<topic_prefix>.<suffix>``."""
    return property(lambda settings: f"{settings.topic_prefix}.{suffix}", doc=f"<topic_prefix>.{suffix}")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    # The services connect as a role with only the grants they need (services/common/privileges.py); the
    # migrations run as the owner of every object; a superuser, when given, only makes the two roles and the
    # database (`govmeter migrate`). The defaults are the loopback development server's (scripts/postgres.sh).
    database_url: str = Field(
        "postgresql+asyncpg://govmeter_app:govmeter_app@127.0.0.1:5432/govmeter",
        validation_alias=AliasChoices("DATABASE_URL", "GOVMETER_DATABASE_URL"),
    )
    migration_database_url: str = Field(
        "postgresql+asyncpg://govmeter_owner:govmeter_owner@127.0.0.1:5432/govmeter",
        validation_alias="GOVMETER_MIGRATION_DATABASE_URL",
    )
    bootstrap_database_url: str | None = Field(None, validation_alias="GOVMETER_BOOTSTRAP_DATABASE_URL")
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:19092", validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "GOVMETER_KAFKA")
    )
    # No default: every API refuses to start without a secret of at least 32 bytes (services.common.auth).
    jwt_secret: str | None = Field(None, validation_alias="GOVMETER_JWT_SECRET")
    # A token is refused when exp - iat exceeds this (so a leaked token is not good for ever).
    jwt_max_lifetime_seconds: int = Field(86_400, ge=60, validation_alias="GOVMETER_JWT_MAX_LIFETIME_SECONDS")
    # Request bodies larger than this are refused with 413 by every API (services.common.guard).
    max_body_bytes: int = Field(8 * 2**20, ge=1024, validation_alias="GOVMETER_MAX_BODY_BYTES")
    # POST /v1/events takes at most this many events in one request (413 above).
    max_events_per_request: int = Field(10_000, ge=1, validation_alias="GOVMETER_MAX_EVENTS_PER_REQUEST")
    topic_prefix: str = Field("govmeter", validation_alias="GOVMETER_TOPIC_PREFIX")
    event_partitions: int = Field(4, validation_alias="GOVMETER_EVENT_PARTITIONS")
    host: str = Field("127.0.0.1", validation_alias="GOVMETER_HOST")
    metering_port: int = Field(8001, validation_alias="GOVMETER_METERING_PORT")
    billing_port: int = Field(8002, validation_alias="GOVMETER_BILLING_PORT")
    query_port: int = Field(8003, validation_alias="GOVMETER_QUERY_PORT")
    # The web console (services/console): its port, and the three APIs it proxies to (default: host and ports above).
    console_port: int = Field(8000, validation_alias="GOVMETER_CONSOLE_PORT")
    console_upstreams: str | None = Field(None, validation_alias="GOVMETER_CONSOLE_UPSTREAMS")
    # The worker takes up to this many Kafka records (each may carry a batch of events) per transaction.
    worker_batch_records: int = Field(20, validation_alias="GOVMETER_WORKER_BATCH_RECORDS")
    worker_batch_seconds: float = Field(0.2, validation_alias="GOVMETER_WORKER_BATCH_SECONDS")
    # Kafka static group membership (services/metering/worker.py): a restarted worker takes its partitions back at
    # once under the same instance id. Unset, each worker process of a host takes the first free slot, host-N.
    worker_instance_id: str | None = Field(None, validation_alias="GOVMETER_WORKER_INSTANCE_ID")
    # A crashed worker that is not restarted keeps its partitions this long (the broker's minimum is 6 s).
    worker_session_timeout_seconds: float = Field(6.0, ge=6.0, validation_alias="GOVMETER_WORKER_SESSION_TIMEOUT_SECONDS")
    # The worker's Prometheus /metrics (prometheus-client's own HTTP server on GOVMETER_HOST; 0: none).
    worker_metrics_port: int = Field(9101, ge=0, le=65535, validation_alias="GOVMETER_WORKER_METRICS_PORT")
    # Sources a process labels its event metrics with by name; later ones are counted as "other".
    metrics_max_sources: int = Field(50, ge=1, validation_alias="GOVMETER_METRICS_MAX_SOURCES")
    # Batches in their transaction at once in one worker (see services/metering/worker.py).
    worker_transactions: int = Field(2, validation_alias="GOVMETER_WORKER_TRANSACTIONS")
    # The largest batch the ingest API puts in one Kafka record.
    ingest_record_events: int = Field(1000, validation_alias="GOVMETER_INGEST_RECORD_EVENTS")
    # POST /v1/events answers 503 with Retry-After when the broker has not acknowledged within this bound.
    ingest_ack_timeout_seconds: float = Field(5.0, gt=0, validation_alias="GOVMETER_INGEST_ACK_TIMEOUT_SECONDS")
    # A trial (试运行) is billed at this fraction of the normal price; stored with each trial when it starts, so
    # a change applies to trials started afterwards and never re-prices a bill (docs/workflow-applications.md).
    trial_rate_factor: Decimal = Field(Decimal(0), ge=0, le=1, decimal_places=6,
                                       validation_alias="GOVMETER_TRIAL_RATE_FACTOR")
    # Spend anomaly warnings: the query API evaluates the last completed local days this often (0: never).
    warnings_interval_seconds: float = Field(3600.0, validation_alias="GOVMETER_WARNINGS_INTERVAL_SECONDS")
    warnings_lookback_days: int = Field(2, validation_alias="GOVMETER_WARNINGS_LOOKBACK_DAYS")

    # Billing: a period closes automatically this many local days after its month ends; the billing API checks
    # for due periods, budget alerts and unpublished alerts this often (0: no background task).
    close_grace_days: int = Field(3, ge=0, validation_alias="GOVMETER_CLOSE_GRACE_DAYS")
    billing_check_seconds: float = Field(60.0, ge=0, validation_alias="GOVMETER_BILLING_CHECK_SECONDS")
    # A period closes only once every active event source has delivered usage up to its end (data-complete
    # watermarks); a source is active while its last new event was stored less than this many days ago. 0: no
    # source is active, months close on the grace alone (a history backfill, where every source was just seen).
    source_active_days: int = Field(14, ge=0, validation_alias="GOVMETER_SOURCE_ACTIVE_DAYS")
    # A month's run rate projects a budget overrun only once it covers at least this many hours of usage.
    budget_projection_min_hours: int = Field(24, ge=1, validation_alias="GOVMETER_BUDGET_PROJECTION_MIN_HOURS")
    # Response cache of the query and billing APIs' read endpoints (services/common/response_cache.py):
    # on/off, and its bounds per process (entries and bytes of response bodies).
    response_cache: bool = Field(True, validation_alias="GOVMETER_RESPONSE_CACHE")
    response_cache_entries: int = Field(1024, ge=1, validation_alias="GOVMETER_RESPONSE_CACHE_ENTRIES")
    response_cache_bytes: int = Field(64 * 2**20, ge=0, validation_alias="GOVMETER_RESPONSE_CACHE_BYTES")
    # Limits of the APIs' reads: PostgreSQL cancels an API's statement after this many seconds (0: never; periods'
    # closes, rate cards' re-rating and the warnings evaluation run without it), and /v1/usage answers at most
    # this many rows (more: 422, saying how to narrow the query).
    statement_timeout_seconds: float = Field(15.0, ge=0, validation_alias="GOVMETER_STATEMENT_TIMEOUT_SECONDS")
    usage_max_rows: int = Field(100_000, ge=1, validation_alias="GOVMETER_USAGE_MAX_ROWS")

    # A CJK font for the bills' printable PDF (Debian's fonts-wqy-microhei; a .ttf or .ttc).
    pdf_font: str = Field("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", validation_alias="GOVMETER_PDF_FONT")

    # Webhooks (services/billing/webhooks.py): the hosts a subscription URL may name (comma-separated: names,
    # *.suffix, IP addresses or CIDR blocks; loopback only by default, for development), how often the billing API
    # looks for due deliveries (0: never), and the retries: base·2^(n-1) seconds after the n-th failure, at most
    # the cap, until max attempts.
    webhook_allowed_hosts: str = Field("127.0.0.1,::1,localhost", validation_alias="GOVMETER_WEBHOOK_ALLOWED_HOSTS")
    webhook_poll_seconds: float = Field(1.0, ge=0, validation_alias="GOVMETER_WEBHOOK_POLL_SECONDS")
    webhook_retry_base_seconds: float = Field(2.0, gt=0, validation_alias="GOVMETER_WEBHOOK_RETRY_BASE_SECONDS")
    webhook_retry_max_seconds: float = Field(3600.0, gt=0, validation_alias="GOVMETER_WEBHOOK_RETRY_MAX_SECONDS")
    webhook_max_attempts: int = Field(20, ge=1, validation_alias="GOVMETER_WEBHOOK_MAX_ATTEMPTS")
    webhook_timeout_seconds: float = Field(10.0, gt=0, validation_alias="GOVMETER_WEBHOOK_TIMEOUT_SECONDS")

    # The topics are named after the prefix, so that each test run or deployment has its own.
    events_topic = _topic("events")
    dead_letter_topic = _topic("events.dlq")
    rate_card_topic = _topic("rate-cards")
    warnings_topic = _topic("warnings")
    alerts_topic = _topic("alerts")

    @property
    def webhook_hosts(self) -> list[str]:
        return [h.strip() for h in self.webhook_allowed_hosts.split(",") if h.strip()]

    @property
    def worker_group(self) -> str:
        return f"{self.topic_prefix}-metering"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
