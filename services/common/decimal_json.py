"""JSON request bodies whose numbers become ``Decimal`` from their text, never through a binary float.

FastAPI reads a JSON body with ``Request.json()`` (the standard library's ``json.loads``), so ``0.1`` would reach
a ``Decimal`` field as the float nearest to it and ``1234567890.123456789`` would lose digits. A router whose
``route_class`` is ``DecimalJSONRoute`` hands its endpoints a request that parses numbers as ``Decimal``."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Callable, Coroutine

from fastapi import Request, Response
from fastapi.routing import APIRoute


class DecimalJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = json.loads(await self.body(), parse_float=Decimal)
        return self._json


class DecimalJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def with_decimal_json(request: Request) -> Response:
            return await handler(DecimalJSONRequest(request.scope, request.receive))

        return with_decimal_json
