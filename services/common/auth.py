"""Bearer JWTs (HS256) and the role checks every endpoint but /healthz goes through.

A token names the APIs it is for in ``aud`` (``govmeter-metering``, ``govmeter-billing``, ``govmeter-query``);
each API takes only tokens that name it. The token is checked by the request guard (services.common.guard)
before any body is read; the dependencies here only read its verdict and check the role."""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Iterable

import jwt
from fastapi import Depends, HTTPException, Request, status
from pydantic import TypeAdapter, ValidationError

from schemas.api import DepartmentId, Role
from services.common.config import Settings, get_settings

AUDIENCES = {"metering": "govmeter-metering", "billing": "govmeter-billing", "query": "govmeter-query"}
MIN_SECRET_BYTES = 32
# Clock skew allowed between the minting host and the API, for exp and for an iat in the future.
LEEWAY_SECONDS = 30
# Where the request guard leaves its verdict for the dependencies: a Principal, or why there is none.
VERDICT_KEY = "govmeter.principal"
_DEPARTMENT_ID = TypeAdapter(DepartmentId)


class MissingSecret(RuntimeError):
    pass


def jwt_secret(settings: Settings | None = None) -> str:
    """The signing secret; refuses (MissingSecret) a missing one or one shorter than 32 bytes."""
    secret = (settings or get_settings()).jwt_secret
    if secret is None or len(secret.encode()) < MIN_SECRET_BYTES:
        why = "is not set" if secret is None else f"has {len(secret.encode())} bytes"
        raise MissingSecret(
            f"GOVMETER_JWT_SECRET {why}: the APIs need a secret of at least {MIN_SECRET_BYTES} bytes to sign and "
            "check tokens (e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))')")
    return secret


@dataclass(frozen=True)
class Principal:
    subject: str
    role: str
    department: str | None
    sources: frozenset[str] = frozenset()  # the event sources a provider token may write (claim ``sources``)

    def may_read_department(self, department_id: str | None) -> bool:
        district = self.role == Role.FINANCE and self.department is not None  # the tree: services.common.scope
        return (self.role != Role.DEPARTMENT and not district) or department_id == self.department

    def may_write_source(self, source: str) -> bool:
        return self.role == Role.ADMIN or source in self.sources


class InvalidToken(ValueError):
    pass


def audiences_for(apis: Sequence[str] | None) -> list[str]:
    """The ``aud`` claim for a token usable at ``apis`` (names of AUDIENCES; None: all three APIs)."""
    unknown = sorted(set(apis or ()) - set(AUDIENCES))
    if unknown:
        raise ValueError(f"audience must be among {', '.join(AUDIENCES)} (not {', '.join(unknown)})")
    return [AUDIENCES[api] for api in (apis or AUDIENCES)]


def issue_token(role: str, department: str | None = None, subject: str | None = None, ttl_seconds: int = 86_400,
                secret: str | None = None, audience: Sequence[str] | None = None, sources: Iterable[str] = ()) -> str:
    """A signed token for ``role`` at the APIs named in ``audience`` (default: all three)."""
    settings = get_settings()
    if role not in Role.ALL:
        raise ValueError(f"role must be one of {', '.join(Role.ALL)}")
    if role == Role.DEPARTMENT and not department:
        raise ValueError("a department token needs --department")
    if department is not None:
        _department_claim(department)
    if not 0 < ttl_seconds <= settings.jwt_max_lifetime_seconds:
        raise ValueError(f"ttl must be between 1 and {settings.jwt_max_lifetime_seconds} seconds "
                         "(GOVMETER_JWT_MAX_LIFETIME_SECONDS)")
    now = int(time.time())
    claims = {"sub": subject or (department or role), "role": role, "iat": now, "exp": now + ttl_seconds,
              "aud": audiences_for(audience)}
    if department:
        claims["department"] = department
    if sources:
        claims["sources"] = sorted(set(sources))
    return jwt.encode(claims, secret or jwt_secret(settings), algorithm="HS256")


