"""Request and response contracts of the HTTP APIs. Money and quantities travel as decimal strings."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from schemas.catalogue import Meter, meters
from schemas.events import QUANTITY_PLACES
from schemas.money import MAX_QUANTITY, MAX_UNIT_PRICE


def _at_most_six_places(value: Decimal) -> Decimal:
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -6:
        raise ValueError("unit prices have at most 6 decimal places")
    return value


def _at_most_quantity_places(value: Decimal) -> Decimal:
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -QUANTITY_PLACES:
        raise ValueError(f"quantities have at most {QUANTITY_PLACES} decimal places")
    return value


UnitPrice = Annotated[Decimal, Field(ge=0, lt=MAX_UNIT_PRICE), AfterValidator(_at_most_six_places)]
TierBound = Annotated[Decimal, Field(gt=0, lt=MAX_QUANTITY), AfterValidator(_at_most_quantity_places)]


class Role:
    PROVIDER = "provider"
    FINANCE = "finance"
    DEPARTMENT = "department"
    ADMIN = "admin"
    EGOV = "egov"  # the e-government centre: accepts, approves or rejects resource applications (Art. 8–10)
    ALL = ("provider", "finance", "department", "admin", "egov")


class MeterCatalogue(BaseModel):
    """``GET /v1/meters``: the twelve meters of ``schemas/meters.json`` in its order, with units and names."""

    meters: list[Meter]


class RejectedEvent(BaseModel):
    index: int
    id: str | None
    errors: list[str]


class IngestResult(BaseModel):
    accepted: int
    rejected: list[RejectedEvent]


class DeadLetterOut(BaseModel):
    """Input that was not counted, with why: invalid at the edge of the Kafka path, a conflicting duplicate, or
    refused by the database. ``payload`` is the record or event as received (NUL spelled ``\\u0000``)."""

    id: int
    received_at: datetime
    reason: str
    errors: list[str]
    source: str | None
    event_id: str | None
    topic: str | None
    partition: int | None
    offset: int | None
    payload: str


class DeadLetterPage(BaseModel):
    dead_letters: list[DeadLetterOut]
    next_after_id: int | None = Field(description="pass as after_id for the next page; null on the last page")


DEPARTMENT_ID_PATTERN = r"^[A-Za-z0-9_.-]+$"
# A department's id, in the API and in a department token's ``department`` claim.
DepartmentId = Annotated[str, Field(min_length=1, max_length=64, pattern=DEPARTMENT_ID_PATTERN)]
# PostgreSQL text cannot hold NUL: refused with a 422 naming the field rather than failing in the database (500).
NO_NUL = r"^[^\x00]*$"


class DepartmentIn(BaseModel):
    id: DepartmentId
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]
    parent_id: DepartmentId | None = Field(None, description="the parent department (a district, the high-tech "
                                                             "zone); null at the top of the tree")


class DepartmentParentIn(BaseModel):
    parent_id: DepartmentId | None = Field(description="the new parent; null moves the department to the top")


class DepartmentOut(DepartmentIn):
    created_at: datetime


class PriceTier(BaseModel):
    up_to: TierBound | None
    unit_price: UnitPrice


class TieredPrice(BaseModel):
    tiers: Annotated[list[PriceTier], Field(min_length=1)]

    @model_validator(mode="after")
    def _ascending_and_open_ended(self) -> "TieredPrice":
        bounds = [t.up_to for t in self.tiers]
        if bounds[-1] is not None:
            raise ValueError("tiers: the last tier must have up_to null")
        if None in bounds[:-1]:
            raise ValueError("tiers: only the last tier may have up_to null")
        finite = bounds[:-1]
        if any(upper <= lower for lower, upper in zip(finite, finite[1:])):
            raise ValueError("tiers: up_to must increase")
        return self


class RateCardIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "version": "2026-11", "effective_from": "2026-11-01T00:00:00+08:00", "currency": "CNY",
        "prices": {"compute.vcpu": "0.12", "compute.memory": "0.05"},
    }]})

    version: Annotated[str, Field(min_length=1, max_length=64, pattern=NO_NUL)]
    effective_from: AwareDatetime
    currency: Literal["CNY"] = "CNY"
    prices: dict[str, UnitPrice | TieredPrice]

    @model_validator(mode="after")
    def _known_meters(self) -> "RateCardIn":
        unknown = sorted(set(self.prices) - set(meters()))
        if unknown:
            raise ValueError(f"prices: unknown meter(s) {', '.join(unknown)}")
        return self


class RateCardOut(RateCardIn):
    id: int
    unpriced_meters: list[str]
    created_at: datetime
    # maker/checker (schemas.rate_card_approvals): who proposed and approved it, and when (None on older cards)
    created_by: str | None = None
    proposed_at: datetime | None = None
    approved_by: str | None = None
    approved_at: datetime | None = None


class UsageRow(BaseModel):
    period_start: str | None
    department_id: str | None = None
    meter: str | None = None
    unit: str | None = None
    resource_id: str | None = None
    system: str | None = None
    quantity: str
    amount: str
    unpriced_quantity: str | None = None


class UsageReport(BaseModel):
    currency: Literal["CNY"] = "CNY"
    rows: list[UsageRow]
