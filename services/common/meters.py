"""``GET /v1/meters``: the meter catalogue (``schemas/meters.json``) as data that providers and the console read
instead of copying it. Every API serves it, so each caller finds it on the API it already talks to; any valid token
of any role reads it (like every endpoint but ``/healthz``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI

from schemas.api import MeterCatalogue, Role
from schemas.catalogue import meters
from services.common.auth import Principal, require_roles


def add_meters_route(app: FastAPI) -> None:
    @app.get("/v1/meters", response_model=MeterCatalogue)
    async def list_meters(principal: Annotated[Principal, Depends(require_roles(*Role.ALL))]) -> MeterCatalogue:
        """The meters with their unit, family, kind (rate per hour of use, or volume), Chinese and English names
        and attribute values, in the catalogue's order."""
        return MeterCatalogue(meters=list(meters().values()))
