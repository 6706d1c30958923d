"""CloudEvents 1.0 contracts for what the provider publishes, and the one validator that the ingest API and the
metering worker share, so an event produced straight into Kafka is judged exactly like one posted over HTTP.

The contracts are TypedDicts validated by pydantic v2: the metering worker validates every event it reads, and a
TypedDict validates several times faster than a BaseModel here, which decides whether the worker meets its
throughput target (figures: docs/benchmark.md, "Where the time goes"). Checks that relate two fields (end after
start, an owner for an activation) and the quantity's precision follow in plain Python in ``validate_event``."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

import orjson
from pydantic import AwareDatetime, ConfigDict, Field, TypeAdapter, ValidationError, WithJsonSchema, with_config
from typing_extensions import NotRequired, TypedDict

from schemas.catalogue import meters

USAGE_TYPE = "gov.cloud.usage.v1"
RESOURCE_TYPE = "gov.cloud.resource.v1"
UTILIZATION_TYPE = "gov.cloud.utilization.v1"
EVENT_TYPES = (USAGE_TYPE, RESOURCE_TYPE, UTILIZATION_TYPE)

QUANTITY_PLACES = 9  # quantities are exact to 1e-9 of a unit; splitting works at that scale
QUANTITY_DIGITS = 30

MeterKey = Literal[tuple(meters())]  # type: ignore[valid-type]  # the catalogue is data: meters.json
# The precision rule (≤ 30 digits, ≤ 9 places) is checked after type validation, in ``_quantity_errors``: pydantic
# counting digits costs a few times the quick check in Python (docs/benchmark.md), and the metering worker
# validates every event. Anything the quick test does not clear is judged by ``CONTRACT_QUANTITY`` (same words).
CONTRACT_QUANTITY = TypeAdapter(Annotated[Decimal, Field(ge=0, max_digits=QUANTITY_DIGITS,
                                                         decimal_places=QUANTITY_PLACES)])
_MAX_WHOLE_DIGITS = QUANTITY_DIGITS - QUANTITY_PLACES
# A quantity sent as a string: plain notation in ASCII digits, ≤ 21 whole digits (leading zeros aside), ≤ 9 places
# (trailing zeros aside). Python's Decimal would also take "١٢٣", "1_000", " 1" and "1e3": the validator refuses
# what this pattern refuses, and the published JSON Schema carries the same pattern. It means the same in ECMA 262
# and in Python: no \d (Unicode digits in Python), and it ends with (?![\s\S]), not "$", which Python lets match
# before a trailing newline.
QUANTITY_PATTERN = (rf"^(?=[0-9])0*(?:[1-9][0-9]{{0,{_MAX_WHOLE_DIGITS - 1}}})?"
                    rf"(?:\.(?=[0-9])[0-9]{{0,{QUANTITY_PLACES}}}0*)?(?![\s\S])")
_QUANTITY_TEXT = re.compile(QUANTITY_PATTERN)
Quantity = Annotated[Decimal, Field(ge=0), WithJsonSchema({"anyOf": [  # documents the rule
    {"type": "number", "minimum": 0, "exclusiveMaximum": 10**_MAX_WHOLE_DIGITS},
    {"type": "string", "pattern": QUANTITY_PATTERN}]})]
Percent = Annotated[Decimal, Field(ge=0, le=100)]

# Limits of what the store holds, checked at the edge (HTTP and Kafka alike) so that nothing valid here is refused
# later by PostgreSQL or explodes in the worker. Documented in docs/contracts.md ("Input limits").
MAX_TEXT = 256  # characters of an id, source, subject, department id, system, spec value
# C0 and C1 control characters (NUL above all: PostgreSQL text cannot hold it) have no place in an identifier.
PRINTABLE = r"^[^\x00-\x1f\x7f-\x9f]+$"
# The control-character rule is documented in the JSON Schema here and checked in ``_control_errors``, on the
# serialised event first: one C-level scan instead of a regular expression per field on the worker's hot path.
NonEmpty = Annotated[str, Field(min_length=1, max_length=MAX_TEXT, json_schema_extra={"pattern": PRINTABLE})]
Text = Annotated[str, Field(max_length=MAX_TEXT, json_schema_extra={"pattern": PRINTABLE.replace("+$", "*$")})]
FIRST_YEAR, LAST_YEAR = 2000, 2099  # instants (time, start, end, effective_at) lie in these years
MAX_INTERVAL = timedelta(days=31)  # a usage or utilisation interval covers at most a calendar month's length
MAX_NESTING = 16  # levels of JSON objects and arrays in one event (the envelope and data are two)
MAX_EVENT_BYTES = 64 * 1024  # one event's JSON
MAX_SPEC_ENTRIES = 64


# CloudEvents extension attributes (and extra data fields) are accepted and kept in the stored payload, which is the
# event as received; the typed event leaves them out, which validates faster than copying them.
_OPEN = ConfigDict(extra="ignore", json_schema_extra={"additionalProperties": True})


@with_config(_OPEN)
class UsageData(TypedDict):
    meter: MeterKey
    quantity: Quantity
    start: AwareDatetime
    end: AwareDatetime  # must be after start
    attributes: NotRequired[dict[str, Any]]


@with_config(_OPEN)
class ResourceData(TypedDict):
    action: Literal["activated", "changed", "terminated"]
    department_id: NotRequired[NonEmpty | None]  # required unless terminated
    system: NotRequired[Text]
    effective_at: AwareDatetime
    kind: Literal["vm", "volume", "bucket", "ip", "bandwidth", "lb", "security"]
    spec: NotRequired[dict[str, Any]]


@with_config(_OPEN)
class UtilizationData(TypedDict):
    cpu_percent: Percent
    memory_percent: Percent
    start: AwareDatetime
    end: AwareDatetime


@with_config(_OPEN)
class _Envelope(TypedDict):
    specversion: Literal["1.0"]
    id: NonEmpty
    source: NonEmpty
    subject: NonEmpty
    time: AwareDatetime
    datacontenttype: NotRequired[Text | None]


class UsageEvent(_Envelope):
    type: Literal["gov.cloud.usage.v1"]
    data: UsageData


class ResourceEvent(_Envelope):
    type: Literal["gov.cloud.resource.v1"]
    data: ResourceData


class UtilizationEvent(_Envelope):
    type: Literal["gov.cloud.utilization.v1"]
    data: UtilizationData


CloudEvent = UsageEvent | ResourceEvent | UtilizationEvent
EVENT_ADAPTERS: dict[str, TypeAdapter] = {
    USAGE_TYPE: TypeAdapter(UsageEvent),
    RESOURCE_TYPE: TypeAdapter(ResourceEvent),
    UTILIZATION_TYPE: TypeAdapter(UtilizationEvent),
}
resource_data_adapter = TypeAdapter(ResourceData)


def _describe(error: dict[str, Any]) -> str:
    field = ".".join(str(part) for part in error["loc"]) or "event"
    return f"{field}: {error['msg']}"


def _quantity_errors(quantity: Decimal, raw: Any) -> list[str]:
    if isinstance(raw, str):
        if _QUANTITY_TEXT.fullmatch(raw):
            return []  # the pattern holds the precision rule too
        try:
            CONTRACT_QUANTITY.validate_python(raw)  # pydantic's words for what it refuses too (too many places …)
        except ValidationError as exc:
            return [f"data.quantity: {e['msg']}" for e in exc.errors(include_url=False)]
        return [f"data.quantity: must be a plain decimal in ASCII digits, at most {_MAX_WHOLE_DIGITS} before the "
                f"point and {QUANTITY_PLACES} after it, got {raw[:40]!r}"]
    _, digits, exponent = quantity.as_tuple()
    if exponent >= -QUANTITY_PLACES and len(digits) + max(exponent, 0) <= _MAX_WHOLE_DIGITS:  # type: ignore[operator]
        return []  # at most 9 places and 21 whole digits: within both limits
    try:
        CONTRACT_QUANTITY.validate_python(raw)  # ≥ 0 already holds: only the precision can fail here
    except ValidationError as exc:
        return [f"data.quantity: {e['msg']}" for e in exc.errors(include_url=False)]
    return []


def _instant_errors(event: dict) -> list[str]:
    # Years as written (in the instant's own offset): attribute reads, where comparing aware datetimes costs a
    # UTC conversion each, and the worker checks three instants an event.
    data = event["data"]
    start, end = data.get("start"), data.get("end")
    if not (FIRST_YEAR <= event["time"].year <= LAST_YEAR
            and (FIRST_YEAR <= start.year <= LAST_YEAR and FIRST_YEAR <= end.year <= LAST_YEAR if start is not None
                 else FIRST_YEAR <= data["effective_at"].year <= LAST_YEAR)):
        return _year_errors(event)
    if end is not None:
        if end <= start:
            return ["data.end: must be after data.start"]
        if end.toordinal() - start.toordinal() >= 29 and end - start > MAX_INTERVAL:  # dates first: cheaper
            return [f"data.end: an interval covers at most {MAX_INTERVAL.days} days"]
    return []


def _year_errors(event: dict) -> list[str]:
    data = event["data"]
    for field, instant in (("time", event["time"]), ("data.start", data.get("start")), ("data.end", data.get("end")),
                           ("data.effective_at", data.get("effective_at"))):
        if instant is not None and not FIRST_YEAR <= instant.year <= LAST_YEAR:
            return [f"{field}: the year must lie in {FIRST_YEAR}–{LAST_YEAR}, got {instant.isoformat()}"]
    return []


def _spec_errors(spec: dict[str, Any]) -> list[str]:
    if len(spec) > MAX_SPEC_ENTRIES:
        return [f"data.spec: at most {MAX_SPEC_ENTRIES} entries"]
    for path, text in _strings(spec, "data.spec"):
        if len(text) > MAX_TEXT or _CONTROL.search(text):
            return [f"{path}: at most {MAX_TEXT} characters, no control characters"]
    return []


def _cross_field_errors(event: dict, raw: dict) -> list[str]:
    data = event["data"]
    if "quantity" in data:
        errors = _quantity_errors(data["quantity"], raw["data"]["quantity"])
        if errors:
            return errors
    errors = _instant_errors(event)
    if errors:
        return errors
    if data.get("action") in ("activated", "changed") and not data.get("department_id"):
        return [f"data.department_id: required when action is {data['action']}"]
    if data.get("spec"):
        return _spec_errors(data["spec"])
    return []


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_TEXT_FIELDS = ("id", "source", "subject", "datacontenttype")
_DATA_TEXT_FIELDS = ("department_id", "system")


def _control_errors(event: dict) -> list[str]:
    for field in _TEXT_FIELDS:
        if isinstance(event.get(field), str) and _CONTROL.search(event[field]):
            return [f"{field}: must not contain control characters"]
    for field in _DATA_TEXT_FIELDS:
        if isinstance(event["data"].get(field), str) and _CONTROL.search(event["data"][field]):
            return [f"data.{field}: must not contain control characters"]
    return []


def _strings(value: Any, path: str):
    """(path, text) of every key and string value inside ``value``."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}.{key}", key
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}.{index}")


