"""What every API does with a request before any of it is read: check the token, and bound the body.

``RequestGuard`` is a pure ASGI middleware. It authenticates the ``Authorization`` header for its API's audience
and leaves the verdict in the scope for the role dependencies (services.common.auth); a request that may carry
a body (any method but GET, HEAD, OPTIONS) without a valid token is answered 401 before a byte of it is read,
so nothing unauthenticated is parsed. A body over ``GOVMETER_MAX_BODY_BYTES`` is answered 413: at once when its
Content-Length says so, otherwise as soon as the bytes received so far pass the limit (chunked uploads)."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, status
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.auth import AUDIENCES, VERDICT_KEY, InvalidToken, authenticate
from services.common.config import get_settings

_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS"})


class BodyTooLarge(HTTPException):
    # An HTTPException so that FastAPI passes it through its body parsing unchanged and renders it as a 413.
    def __init__(self, limit: int) -> None:
        super().__init__(status.HTTP_413_CONTENT_TOO_LARGE,
                         detail=f"body: larger than the limit of {limit} bytes (GOVMETER_MAX_BODY_BYTES)")


def check_event_count(count: int) -> None:
    """413 when a POST /v1/events request carries more events than ``GOVMETER_MAX_EVENTS_PER_REQUEST``."""
    limit = get_settings().max_events_per_request
    if count > limit:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                            detail=f"body: {count} events; at most {limit} a request "
                                   "(GOVMETER_MAX_EVENTS_PER_REQUEST): send them in several requests")


class RequestGuard:
    def __init__(self, app: ASGIApp, audience: str, max_body_bytes: int | None = None) -> None:
        self.app = app
        self.audience = audience
        self.max_body_bytes = max_body_bytes or get_settings().max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        authorization = headers.get("authorization")
        try:
            if authorization is None:
                raise InvalidToken("a Bearer token is required")
            scope[VERDICT_KEY] = authenticate(authorization, self.audience)
        except InvalidToken as exc:
            scope[VERDICT_KEY] = str(exc)
            if scope["method"] not in _BODYLESS:
                await _answer(scope, receive, send, status.HTTP_401_UNAUTHORIZED, f"Authorization: {exc}",
                              {"WWW-Authenticate": "Bearer"})
                return

        limit = self.max_body_bytes
        try:
            declared = int(headers.get("content-length", "0"))
        except ValueError:
            await _answer(scope, receive, send, status.HTTP_400_BAD_REQUEST, "Content-Length: not a number")
            return
        if declared > limit:
            await _answer(scope, receive, send, status.HTTP_413_CONTENT_TOO_LARGE, BodyTooLarge(limit).detail)
            return

        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge as exc:  # read outside FastAPI's handlers; answered here unless a response began
            if started:
                raise
            await _answer(scope, receive, send, exc.status_code, exc.detail)


async def _answer(scope: Scope, receive: Receive, send: Send, code: int, detail: str,
                  headers: dict[str, str] | None = None) -> None:
    await JSONResponse({"detail": detail}, status_code=code, headers=headers)(scope, receive, send)


def guard(app: FastAPI, api: str) -> None:
    """Put the request guard in front of ``app``, the API named ``api`` (its token audience)."""
    app.add_middleware(RequestGuard, audience=AUDIENCES[api])
