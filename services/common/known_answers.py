"""Cached answers served before routing, to requests already answered once.

A route finds its cached answer by a key it computes from the request: FastAPI solves its dependencies (the
token's verdict, each query parameter validated), the route checks the values and resolves the caller's scope.
For an answer the response cache already holds, that was about half the CPU of the request, and under many
concurrent finance clients one API process's CPU is what they wait for (docs/query-speed.md).

``KnownAnswers`` remembers, for a request as the client sent it (its path, the verified principal and the raw
query string), the cache key its route resolved it to. ``ServeKnownAnswers``, a pure ASGI middleware inside the
request guard and the request observer, answers such a request from the response cache without routing it; a
request not remembered, or whose answer the cache no longer holds, is routed as before.

Exactness: a remembered key is the route's own resolution of the same path, principal and query, which is a
pure function of them but for the department tree (a district office's scope, a roll-up). So a key is kept with
the ``departments`` generation counted before its route ran, and used only while that generation is unchanged
after the request has caught up with every committed write; a route whose key depends on anything else (the
clock: the bill list's default month) does not remember it. The answer itself is the response cache's, under its
own rule (the request caught up, the entry not dropped): the one the route would have served from it. Nothing
but a successful answer from the cache is remembered: a refusal (401, 403, 422) is always routed again."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from contextvars import ContextVar

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from services.common.auth import VERDICT_KEY, Principal
from services.common.response_cache import ResponseCache
from services.common.scope import TABLE as TREE_TABLE  # what a scope reads besides the principal
# A longer query string is routed every time and never remembered: the memo stays within ~8,192 × 2 kB however
# much a caller pads a valid query (unknown parameters are ignored, repeated ones folded). Finance's are ~100 bytes.
MAX_QUERY_BYTES = 2048

Request = tuple[str, Principal, bytes]  # path, verified principal, raw query string
# The request being routed, and the tree's generation before it was: set by the middleware for the route.
_ROUTING: ContextVar[tuple[Request, tuple[int, int]] | None] = ContextVar("govmeter.known_answer", default=None)


class KnownAnswers:
    """The cache keys of requests already answered from ``cache``, by request (least recently used dropped)."""

    def __init__(self, cache: ResponseCache, max_entries: int = 8192) -> None:
        self.cache, self.max_entries = cache, max_entries
        self.served = 0  # answers served before routing
        self._keys: OrderedDict[Request, tuple[Hashable, tuple[int, int]]] = OrderedDict()

    def remember(self, cache_key: Hashable) -> None:
        """Called by a route that answered the current request from ``cache`` under ``cache_key``, a key that is a
        function of the request and the department tree alone."""
        routing = _ROUTING.get()
        if routing is None:
            return
        request, tree_generation = routing
        self._keys[request] = (cache_key, tree_generation)
        self._keys.move_to_end(request)
        while len(self._keys) > self.max_entries:
            self._keys.popitem(last=False)

    async def answer(self, request: Request) -> bytes | None:
        """The cached answer to a request already routed once, or None (route it)."""
        known = self._keys.get(request)
        if known is None or not await self.cache.caught_up():
            return None
        cache_key, tree_generation = known
        if self.cache.table_generation(TREE_TABLE) != tree_generation:
            del self._keys[request]  # the tree changed: the request's scope must be resolved again
            return None
        body = self.cache.stored(cache_key)
        if body is not None:
            self._keys.move_to_end(request)
            self.served += 1
        return body


class ServeKnownAnswers:
    """Pure ASGI middleware: GET requests to ``paths`` of ``api`` that ``known`` can answer are answered here. It
    sits inside the request guard (it reads its verdict) and the request observer (which logs and counts the
    answer under the route's template, set here as routing would set it): ``serve_known_answers`` places it."""

    def __init__(self, app: ASGIApp, api, known: KnownAnswers, paths: frozenset[str]) -> None:
        # Built with the middleware stack, at the API's first request: every route exists by then.
        self.app, self.known = app, known
        self.routes = {route.path: route for route in api.routes if getattr(route, "path", None) in paths}
        if self.routes.keys() != paths:
            raise LookupError(f"no GET route {', '.join(sorted(paths - self.routes.keys()))} to serve answers of")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "GET" else None
        principal = scope.get(VERDICT_KEY)
        if route is None or not isinstance(principal, Principal) or len(scope["query_string"]) > MAX_QUERY_BYTES:
            await self.app(scope, receive, send)
            return
        request = (scope["path"], principal, scope["query_string"])
        body = await self.known.answer(request)
        if body is not None:
            scope["route"] = route
            await Response(body, media_type="application/json")(scope, receive, send)
            return
        tree_generation = self.known.cache.table_generation(TREE_TABLE)
        token = _ROUTING.set(None if tree_generation is None else (request, tree_generation))
        try:
            await self.app(scope, receive, send)
        finally:
            _ROUTING.reset(token)


def serve_known_answers(api: FastAPI, known: KnownAnswers, *paths: str) -> None:
    """Serve ``known`` answers of the GET routes ``paths`` of ``api`` before routing: innermost of its middleware
    (``add_middleware`` puts the latest outermost), so behind the request guard and the request observer."""
    if api.middleware_stack is not None:
        raise RuntimeError("serve_known_answers after the API has started")
    api.user_middleware.append(Middleware(ServeKnownAnswers, api=api, known=known, paths=frozenset(paths)))
