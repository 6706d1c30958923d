"""Bearer JWTs (HS256) and the role checks every endpoint but /healthz goes through."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Iterable

import jwt
from fastapi import Depends, HTTPException, Request, status

from schemas.api import Role
from services.common.config import get_settings


@dataclass(frozen=True)
class Principal:
    subject: str
    role: str
    department: str | None
    sources: frozenset[str] = frozenset()  # the event sources a provider token may write (claim ``sources``)

    def may_read_department(self, department_id: str | None) -> bool:
        return self.role != Role.DEPARTMENT or department_id == self.department

    def may_write_source(self, source: str) -> bool:
        return self.role == Role.ADMIN or source in self.sources


def issue_token(role: str, department: str | None = None, subject: str | None = None, ttl_seconds: int = 86_400,
                secret: str | None = None, sources: Iterable[str] = ()) -> str:
    if role not in Role.ALL:
        raise ValueError(f"role must be one of {', '.join(Role.ALL)}")
    if role == Role.DEPARTMENT and not department:
        raise ValueError("a department token needs --department")
    claims = {"sub": subject or (department or role), "role": role, "exp": int(time.time()) + ttl_seconds}
    if department:
        claims["department"] = department
    if sources:
        claims["sources"] = sorted(set(sources))
    return jwt.encode(claims, secret or get_settings().jwt_secret, algorithm="HS256")


def _unauthorized(why: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=why, headers={"WWW-Authenticate": "Bearer"})


async def principal_from(request: Request) -> Principal:
    # async although it never awaits: FastAPI runs a plain ``def`` dependency in its thread pool, a thread hand-off
    # per request that costs more than decoding the token (and waits for a CPU under load).
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("Authorization: a Bearer token is required")
    try:
        claims = jwt.decode(token, get_settings().jwt_secret, algorithms=["HS256"], options={"require": ["exp", "sub"]})
    except jwt.PyJWTError as exc:
        raise _unauthorized(f"Authorization: invalid token ({exc})") from None
    role = claims.get("role")
    if role not in Role.ALL:
        raise _unauthorized("Authorization: token role must be one of " + ", ".join(Role.ALL))
    department = claims.get("department")
    if role == Role.DEPARTMENT and not department:
        raise _unauthorized("Authorization: a department token must name its department")
    sources = claims.get("sources", [])
    if not isinstance(sources, list) or not all(isinstance(s, str) and s for s in sources):
        raise _unauthorized("Authorization: token claim sources must be a list of source names")
    return Principal(str(claims["sub"]), role, department, frozenset(sources))


def require_roles(*roles: str):
    """Dependency: the caller's principal, or 401 (no/invalid token) / 403 (role not allowed here)."""

    async def check(principal: Annotated[Principal, Depends(principal_from)]) -> Principal:
        if principal.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"role {principal.role} may not do this")
        return principal

    return check


def scoped_department(principal: Principal, requested: str | None) -> str | None:
    """The department a read is limited to: a department token sees only its own; asking for another is 403."""
    if principal.role == Role.DEPARTMENT:
        if requested is not None and requested != principal.department:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="department: you may read only your own department")
        return principal.department
    return requested