def _too_deep(value: Any, path: str, depth: int) -> str | None:
    if depth > MAX_NESTING:
        return path
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in children:
        if isinstance(item, (dict, list)):
            found = _too_deep(item, f"{path}.{key}" if path else str(key), depth + 1)
            if found is not None:
                return found
    return None


def _storable_errors(raw: dict) -> tuple[list[str], bytes | None]:
    """What PostgreSQL and the worker cannot hold, anywhere in the event: NUL characters, deep nesting, sheer size;
    and the event as stored (its canonical JSON) when it can be. One C-level serialisation and a few byte scans
    answer the common case; the walks run only when they show a suspect."""
    try:
        text = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):  # orjson stops at 254 levels; the walk stops at MAX_NESTING
        too_deep = _too_deep(raw, "", 1)
        if too_deep is not None:
            return [f"{too_deep or 'event'}: nested deeper than {MAX_NESTING} levels"], None
        # An integer beyond 64 bits (only a Python caller can hand one over: orjson parses such numbers as floats)
        text = json.dumps(raw, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    if (len(text) <= MAX_EVENT_BYTES and b"\\u0000" not in text
            and text.count(b"{") + text.count(b"[") <= MAX_NESTING):
        return [], text
    if len(text) > MAX_EVENT_BYTES:
        return [f"event: {len(text)} bytes of JSON, at most {MAX_EVENT_BYTES}"], None
    path = _too_deep(raw, "", 1)
    if path is not None:
        return [f"{path or 'event'}: nested deeper than {MAX_NESTING} levels"], None
    for path, string in _strings(raw, ""):
        if "\x00" in string:
            return [f"{path.lstrip('.') or 'event'}: contains a NUL character, which cannot be stored"], None
    return [], text


def validate_event(raw: Any) -> tuple[dict | None, list[str]]:
    """Return the typed event (a dict), or None and a list of ``"field: why"`` errors. Never raises: whatever JSON
    arrives, the answer is an event or its errors."""
    event, errors, _ = judge_event(raw)
    return event, errors


def judge_event(raw: Any) -> tuple[dict | None, list[str], bytes | None]:
    """``validate_event``, and the event's canonical JSON (as stored) when it is valid."""
    if not isinstance(raw, dict):
        return None, [f"event: must be a JSON object, got {type(raw).__name__}"], None
    kind = raw.get("type")
    adapter = EVENT_ADAPTERS.get(kind) if isinstance(kind, str) else None
    if adapter is None:
        return None, [f"type: must be one of {', '.join(EVENT_TYPES)}, got {_short(kind)}"], None
    errors, payload = _storable_errors(raw)
    if errors:
        return None, errors, None
    try:
        event = adapter.validate_python(raw)
    except ValidationError as exc:
        return None, [_describe(e) for e in exc.errors(include_url=False)], None
    errors = _cross_field_errors(event, raw)
    # In orjson's output C0 characters are escaped (a backslash shows them); DEL and C1 (\xc2\x80-\x9f) stay raw.
    if not errors and (b"\\" in payload or b"\x7f" in payload or b"\xc2" in payload):  # type: ignore[operator]
        errors = _control_errors(event)
    return (None, errors, None) if errors else (event, [], payload)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def event_identity(raw: Any) -> tuple[str | None, str | None]:
    """(source, id) of a raw event as far as it can be read, for error reports and dead letters."""
    if isinstance(raw, dict):
        source, event_id = raw.get("source"), raw.get("id")
        return (source if isinstance(source, str) else None, event_id if isinstance(event_id, str) else None)
    return None, None


def canonical_payload(raw: dict) -> bytes:
    """The event as stored: its JSON with sorted keys. Two deliveries of one event store the same bytes; a
    duplicate id whose bytes differ is a conflicting duplicate."""
    return orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