def _department_claim(value: object) -> str:
    try:
        return _DEPARTMENT_ID.validate_python(value, strict=True)
    except ValidationError:
        raise InvalidToken("department must be a department id (letters, digits, '_', '.', '-'; at most 64)") from None


def authenticate(authorization: str, audience: str, settings: Settings | None = None) -> Principal:
    """The principal of an ``Authorization`` header value at the API ``audience``, or InvalidToken (why)."""
    settings = settings or get_settings()
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise InvalidToken("a Bearer token is required")
    principal, expires = _verified(token, audience, jwt_secret(settings), settings.jwt_max_lifetime_seconds)
    # A verified token is remembered (signature and claims do not change); only its expiry moves with the clock,
    # checked here as PyJWT checks it.
    if time.time() >= expires + LEEWAY_SECONDS:
        raise InvalidToken("invalid token (Signature has expired)")
    return principal


# Finance clients send the same token with every request: verifying its signature and claims each time cost
# ~10 % of a cached answer's CPU. Failures are not remembered (lru_cache keeps no exceptions).
@functools.lru_cache(maxsize=4096)
def _verified(token: str, audience: str, secret: str, max_lifetime_seconds: int) -> tuple[Principal, int]:
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], audience=audience,
                            leeway=LEEWAY_SECONDS, options={"require": ["exp", "iat", "sub", "aud"]})
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"invalid token ({exc})") from None
    # PyJWT checks exp, and iat (an integer, not in the future beyond the leeway); the lifetime is ours.
    if int(claims["exp"]) - int(claims["iat"]) > max_lifetime_seconds:
        raise InvalidToken(f"invalid token (lifetime over {max_lifetime_seconds} s)")
    role = claims.get("role")
    if not isinstance(role, str) or role not in Role.ALL:
        raise InvalidToken("token role must be one of " + ", ".join(Role.ALL))
    department = claims.get("department")
    if department is not None:
        department = _department_claim(department)
    elif role == Role.DEPARTMENT:
        raise InvalidToken("a department token must name its department")
    sources = claims.get("sources", [])
    if not isinstance(sources, list) or not all(isinstance(s, str) and s for s in sources):
        raise InvalidToken("token claim sources must be a list of source names")
    return Principal(claims["sub"], role, department, frozenset(sources)), int(claims["exp"])


def _unauthorized(why: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=f"Authorization: {why}",
                         headers={"WWW-Authenticate": "Bearer"})


async def principal_from(request: Request) -> Principal:
    # async although it never awaits: FastAPI runs a plain ``def`` dependency in its thread pool, a thread hand-off
    # per request that costs more than reading the verdict (and waits for a CPU under load).
    verdict = request.scope.get(VERDICT_KEY)
    if verdict is None:  # no request guard in front of this app: fail closed
        raise RuntimeError("services.common.guard.RequestGuard must wrap every API")
    if isinstance(verdict, Principal):
        return verdict
    raise _unauthorized(verdict)


def require_roles(*roles: str):
    """Dependency: the caller's principal, or 401 (no/invalid token) / 403 (role not allowed here)."""

    async def check(principal: Annotated[Principal, Depends(principal_from)]) -> Principal:
        if principal.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"role {principal.role} may not do this")
        return principal

    return check


def scoped_department(principal: Principal, requested: str | None) -> str | None:
    """The department a read is limited to: a department token sees only its own; asking for another is 403.
    Superseded by services.common.scope.read_scope (the department tree); a district finance token (finance with
    a ``department`` claim) is held here to its own department, failing closed, on a route not yet moved."""
    if principal.role == Role.DEPARTMENT or (principal.role == Role.FINANCE and principal.department is not None):
        if requested is not None and requested != principal.department:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="department: you may read only your own department")
        return principal.department
    return requested
