"""``GET /healthz``: 200 only when this process can reach both PostgreSQL and the broker."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from services.common.config import get_settings
from services.common.db import get_engine
from services.common.kafka import broker_reachable


async def database_reachable() -> bool:
    try:
        async with get_engine().connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


def add_health_route(app: FastAPI) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        checks = {
            "database": await database_reachable(),
            "broker": await broker_reachable(get_settings().kafka_bootstrap_servers),
        }
        healthy = all(checks.values())
        return JSONResponse({"status": "ok" if healthy else "unavailable", **checks}, status_code=200 if healthy else 503)
