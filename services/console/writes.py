"""The only writes the console passes on: the resource applications' workflow (apply, estimate, and the steps of
the e-government centre, the provider and the department), disputes of final bill lines (open, reject,
uphold) and decisions on proposed rate cards (approve, reject: never by the proposer). Each is a POST of a small JSON body to the billing API, which checks the token's role and department as
for any client.

A write must come from this origin's own page: its Origin and Sec-Fetch-Site (set by browsers, not by pages) say
so, it carries the header ``X-Govmeter-Console: 1``, which a page of another site cannot add without a CORS
preflight that this server never grants, and a JSON content type; the session cookie is SameSite=Strict besides.
Anything else is refused before the API is asked."""

from __future__ import annotations

import re

from fastapi import HTTPException, Request

WRITABLE = re.compile(r"v1/applications(/estimate|/[1-9][0-9]{0,18}/(accept|approve|reject|withdraw|fulfil))?"
                      r"|v1/disputes(/[1-9][0-9]{0,18}/(reject|uphold))?"
                      r"|v1/rate-cards/proposals/[1-9][0-9]{0,18}/(approve|reject)")
MAX_WRITE_BYTES = 64 * 1024
MARKER = "x-govmeter-console"


async def console_write(api: str, path: str, request: Request) -> bytes:
    """The body of an allowed write, or 405 (not a workflow path), 403 (not from the console's page), 415, 413."""
    if api != "billing" or not WRITABLE.fullmatch(path):
        raise HTTPException(405, detail="the console writes only applications, disputes and rate card decisions",
                            headers={"Allow": "GET, HEAD"})
    origin = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if request.headers.get("origin", origin) != origin or request.headers.get(
            "sec-fetch-site", "same-origin") != "same-origin":
        raise HTTPException(403, detail="origin: writes come only from this console's own pages")
    if request.headers.get(MARKER) != "1":
        raise HTTPException(403, detail=f"{MARKER}: a write must come from the console's own pages")
    if (request.headers.get("content-type") or "").split(";")[0].strip().lower() != "application/json":
        raise HTTPException(415, detail="content-type: application/json")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_WRITE_BYTES:
            raise HTTPException(413, detail=f"body: at most {MAX_WRITE_BYTES} bytes")
    return body
