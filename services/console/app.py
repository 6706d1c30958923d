"""The web console's server, kept thin on purpose: it serves the static pages (services/console/static), signs a
user in by keeping their govmeter token in an HttpOnly cookie, and proxies GET requests under
``/api/{metering,billing,query}/…`` to the three APIs with that token as ``Authorization: Bearer``.

Every figure the pages show is therefore an API answer the same user could fetch with the same token: the APIs
enforce Article 18, not this process. Only GET and HEAD are proxied (the console reads; writes stay with the APIs'
own clients), so the cookie cannot be used to change anything even by a page that tricks a browser into sending it;
SameSite=Strict keeps other sites from sending it at all. The exceptions are the resource applications' workflow,
disputes of bill lines and rate card decisions (services/console/writes.py): a few POSTs, JSON only, from this origin's own pages.
The token never appears in a URL and page scripts cannot read it.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from services.common.auth import AUDIENCES, InvalidToken, authenticate
from services.console.writes import console_write
from services.common.config import get_settings
from services.common.observability import instrument

STATIC = Path(__file__).resolve().parent / "static"
COOKIE = "govmeter_console_token"
# Headers of the API's answer that the browser needs (downloads keep their file name).
PASSED_BACK = ("content-type", "content-disposition", "cache-control", "retry-after", "etag")
PASSED_ON = ("accept", "accept-language", "if-none-match")
SECURITY_HEADERS = {
    # ECharts sets inline styles on the elements it draws; scripts come only from this origin.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def upstreams() -> dict[str, str]:
    """The APIs' base URLs: ``GOVMETER_CONSOLE_UPSTREAMS`` (``metering=http://…,billing=…,query=…``) or the
    host and ports of the settings."""
    settings = get_settings()
    found = {api: f"http://{settings.host}:{getattr(settings, f'{api}_port')}" for api in AUDIENCES}
    for item in filter(None, (settings.console_upstreams or "").split(",")):
        api, _, url = item.partition("=")
        if api.strip() not in AUDIENCES:
            raise ValueError(f"GOVMETER_CONSOLE_UPSTREAMS: unknown API {api.strip()!r}")
        found[api.strip()] = url.strip().rstrip("/")
    return found


def session_of(token: str) -> dict:
    """What the pages may know about a token (role, department, the APIs it is for); InvalidToken if it is good
    for none of the three APIs. Only to choose the pages: each API checks the token again on every request."""
    principal, apis = None, []
    for api, audience in AUDIENCES.items():
        try:
            principal = authenticate(f"Bearer {token}", audience)
            apis.append(api)
        except InvalidToken as exc:
            why = exc
    if principal is None:
        raise why
    return {"subject": principal.subject, "role": principal.role, "department": principal.department, "apis": apis}


class SignIn(BaseModel):
    token: str = Field(min_length=1, max_length=8192)


@asynccontextmanager
async def lifespan(app: FastAPI):
    # Bills and reports can take the APIs a while on a year of data; their own statement timeout answers 503.
    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=5.0)) as client:
        app.state.client, app.state.upstreams = client, upstreams()
        yield


app = FastAPI(title="govmeter console", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
instrument(app, "console")  # /metrics and JSON request logs, as on the APIs


@app.middleware("http")
async def security_headers(request: Request, call_next):
    response = await call_next(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@app.get("/healthz", include_in_schema=False)
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@app.post("/session")
async def sign_in(body: SignIn, request: Request) -> JSONResponse:
    try:
        session = session_of(body.token.strip())
    except InvalidToken as exc:
        raise HTTPException(401, detail=str(exc)) from None
    response = JSONResponse(session)
    response.set_cookie(COOKIE, body.token.strip(), httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")
    return response


@app.get("/session")
async def current_session(request: Request) -> JSONResponse:
    token = request.cookies.get(COOKIE)
    if not token:
        raise HTTPException(401, detail="not signed in")
    try:
        return JSONResponse(session_of(token))
    except InvalidToken as exc:
        raise HTTPException(401, detail=str(exc)) from None


@app.delete("/session")
async def sign_out() -> Response:
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/")
    return response


@app.api_route("/api/{api}/{path:path}", methods=["GET", "HEAD", "POST"])
async def proxy(api: str, path: str, request: Request) -> Response:
    base = request.app.state.upstreams.get(api)
    if base is None:
        raise HTTPException(404, detail="no such API")
    headers = {name: request.headers[name] for name in PASSED_ON if name in request.headers}
    content = await console_write(api, path, request) if request.method == "POST" else None
    if content is not None:
        headers["content-type"] = "application/json"
    token = request.cookies.get(COOKIE)
    if token:  # without one the API answers 401 itself
        headers["authorization"] = f"Bearer {token}"
    try:
        answer = await request.app.state.client.request(
            request.method, f"{base}/{path}", params=request.query_params.multi_items(), headers=headers,
            content=content)
    except httpx.HTTPError as exc:
        return JSONResponse({"detail": f"the {api} API did not answer ({type(exc).__name__})"}, status_code=502)
    passed = {name: answer.headers[name] for name in PASSED_BACK if name in answer.headers}
    return Response(answer.content, status_code=answer.status_code, headers=passed)


@app.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


app.mount("/static", StaticFiles(directory=STATIC), name="static")
