"""CloudEvents 1.0 contracts for what the provider publishes, and the one validator that the ingest API and the
metering worker share, so an event produced straight into Kafka is judged exactly like one posted over HTTP.

The contracts are TypedDicts validated by pydantic v2: the metering worker validates every event it reads, and a
TypedDict validates about three times faster than a BaseModel here (5 µs against 15 µs an event), which is the
difference between meeting the worker's throughput target or not. Checks that relate two fields (end after
start, an owner for an activation) and the quantity's precision follow in plain Python in ``validate_event``."""

from __future__ import annotations

import re
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
# spends ~1.4 µs an event counting digits, the common case costs ~0.4 µs in Python, and the metering worker
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
NonEmpty = Annotated[str, Field(min_length=1, max_length=256)]


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
    system: NotRequired[str]
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
    datacontenttype: NotRequired[str | None]


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


def _cross_field_errors(event: dict, raw: dict) -> list[str]:
    data = event["data"]
    if "quantity" in data:
        errors = _quantity_errors(data["quantity"], raw["data"]["quantity"])
        if errors:
            return errors
    if "end" in data and data["end"] <= data["start"]:
        return ["data.end: must be after data.start"]
    if data.get("action") in ("activated", "changed") and not data.get("department_id"):
        return [f"data.department_id: required when action is {data['action']}"]
    return []


def validate_event(raw: Any) -> tuple[dict | None, list[str]]:
    """Return the typed event (a dict), or None and a list of ``"field: why"`` errors."""
    if not isinstance(raw, dict):
        return None, [f"event: must be a JSON object, got {type(raw).__name__}"]
    adapter = EVENT_ADAPTERS.get(raw.get("type"))  # type: ignore[arg-type]
    if adapter is None:
        return None, [f"type: must be one of {', '.join(EVENT_TYPES)}, got {raw.get('type')!r}"]
    try:
        event = adapter.validate_python(raw)
    except ValidationError as exc:
        return None, [_describe(e) for e in exc.errors(include_url=False)]
    errors = _cross_field_errors(event, raw)
    return (None, errors) if errors else (event, [])


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
