"""Security hardening (#13): the one month parser, tokens, and request size limits."""

from __future__ import annotations

import time
from typing import Annotated

import jwt
import orjson
import pytest
from fastapi import Depends, FastAPI, Request
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from schemas.api import Role
from schemas.billing import AdjustmentIn, Month
from services.billing.domain.bills import parse_bill_number
from services.common.auth import (
    AUDIENCES,
    InvalidToken,
    MissingSecret,
    Principal,
    authenticate,
    issue_token,
    jwt_secret,
    require_roles,
)
from services.common.config import Settings, get_settings
from services.common.guard import RequestGuard
from services.common.lifespan import producer_lifespan
from services.common.periods import canonical_month, parse_month

NOT_MONTHS = ["２０２６-10", "2026-１０", "٢٠٢٦-10", "𝟚𝟘𝟚𝟞-10", "2026-10\n", "2026-10 ", " 2026-10", "+202-10",
              "2_02-10", "2026-1", "2026-13", "2026-00", "26-10", "2026/10", ""]


@pytest.mark.parametrize("text", NOT_MONTHS)
def test_only_ascii_yyyy_mm_is_a_month_everywhere(text):
    with pytest.raises(ValueError):
        parse_month(text)
    with pytest.raises(ValidationError):
        TypeAdapter(Month).validate_python(text)
    with pytest.raises(ValidationError):
        AdjustmentIn(department_id="czj", amount="1", reason="x", month=text)
    assert parse_bill_number(f"GM-{text}-czj") is None


@given(st.integers(0, 9999), st.integers(1, 12))
def test_every_canonical_month_parses_to_itself(year, mon):
    text = f"{year:04d}-{mon:02d}"
    assert parse_month(text) == (year, mon) and canonical_month(text) == text
    assert TypeAdapter(Month).validate_python(text) == text
    assert parse_bill_number(f"GM-{text}-dep-a.1") == (text, "dep-a.1")


# --- the signing secret -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("secret", [None, "", "short", "x" * 31, "密" * 10])  # 10 CJK characters: 30 bytes
async def test_no_api_starts_without_a_secret_of_32_bytes(secret, monkeypatch):
    settings = get_settings()
    monkeypatch.setattr(settings, "jwt_secret", secret)
    with pytest.raises(MissingSecret, match="GOVMETER_JWT_SECRET"):
        jwt_secret(settings)
    with pytest.raises(MissingSecret, match="at least 32 bytes"):
        async with producer_lifespan()(FastAPI()):
            pass
    with pytest.raises(MissingSecret):
        issue_token("admin")


def test_there_is_no_default_secret():
    assert Settings.model_fields["jwt_secret"].default is None


def test_a_token_lives_at_most_the_configured_lifetime(monkeypatch):
    monkeypatch.setattr(get_settings(), "jwt_max_lifetime_seconds", 3600)
    with pytest.raises(ValueError, match="ttl"):
        issue_token("admin", ttl_seconds=3601)
    claims = jwt.decode(issue_token("admin", ttl_seconds=3600), get_settings().jwt_secret, algorithms=["HS256"],
                        audience=AUDIENCES["query"])
    assert claims["exp"] - claims["iat"] == 3600 and claims["aud"] == list(AUDIENCES.values())
    monkeypatch.setattr(get_settings(), "jwt_max_lifetime_seconds", 60)
    with pytest.raises(InvalidToken, match="lifetime over 60"):
        authenticate(f"Bearer {jwt.encode(claims, get_settings().jwt_secret)}", AUDIENCES["query"])
    with pytest.raises(ValueError, match="department"):
        issue_token("department", department="../other")


def test_a_remembered_token_still_expires_and_stays_bound_to_its_audience(monkeypatch):
    from services.common import auth

    token = f"Bearer {issue_token('finance', ttl_seconds=60, audience=['query'])}"
    now = time.time()
    assert authenticate(token, AUDIENCES["query"]).role == "finance"
    assert authenticate(token, AUDIENCES["query"]).role == "finance"  # remembered
    with pytest.raises(InvalidToken, match="(?i)audience"):
        authenticate(token, AUDIENCES["billing"])
    monkeypatch.setattr(auth.time, "time", lambda: now + 60 + auth.LEEWAY_SECONDS + 1)
    with pytest.raises(InvalidToken, match="expired"):
        authenticate(token, AUDIENCES["query"])
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    monkeypatch.undo()
    with pytest.raises(InvalidToken):
        authenticate(tampered, AUDIENCES["query"])


