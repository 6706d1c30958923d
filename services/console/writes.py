"""The console's only writes: deciding on a proposed rate card (approve, reject with a reason), which the finance
bureau and admins do from the 价目审批 page. Each is a POST passed to the billing API with the signed-in user's
token, so the billing API alone decides who may approve (never the proposer: services.billing.rate_card_approvals).

Every other POST stays refused (the GET proxy takes GET and HEAD only). A write must carry the header
``X-Govmeter-Console: 1`` and a JSON body, and an ``Origin``, when sent, must be this console's: a page of another
origin cannot set that header without a CORS preflight, which this server never grants, and SameSite=Strict keeps
other sites from sending the cookie at all (other ports of the same host are the same site, hence the header)."""

from __future__ import annotations

import re

import httpx
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse

COOKIE = "govmeter_console_token"
WRITES = re.compile(r"v1/rate-cards/proposals/[1-9][0-9]{0,18}/(approve|reject)")
MAX_BODY = 8192

router = APIRouter()


def _refuse_foreign(request: Request) -> None:
    if request.headers.get("x-govmeter-console") != "1":
        raise HTTPException(403, detail="x-govmeter-console: the console's own pages send this header")
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise HTTPException(403, detail="origin: writes come from this console's own pages only")


@router.post("/api/billing/{path:path}", include_in_schema=False)
async def write(path: str, request: Request) -> Response:
    if not WRITES.fullmatch(path):
        raise HTTPException(405, detail="the console writes only rate card decisions")
    _refuse_foreign(request)
    body = await request.body()
    if len(body) > MAX_BODY:
        raise HTTPException(413, detail="body: too large")
    headers = {"content-type": "application/json", "accept": "application/json"}
    token = request.cookies.get(COOKIE)
    if token:  # without one the API answers 401 itself
        headers["authorization"] = f"Bearer {token}"
    base = request.app.state.upstreams["billing"]
    try:
        answer = await request.app.state.client.post(f"{base}/{path}", content=body or b"{}", headers=headers)
    except httpx.HTTPError as exc:
        return JSONResponse({"detail": f"the billing API did not answer ({type(exc).__name__})"}, status_code=502)
    return Response(answer.content, status_code=answer.status_code,
                    media_type=answer.headers.get("content-type", "application/json"))
