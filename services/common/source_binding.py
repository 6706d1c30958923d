"""Provider trust over HTTP: a provider token names the CloudEvents sources it may write (claim ``sources``), so
one collector cannot post under another's source and pre-empt its ids as conflicting duplicates. Admin may write
any source. Records produced straight into Kafka carry no token: there the topic's ACLs are the binding."""

from __future__ import annotations

from fastapi import HTTPException, status

from services.common.auth import Principal


def require_writable_sources(principal: Principal, raws: list) -> None:
    """403 naming the first source in the body that the token may not write; nothing is published then."""
    for raw in raws:
        source = raw.get("source") if isinstance(raw, dict) else None
        if isinstance(source, str) and not principal.may_write_source(source):
            allowed = ", ".join(sorted(principal.sources)) or "none"
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                detail=f"source: this token may not write source {source!r} (its sources: {allowed})")
