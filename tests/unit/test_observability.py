"""The pure parts of metrics and logs: bounded labels, the reason label, masking tokens, the JSON line."""

from __future__ import annotations

import io
import logging

import orjson

from services.common.auth import issue_token
from services.common.logs import RequestIdFilter, GovmeterJsonFormatter, redact, request_id
from services.common.metrics import OTHER, UNKNOWN, BoundedLabel, error_field
from services.common.observability import incoming_request_id


def test_a_bounded_label_passes_the_first_values_and_folds_the_rest_into_other():
    label = BoundedLabel(2)
    assert [label(v) for v in ("a", "b", "c", "a", "d", None, "")] == ["a", "b", OTHER, "a", OTHER, UNKNOWN, UNKNOWN]
    assert len(BoundedLabel(5)("x" * 1000)) == 128


def test_the_reason_of_a_rejected_event_is_its_first_errors_field():
    assert error_field("data.quantity: must be at least 0") == "data.quantity"
    assert error_field("event: 70000 bytes of JSON, at most 65536") == "event"


def test_tokens_are_masked_in_log_text():
    token = issue_token("admin")
    assert token not in redact(f"Authorization: Bearer {token}")
    assert token not in redact(f"saw {token} in a URL")
    assert redact("an ordinary message about 12 events") == "an ordinary message about 12 events"


def test_a_log_record_is_one_json_line_with_time_level_logger_message_and_request_id():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(GovmeterJsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("govmeter.test.json")
    logger.addHandler(handler)
    logger.propagate = False
    token = request_id.set("req-1")
    try:
        logger.warning("posted %d events with %s", 3, "Bearer " + issue_token("provider"), extra={"route": "/v1/x"})
    finally:
        request_id.reset(token)
    logger.warning("outside a request")
    first, second = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert (first["level"], first["logger"], first["request_id"], first["route"]) == (
        "WARNING", "govmeter.test.json", "req-1", "/v1/x")
    assert first["message"] == "posted 3 events with [redacted]" and first["time"].endswith("+00:00")
    assert "request_id" not in second


def test_a_client_request_id_is_kept_only_when_printable_and_short():
    assert incoming_request_id(b"abc-123_x.y") == "abc-123_x.y"
    for bad in (b"", None, b"a" * 129, b"with space", b"new\nline", "日本".encode()):
        made = incoming_request_id(bad)
        assert len(made) == 32 and made != bad
