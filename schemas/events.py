"""CloudEvents 1.0 contracts for what the provider publishes, and the one validator that the ingest API and the
metering worker share, so an event produced straight into Kafka is judged exactly like one posted over HTTP."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Union

import orjson
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.catalogue import meters

USAGE_TYPE = "gov.cloud.usage.v1"
RESOURCE_TYPE = "gov.cloud.resource.v1"
UTILIZATION_TYPE = "gov.cloud.utilization.v1"
EVENT_TYPES = (USAGE_TYPE, RESOURCE_TYPE, UTILIZATION_TYPE)

QUANTITY_PLACES = 9  # quantities are exact to 1e-9 of a unit; splitting works at that scale


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _canonical_decimal(value: Decimal) -> Decimal:
    # "4.50" and "4.5" are the same quantity: keep one spelling so duplicate detection compares values.
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()


def _known_meter(value: str) -> str:
    if value not in meters():
        raise ValueError(f"unknown meter {value!r}; see the meter catalogue")
    return value


def _at_most_places(value: Decimal) -> Decimal:
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -QUANTITY_PLACES:
        raise ValueError(f"at most {QUANTITY_PLACES} decimal places")
    return value


Instant = Annotated[AwareDatetime, AfterValidator(_utc)]
Quantity = Annotated[
    Decimal, Field(ge=0, max_digits=30), AfterValidator(_at_most_places), AfterValidator(_canonical_decimal)
]
Percent = Annotated[Decimal, Field(ge=0, le=100)]
NonEmpty = Annotated[str, Field(min_length=1, max_length=256)]


class _Interval(BaseModel):
    start: Instant
    end: Instant

    @model_validator(mode="after")
    def _end_after_start(self) -> "_Interval":
        if self.end <= self.start:
            raise ValueError("end: must be after start")
        return self


class UsageData(_Interval):
    meter: Annotated[str, AfterValidator(_known_meter)]
    quantity: Quantity
    attributes: dict[str, Any] = {}


class ResourceData(BaseModel):
    action: Literal["activated", "changed", "terminated"]
    department_id: NonEmpty | None = None
    system: str = ""
    effective_at: Instant
    kind: Literal["vm", "volume", "bucket", "ip", "bandwidth", "lb", "security"]
    spec: dict[str, Any] = {}

    @model_validator(mode="after")
    def _owner_named(self) -> "ResourceData":
        if self.action != "terminated" and not self.department_id:
            raise ValueError(f"department_id: required when action is {self.action}")
        return self


class UtilizationData(_Interval):
    cpu_percent: Percent
    memory_percent: Percent


class _CloudEvent(BaseModel):
    model_config = ConfigDict(extra="allow")  # CloudEvents extension attributes are kept, not refused

    specversion: Literal["1.0"]
    id: NonEmpty
    source: NonEmpty
    subject: NonEmpty
    time: Instant
    datacontenttype: str | None = None

    def dedupe_key(self) -> tuple[str, str]:
        return (self.source, self.id)

    def payload_hash(self) -> bytes:
        """Hash of the normalised event: a redelivery hashes the same, a changed payload does not."""
        body = self.model_dump(mode="json")
        return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).digest()


class UsageEvent(_CloudEvent):
    type: Literal["gov.cloud.usage.v1"]
    data: UsageData


class ResourceEvent(_CloudEvent):
    type: Literal["gov.cloud.resource.v1"]
    data: ResourceData


class UtilizationEvent(_CloudEvent):
    type: Literal["gov.cloud.utilization.v1"]
    data: UtilizationData


CloudEvent = Union[UsageEvent, ResourceEvent, UtilizationEvent]
_MODEL_BY_TYPE: dict[str, type[_CloudEvent]] = {
    USAGE_TYPE: UsageEvent,
    RESOURCE_TYPE: ResourceEvent,
    UTILIZATION_TYPE: UtilizationEvent,
}


def _describe(error: dict[str, Any]) -> str:
    field = ".".join(str(part) for part in error["loc"]) or "event"
    message = error["msg"].removeprefix("Value error, ")
    if message.startswith(("end: ", "department_id: ")):  # model-level checks name their own field
        name, _, why = message.partition(": ")
        return f"{field + '.' if field != 'event' else ''}{name}: {why}"
    return f"{field}: {message}"


def validate_event(raw: Any) -> tuple[CloudEvent | None, list[str]]:
    """Return the typed event, or None and a list of ``"field: why"`` errors."""
    if not isinstance(raw, dict):
        return None, [f"event: must be a JSON object, got {type(raw).__name__}"]
    event_type = raw.get("type")
    model = _MODEL_BY_TYPE.get(event_type) if isinstance(event_type, str) else None
    if model is None:
        return None, [f"type: must be one of {', '.join(EVENT_TYPES)}, got {event_type!r}"]
    try:
        return model.model_validate(raw), []  # type: ignore[return-value]
    except ValidationError as exc:
        return None, [_describe(e) for e in exc.errors(include_url=False)]


def event_identity(raw: Any) -> tuple[str | None, str | None]:
    """(source, id) of a raw event as far as it can be read, for error reports and dead letters."""
    if isinstance(raw, dict):
        source, event_id = raw.get("source"), raw.get("id")
        return (source if isinstance(source, str) else None, event_id if isinstance(event_id, str) else None)
    return None, None
