"""Structured logs: every govmeter process writes one JSON object per line (time, level, logger, message,
request_id when there is one, and any ``extra`` fields), Faust's and uvicorn's records included.

The request id lives in a context variable: the HTTP middleware (services/common/observability.py) sets it for
the request's task, so every record logged while serving it carries it. Tokens never reach a record: no code logs
headers or whole payloads, and as a second line of defence the formatter masks anything shaped like a bearer
token or a JWT in the message and the extra fields."""

from __future__ import annotations

import logging
import logging.config
import re
import sys
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

request_id: ContextVar[str | None] = ContextVar("govmeter_request_id", default=None)

# A JWT (three base64url parts, the first two starting with '{"' encoded) or whatever follows "Bearer".
_SECRETS = re.compile(r"eyJ[\w-]*\.eyJ[\w-]*\.[\w-]*|(?i:bearer)\s+\S+")
_MASK = "[redacted]"


def redact(text: str) -> str:
    return _SECRETS.sub(_MASK, text) if ("eyJ" in text or "earer" in text) else text


class RequestIdFilter(logging.Filter):
    """Adds the current request id (None outside a request) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


class GovmeterJsonFormatter(JsonFormatter):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", False)
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s", *args, **kwargs)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        # ISO 8601 in UTC with milliseconds: what log shippers parse without configuration.
        from datetime import UTC, datetime

        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")

    def process_log_record(self, log_data: dict) -> dict:
        if log_data.get("request_id") is None:
            log_data.pop("request_id", None)  # outside a request: no key rather than a null on every line
        for key, value in log_data.items():
            if isinstance(value, str):
                log_data[key] = redact(value)
        return log_data


def logging_config(level: str | int = "INFO", stream=None) -> dict:
    """A ``logging.config.dictConfig`` mapping: the root logger writes JSON lines to ``stream`` (stderr: stdout
    stays for what a command prints, such as ``govmeter token`` or ``govmeter replay --json``)."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "filters": ["request_id"]}
    handler["stream"] = stream if stream is not None else "ext://sys.stderr"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"json": {"()": GovmeterJsonFormatter}},
        "handlers": {"default": handler},
        "root": {"level": level, "handlers": ["default"]},
        # uvicorn's own loggers propagate to the root instead of keeping their plain-text handlers; its access
        # log is off (the HTTP middleware logs each request with its route and request id instead).
        "loggers": {**{name: {"handlers": [], "propagate": True}
                       for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
                    # a line per outgoing request (the demo load, the console's proxy) or per migration plugin
                    # drowns what matters; their warnings still show
                    **{name: {"level": "WARNING"} for name in ("httpx", "httpcore", "alembic")}},
    }


def configure_logging(level: str | int = "INFO", stream=None) -> None:
    logging.config.dictConfig(logging_config(level, stream or sys.stderr))