# --- the request guard ------------------------------------------------------------------------------------------


class Exchange:
    """One ASGI request: ``chunks`` of body offered one at a time; records what the app read and answered."""

    def __init__(self, method: str, chunks: list[bytes], headers: dict[str, str]) -> None:
        self.scope = {"type": "http", "method": method, "path": "/v1/echo", "raw_path": b"/v1/echo",
                      "query_string": b"", "root_path": "", "scheme": "http", "http_version": "1.1",
                      "server": ("test", 80), "client": ("test", 1),
                      "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
        self.chunks = list(chunks)
        self.read = 0
        self.status: int | None = None
        self.body = b""

    async def receive(self):
        if not self.chunks:
            return {"type": "http.disconnect"}
        self.read += 1
        chunk = self.chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(self.chunks)}

    async def send(self, message):
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")

    async def through(self, app) -> "Exchange":
        await app(self.scope, self.receive, self.send)
        return self


def echo_app(limit: int):
    app = FastAPI()

    @app.post("/v1/echo")
    async def echo(request: Request, principal: Annotated[Principal, Depends(require_roles(Role.ADMIN))]):
        return {"bytes": len(await request.body())}

    @app.post("/v1/parsed")
    async def parsed(body: dict, principal: Annotated[Principal, Depends(require_roles(Role.ADMIN))]):
        return {"keys": len(body)}

    return RequestGuard(app, AUDIENCES["metering"], max_body_bytes=limit)


ADMIN_TOKEN = {"authorization": "Bearer " + issue_token("admin")}


async def test_a_streamed_body_is_cut_off_as_soon_as_it_passes_the_limit():
    exchange = await Exchange("POST", [b"x" * 30] * 10, ADMIN_TOKEN).through(echo_app(100))
    assert exchange.status == 413 and b"GOVMETER_MAX_BODY_BYTES" in exchange.body
    assert exchange.read == 4  # 120 bytes: no further chunk was read
    within = await Exchange("POST", [b"x" * 30] * 3, ADMIN_TOKEN).through(echo_app(100))
    assert (within.status, orjson.loads(within.body)) == (200, {"bytes": 90})
    # the same where FastAPI itself reads and parses the body (a body parameter)
    json_body = {**ADMIN_TOKEN, "content-type": "application/json"}
    parsed = Exchange("POST", [b'{"a": "', *[b"x" * 30] * 10, b'"}'], json_body)
    parsed.scope["path"], parsed.scope["raw_path"] = "/v1/parsed", b"/v1/parsed"
    await parsed.through(echo_app(100))  # 7 + 4 × 30 bytes: the fifth chunk passes the limit
    assert (parsed.status, parsed.read) == (413, 5) and b"GOVMETER_MAX_BODY_BYTES" in parsed.body


async def test_a_declared_length_over_the_limit_is_413_before_anything_is_read():
    exchange = await Exchange("POST", [b"x" * 30], {**ADMIN_TOKEN, "content-length": "101"}).through(echo_app(100))
    assert (exchange.status, exchange.read) == (413, 0)


@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer nonsense"},
                                     {"authorization": "Bearer " + issue_token("admin", audience=["query"])}])
async def test_no_byte_of_an_unauthenticated_body_is_read(headers):
    from services.billing.api import app as billing_app

    for app in (echo_app(100), billing_app):
        exchange = Exchange("POST", [b'{"department_id": "x", '] * 3, {**headers, "content-type": "application/json"})
        exchange.scope["path"], exchange.scope["raw_path"] = "/v1/adjustments", b"/v1/adjustments"
        await exchange.through(app)
        assert (exchange.status, exchange.read) == (401, 0), exchange.body
