"""What every API gets from ``instrument(app, service)``: ``GET /metrics`` (Prometheus text, no token), request
metrics by route template and status, a request id on every request (``X-Request-ID`` taken when sane, else made;
returned on the answer, set on the log records), and one JSON log line per request (method, route, status, time;
never headers, query strings or bodies)."""

from __future__ import annotations

import logging
import re
import time
import uuid

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from services.common.logs import request_id
from services.common.metrics import HTTP_REQUESTS, HTTP_SECONDS

REQUEST_ID_HEADER = "x-request-id"
KAFKA_REQUEST_ID_HEADER = "govmeter-request-id"  # the Kafka record header the metering API sets
_SANE_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")  # a client's id is echoed and logged: printable, bounded

log = logging.getLogger("govmeter.http")


def incoming_request_id(value: bytes | None) -> str:
    if value:
        text = value.decode("latin-1")
        if _SANE_ID.fullmatch(text):
            return text
    return uuid.uuid4().hex


def kafka_headers() -> list[tuple[str, bytes]]:
    """Record headers carrying the current request id (none outside a request)."""
    current = request_id.get()
    return [(KAFKA_REQUEST_ID_HEADER, current.encode())] if current else []


class RequestObserver:
    """Pure ASGI middleware (no per-request task or body buffering, unlike BaseHTTPMiddleware)."""

    def __init__(self, app, service: str) -> None:
        self.app, self.service = app, service

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        supplied = next((v for k, v in scope["headers"] if k == REQUEST_ID_HEADER.encode()), None)
        rid = incoming_request_id(supplied)
        token = request_id.set(rid)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("route")  # set by the router on a match: the template, never the raw path
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            HTTP_REQUESTS.labels(self.service, method, template, str(status)).inc()
            HTTP_SECONDS.labels(self.service, method, template).observe(seconds)
            if template != "/metrics":
                log.info("%s %s %d", method, template, status, extra={
                    "service": self.service, "method": method, "route": template, "status": status,
                    "duration_ms": round(seconds * 1000, 2)})
            request_id.reset(token)


def instrument(app: FastAPI, service: str) -> None:
    app.add_middleware(RequestObserver, service=service)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus text format. Needs no token: it lists counts by route, reason and source, no department data."""
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
