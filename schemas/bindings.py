"""CloudEvents binary content mode (HTTP ``ce-*`` headers, Kafka ``ce_*`` record headers, the data as the body or
value) and structured mode's ``data_base64``, turned into the structured event that ``schemas.events`` judges: one
validator, one set of limits, whatever the mode. An event is stored and published as its structured form, so the
same event sent in two modes is the same stored bytes (a resend in the other mode is a duplicate, not a conflict).

Errors name what the sender wrote: ``ce-type: …`` (HTTP header), ``ce_type: …`` (Kafka header), ``content-type: …``
for the data's content type, ``data.quantity: …`` for a field of the data (the body)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

import orjson

from schemas.events import judge_event

HTTP_PREFIX = "ce-"
KAFKA_PREFIX = "ce_"
# Structured mode is announced by its media type; anything else with ce- headers is binary mode (HTTP binding 3.1,
# Kafka binding 3.1).
STRUCTURED_PREFIX = "application/cloudevents"
# The data of our event types is JSON: application/json, text/json or any +json type; none given means JSON (the
# CloudEvents spec's default for datacontenttype).
_JSON_TYPE = re.compile(r"^(?:application|text)/(?:[^;\s]*\+)?json\s*(?:;|$)", re.IGNORECASE)
_NOT_PREFIXED = frozenset({"data", "event"})  # error fields that are not attributes, named as they are


def is_json_content(content_type: str | None) -> bool:
    return content_type is None or bool(_JSON_TYPE.match(content_type))


def is_binary(content_type: str | None, header_names: Iterable[str], prefix: str) -> bool:
    """Binary mode: a ``ce-``/``ce_`` header and no structured CloudEvents media type."""
    if content_type is not None and content_type.strip().lower().startswith(STRUCTURED_PREFIX):
        return False
    return any(name[:3].lower() == prefix for name in header_names)


def from_binary(attributes: dict[str, str], content_type: str | None, body: bytes) -> tuple[dict | None, list[str]]:
    """The structured event of a binary-mode message: ``attributes`` (names without the prefix, values decoded),
    the data's content type and the body. Errors name the header or the body; None then."""
    raw: dict[str, Any] = dict(attributes)
    raw.pop("data", None)  # a header cannot smuggle the data past the body
    raw.pop("data_base64", None)
    if content_type is not None:
        raw["datacontenttype"] = content_type
    if not is_json_content(content_type):
        return None, [f"content-type: the data must be JSON (application/json), got {content_type[:80]!r}"]
    if body.strip():
        try:
            raw["data"] = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return None, [f"data: the body is not valid JSON ({exc})"]
    return raw, []


def rename_errors(errors: list[str], prefix: str) -> list[str]:
    """The validator's ``type: …`` as the header the sender wrote: ``ce-type: …`` (or ``ce_type``); the data's
    content type as ``content-type``."""
    renamed = []
    for error in errors:
        field = re.split(r"[.:]", error, maxsplit=1)[0]
        if field == "datacontenttype":
            renamed.append("content-type" + error[len(field):])
        elif field in _NOT_PREFIXED:
            renamed.append(error)
        else:
            renamed.append(prefix + error)
    return renamed


def http_attributes(headers: Iterable[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    """``ce-*`` HTTP headers as attributes. Values are percent-decoded (HTTP binding 3.1.3.2); Starlette hands
    header bytes over as Latin-1, so raw UTF-8 from a sender that did not encode is read back as UTF-8."""
    attributes: dict[str, str] = {}
    for name, value in headers:
        name = name.lower()
        if not name.startswith(HTTP_PREFIX):
            continue
        try:
            attributes[name[3:]] = unquote(value.encode("latin-1").decode("utf-8"), errors="strict")
        except UnicodeError:
            return {}, [f"{name}: not UTF-8 (percent-encode the value's UTF-8 bytes)"]
    return attributes, []


def kafka_message(headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes]) -> tuple[dict[str, str], str | None,
                                                                                      list[str]] | None:
    """The attributes and content type of a binary-mode Kafka record, or None when the record is not in binary
    mode (its value is then a structured event or a batch). Header values are UTF-8, not percent-encoded (Kafka
    binding 3.2.3)."""
    pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
    content_type = next((_text(v) for k, v in pairs if k.lower() == "content-type"), None)
    if not is_binary(content_type, (k for k, _ in pairs), KAFKA_PREFIX):
        return None
    attributes: dict[str, str] = {}
    errors: list[str] = []
    for name, value in pairs:
        if name[:3].lower() != KAFKA_PREFIX:
            continue
        text = _text(value)
        if text is None:
            errors.append(f"{name.lower()}: not UTF-8")
        else:
            attributes[name[3:].lower()] = text
    return attributes, content_type, errors  # with errors, the attributes still name the dead letter


def _text(value: bytes | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        return None


def decode_data_base64(raw: dict) -> tuple[dict, list[str]]:
    """Structured mode's ``data_base64`` (base64 of the JSON data) as ``data``."""
    encoded = raw["data_base64"]
    if "data" in raw:
        return raw, ["data_base64: an event carries data or data_base64, not both"]
    if not isinstance(encoded, str):
        return raw, [f"data_base64: must be a base64 string, got {type(encoded).__name__}"]
    content_type = raw.get("datacontenttype")
    if not (content_type is None or isinstance(content_type, str) and is_json_content(content_type)):
        return raw, [f"datacontenttype: data_base64 must hold JSON (application/json), got {str(content_type)[:80]!r}"]
    try:
        data = orjson.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError) as exc:  # orjson.JSONDecodeError is a ValueError
        return raw, [f"data_base64: not base64 of JSON data ({exc})"]
    structured = {key: value for key, value in raw.items() if key != "data_base64"}
    structured["data"] = data
    return structured, []


def judge_structured(raw: Any) -> tuple[Any, dict | None, list[str], bytes | None]:
    """``judge_event`` on the structured form of ``raw``: that form (what is published and stored), the typed event
    or None, the errors, the canonical JSON."""
    event, errors, payload = judge_event(raw)
    if event is None:
        return rejudge_base64(raw, errors)
    return raw, event, errors, payload


def rejudge_base64(raw: Any, errors: list[str]) -> tuple[Any, dict | None, list[str], bytes | None]:
    """After ``judge_event`` refused ``raw`` with ``errors``: when it carries ``data_base64``, the event with that
    decoded as its ``data``, judged again (as ``judge_structured``). Only refused events pay for this: an event
    with ``data_base64`` has no ``data`` and is always refused first."""
    if type(raw) is not dict or "data_base64" not in raw:
        return raw, None, errors, None
    raw, errors = decode_data_base64(raw)
    if errors:
        return raw, None, errors, None
    return (raw, *judge_event(raw))
