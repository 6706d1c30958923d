"""Webhook signatures, the retry schedule and which URLs a subscription may name (pure)."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given, strategies as st

from services.billing.domain.webhooks import (
    TOLERANCE_SECONDS,
    retry_delay,
    signature,
    signature_valid,
    url_refusal,
)

LOOPBACK = ["127.0.0.1", "::1", "localhost"]


def test_signature_is_hmac_sha256_over_timestamp_dot_body_in_hex():
    expected = hmac.new(b"whsec_x", b"1700000000.{\"a\":1}", hashlib.sha256).hexdigest()
    assert signature("whsec_x", 1700000000, b'{"a":1}') == "sha256=" + expected


@given(st.binary(max_size=200), st.integers(0, TOLERANCE_SECONDS))
def test_a_signature_verifies_within_the_tolerance_and_not_for_another_body_secret_or_old_timestamp(body, skew):
    sent = 1_800_000_000
    signed = signature("s3cret", sent, body)
    assert signature_valid("s3cret", str(sent), body, signed, now=sent + skew)
    assert signature_valid("s3cret", str(sent), body, signed, now=sent - skew)
    assert not signature_valid("s3cret", str(sent), body + b" ", signed, now=sent)
    assert not signature_valid("other", str(sent), body, signed, now=sent)
    assert not signature_valid("s3cret", str(sent + 1), body, signed, now=sent)  # the timestamp is signed too
    assert not signature_valid("s3cret", str(sent), body, signed, now=sent + TOLERANCE_SECONDS + 1)  # a replay
    assert not signature_valid("s3cret", None, body, signed, now=sent)
    assert not signature_valid("s3cret", "-5", body, signed, now=sent)


def test_retries_back_off_exponentially_up_to_the_cap():
    assert [retry_delay(n, 2, 60) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]
    assert retry_delay(10_000, 2, 3600) == 3600


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/hook", "https://localhost/hook?x=1", "http://[::1]:9000/", "http://LOCALHOST./a",
])
def test_loopback_urls_are_allowed_by_default(url):
    assert url_refusal(url, LOOPBACK) is None


@pytest.mark.parametrize("url, why", [
    ("ftp://127.0.0.1/hook", "only http and https"),
    ("file:///etc/passwd", "only http and https"),
    ("http://user:pw@127.0.0.1/", "no user or password"),
    ("http://169.254.169.254/latest/meta-data", "not allowed"),  # the cloud's metadata service
    ("http://127.0.0.1.nip.io/", "not allowed"),
    ("http://10.0.0.5/", "not allowed"),
    ("http:///nohost", "a host is required"),
    ("http://127.0.0.1:99999/", "not a valid URL"),
    ("http://[::1/", "not a valid URL"),
    ("http://127.0.0.1/a b", "no spaces"),
    ("http://127.0.0.1/\x00", "no spaces or control characters"),
])
def test_other_urls_are_refused_with_the_reason(url, why):
    refusal = url_refusal(url, LOOPBACK)
    assert refusal is not None and refusal.startswith("url: ") and why in refusal


def test_the_allowlist_takes_names_wildcard_suffixes_addresses_and_cidr_blocks():
    allowed = ["hooks.finance.gov.cn", "*.tz.gov.cn", "10.20.0.0/16", "fd00::/8"]
    assert url_refusal("https://hooks.finance.gov.cn/x", allowed) is None
    assert url_refusal("https://a.b.tz.gov.cn/x", allowed) is None
    assert url_refusal("https://tz.gov.cn/x", allowed) is not None  # *.suffix: subdomains only
    assert url_refusal("https://eviltz.gov.cn/x", allowed) is not None
    assert url_refusal("http://10.20.3.4:8443/x", allowed) is None
    assert url_refusal("http://10.21.3.4/x", allowed) is not None
    assert url_refusal("http://[fd12::1]/x", allowed) is None
    assert url_refusal("http://127.0.0.1/x", allowed) is not None
    assert url_refusal("http://127.0.0.1/x", []) is not None
