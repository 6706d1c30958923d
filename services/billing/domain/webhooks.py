"""Webhooks (pure): which URLs a subscription may name, how a delivery is signed and verified, when a failed
delivery is tried again.

A delivery carries ``Govmeter-Timestamp`` (Unix seconds when this attempt was sent), ``Govmeter-Signature``
(``sha256=`` + hex HMAC-SHA256 of ``timestamp + "." + body`` under the subscription's secret) and
``Govmeter-Delivery`` (the same id on every attempt of one delivery). A receiver recomputes the HMAC over the
raw body, compares in constant time, rejects a timestamp more than ``TOLERANCE_SECONDS`` from its clock (a
captured request cannot be replayed later) and drops a delivery id it has already processed."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from typing import Iterable
from urllib.parse import urlsplit

BUDGET_ALERT = "budget.alert"
SPEND_WARNING = "spend.warning"
EVENT_TYPES = (BUDGET_ALERT, SPEND_WARNING)

DELIVERY_HEADER = "Govmeter-Delivery"
EVENT_HEADER = "Govmeter-Event"
TIMESTAMP_HEADER = "Govmeter-Timestamp"
SIGNATURE_HEADER = "Govmeter-Signature"
ATTEMPT_HEADER = "Govmeter-Attempt"
TOLERANCE_SECONDS = 300
MAX_URL_LENGTH = 2048


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Govmeter-Signature`` value of ``body`` sent at ``timestamp`` (Unix seconds)."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signature_valid(secret: str, timestamp: str | None, body: bytes, signed: str | None, now: float,
                    tolerance: int = TOLERANCE_SECONDS) -> bool:
    """What a receiver checks: a well-formed timestamp within ``tolerance`` of its clock, and the signature."""
    if not timestamp or not signed or not timestamp.isascii() or not timestamp.isdigit():
        return False
    if abs(now - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, int(timestamp), body), signed)


def retry_delay(attempts: int, base: float, cap: float) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: base, 2·base, 4·base, … at most ``cap``."""
    return min(cap, base * 2 ** min(attempts - 1, 60))


def _host_matches(host: str, entry: str) -> bool:
    entry = entry.strip().lower().strip("[]")
    if not entry:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        try:
            return address in ipaddress.ip_network(entry, strict=False)  # an address or a CIDR block
        except ValueError:
            return False
    if entry.startswith("*."):
        return host.endswith(entry[1:]) and len(host) > len(entry) - 1
    return host == entry.rstrip(".")


def url_refusal(url: str, allowed_hosts: Iterable[str]) -> str | None:
    """Why a subscription may not name ``url`` ("url: …"), or None. Only http and https, no credentials in the
    URL, and a host on the allowlist (names exactly or ``*.suffix``; IP addresses or CIDR blocks): the billing
    API sends requests from inside the cloud, so what it may reach is the operator's decision (SSRF)."""
    if len(url) > MAX_URL_LENGTH:
        return f"url: at most {MAX_URL_LENGTH} characters"
    if not url.isprintable() or any(c.isspace() for c in url):
        return "url: no spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"url: not a valid URL ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return "url: only http and https URLs"
    if parts.username is not None or parts.password is not None:
        return "url: no user or password in the URL (the signature authenticates the sender)"
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return "url: a host is required"
    if port == 0:
        return "url: not a valid port"
    allowed = [entry for entry in allowed_hosts if entry.strip()]
    if not any(_host_matches(host, entry) for entry in allowed):
        return f"url: host {host} is not allowed (GOVMETER_WEBHOOK_ALLOWED_HOSTS)"
    return None
