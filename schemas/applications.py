"""Contracts of resource applications (Art. 8–10): what a department applies for, the cost estimate it sees
first, the steps of the e-government centre and the provider, and the application as read back."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StrictInt, \
    field_validator

from schemas.api import DepartmentId, _at_most_quantity_places
from schemas.billing import Yuan
from schemas.catalogue import meters
from schemas.events import MAX_SPEC_ENTRIES, MAX_TEXT, PRINTABLE

# The lifecycle event the fulfilment emits carries system, kind, spec and the resource id: held to the events'
# own limits here, so that an accepted application never makes an event the ingest validator would refuse.
Printable = Annotated[str, Field(min_length=1, max_length=MAX_TEXT, pattern=PRINTABLE)]
SpecValue = Annotated[str, Field(max_length=MAX_TEXT, pattern=PRINTABLE.replace("+$", "*$"))] | \
    Annotated[StrictInt, Field(ge=-(10 ** 15), le=10 ** 15)] | StrictBool
# A reason is prose (newlines welcome) but no NUL nor other C0 control but tab and newline.
Prose = Annotated[str, Field(min_length=1, max_length=2000, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]+$")]
# At most a billion units held (or GB a month) per item: far above any one application, far below the limits.
ItemQuantity = Annotated[Decimal, Field(gt=0, lt=10 ** 9), AfterValidator(_at_most_quantity_places)]
MAX_ITEMS = 12


def _year_in_range(value: date) -> date:
    if not 2000 <= value.year <= 2099:
        raise ValueError("the year must lie in 2000–2099")
    return value


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    meter: str = Field(max_length=64, description="a catalogue meter (GET /v1/meters)")
    quantity: ItemQuantity = Field(description="rate meters: units held (4 vCPU, 500 GiB); volume meters: the "
                                               "expected monthly volume (GB)")

    @field_validator("meter")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in meters():
            raise ValueError("unknown meter (see GET /v1/meters)")
        return value


class ApplicationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "system": "政务服务平台", "kind": "vm", "spec": {"flavor": "c6.xlarge", "os": "openEuler"},
        "items": [{"meter": "compute.vcpu", "quantity": "4"}, {"meter": "compute.memory", "quantity": "16"}],
        "reason": "新建预约办事子系统", "wanted_by": "2026-12-15",
    }]})

    department_id: DepartmentId | None = Field(None, description="a department token applies for its own "
                                                                 "(default); admin names one")
    system: Printable = Field(description="the information system the resource serves")
    kind: Annotated[str, Field(min_length=1, max_length=64, pattern=PRINTABLE)] = Field(
        description="the resource kind of the lifecycle event (vm, disk, bucket, eip, …)")
    spec: dict[Printable, SpecValue] = Field(default_factory=dict, max_length=MAX_SPEC_ENTRIES)
    items: list[ItemIn] = Field(min_length=1, max_length=MAX_ITEMS)
    reason: Prose
    wanted_by: Annotated[date, AfterValidator(_year_in_range)] | None = None

    @field_validator("items")
    @classmethod
    def _one_item_per_meter(cls, items: list[ItemIn]) -> list[ItemIn]:
        seen = [i.meter for i in items]
        if len(seen) != len(set(seen)):
            raise ValueError("each meter at most once")
        return items


class EstimateLine(BaseModel):
    meter: str
    unit: str
    monthly_quantity: str
    unit_price: str | None = Field(None, description="flat price of the card; null when tiered or unpriced")
    tiered: bool = False
    amount: Yuan


class Estimate(BaseModel):
    """What a month of the items costs under the rate card in force now, priced by the bills' code."""

    month: str = Field(description="the month the estimate is for (this month: its number of hours)")
    rate_card: str | None = Field(description="version of the card in force; null: none, everything unpriced")
    currency: Literal["CNY"] = "CNY"
    lines: list[EstimateLine]
    total: Yuan
    unpriced_meters: list[str]


class StepIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Prose | None = Field(None, description="required to reject; kept with the step")


class FulfilIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resource_id: Printable = Field(description="the provider's id of the resource (the lifecycle event's subject)")
    source: Printable = Field(description="the CloudEvents source of the lifecycle event: one the provider token "
                                          "may write")
    effective_at: AwareDatetime | None = Field(None, description="when billing starts; default now; not before "
                                                                 "the approval nor in the future")
    trial_days: int | None = Field(None, ge=1, le=90, description="a trial (试运行) of this many days from "
                                   "effective_at: its usage is metered but billed at the trial rate")


class StepOut(BaseModel):
    seq: int
    action: str
    state: str
    actor: str
    role: str
    at: datetime
    note: str | None


class Clock(BaseModel):
    due_at: datetime | None
    calendar: str | None = Field(description="chinese-calendar, or weekdays when a day counted lay outside the "
                                              "years the package knows (the due date is then provisional)")
    done_at: datetime | None
    late: bool = Field(description="ran out before its step was done (or, still running, has run out)")


class TrialOut(BaseModel):
    phase: Literal["trial", "live"] = Field(description="trial while the window runs; live after it")
    starts_at: datetime
    planned_ends_at: datetime
    ends_at: datetime = Field(description="the planned end, or when the department went live early")
    rate: str = Field(description="the fraction of the normal price the trial's usage is billed at")
    went_live_by: str | None
    went_live_at: datetime | None


class ApplicationOut(BaseModel):
    id: int
    department_id: str
    system: str
    kind: str
    spec: dict
    items: list[dict]
    reason: str
    wanted_by: date | None
    state: str
    estimate: Yuan
    estimate_rate_card: str | None
    submitted_by: str
    submitted_at: datetime
    approval: Clock
    fulfilment: Clock
    overdue: bool = Field(description="the clock now running (approval or fulfilment) has run out")
    resource_id: str | None
    trial: TrialOut | None = Field(None, description="the trial phase a fulfilment asked for, if any")
    steps: list[StepOut]
