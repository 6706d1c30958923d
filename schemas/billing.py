"""Contracts of the billing API: bills, periods, adjustments, budgets, alerts, the ledger. Money travels as a
decimal string with two places, quantities as plain decimal strings."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer

from schemas.api import DEPARTMENT_ID_PATTERN, NO_NUL
from schemas.money import MAX_AMOUNT, yuan_text
from schemas.periods import MONTH_PATTERN, canonical_month

# Checked by the one month parser (schemas.periods); the pattern is only shown in the JSON Schema.
Month = Annotated[str, AfterValidator(canonical_month),
                  Field(examples=["2026-11"], json_schema_extra={"pattern": MONTH_PATTERN})]
Yuan = Annotated[Decimal, PlainSerializer(yuan_text, return_type=str, when_used="json")]


def _fen(value: Decimal) -> Decimal:
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int):
        raise ValueError("must be a finite amount")
    if exponent < -2:
        raise ValueError("amounts are in yuan with at most 2 decimal places (fen)")
    if abs(value) >= MAX_AMOUNT:
        raise ValueError(f"amounts are less than {MAX_AMOUNT:,f} yuan in absolute value")
    return value


def _not_zero(value: Decimal) -> Decimal:
    if value == 0:
        raise ValueError("must not be zero")
    return value


FenAmount = Annotated[Decimal, AfterValidator(_fen)]


# --- bills ------------------------------------------------------------------------------------------------------


class TierApplied(BaseModel):
    up_to: str | None
    unit_price: str
    quantity: str


class PriceApplied(BaseModel):
    rate_card: str
    effective_from: datetime
    quantity: str
    unit_price: str | None = None
    tiers: list[TierApplied] | None = None


class SystemLine(BaseModel):
    system: str
    quantity: str
    amount: str


class BillLineOut(BaseModel):
    meter: str
    name: str
    unit: str | None
    quantity: str
    unpriced_quantity: str
    amount: str = Field(description="the line's exact amount rounded half-up to the fen")
    prices: list[PriceApplied] = Field(description="the unit price or tiers each rate card applied")
    systems: list[SystemLine] = Field(description="per information system; adds up to the line")
    trial_rate: str | None = Field(None, description="a trial (试运行) line: the usage in resources' trial "
                                                     "windows, billed at this fraction of the normal prices")


class LateAdjustmentOut(BaseModel):
    kind: Literal["late"]
    original_period: str
    meter: str
    name: str
    quantity: str
    amount: str
    reason: str


class ManualAdjustmentOut(BaseModel):
    kind: Literal["manual"]
    id: int
    amount: str
    reason: str
    reference: str | None
    created_by: str
    created_at: datetime


class BillOut(BaseModel):
    """A bill. A final bill is returned exactly as issued (the same bytes forever); ``content_hash`` is the
    sha256 of its canonical JSON (keys sorted, no whitespace) without ``content_hash``; ``csv_sha256`` is the
    sha256 of its CSV."""

    model_config = ConfigDict(extra="forbid")

    bill_id: str = Field(examples=["GM-2026-11-czj"])
    department_id: str
    department_name: str
    period: str
    period_start: datetime
    period_end: datetime
    status: Literal["draft", "final"]
    currency: Literal["CNY"]
    lines: list[BillLineOut]
    adjustments: list[Annotated[LateAdjustmentOut | ManualAdjustmentOut, Field(discriminator="kind")]]
    usage_total: str
    adjustments_total: str
    total: str
    as_of: datetime | None = Field(description="final: when the period closed; draft: when computed")
    closed_at: datetime | None
    csv_sha256: str | None
    content_hash: str | None


class BillSummary(BaseModel):
    bill_id: str
    department_id: str
    department_name: str
    period: str
    status: Literal["draft", "final"]
    total: Yuan
    content_hash: str | None
    closed_at: datetime | None


# --- periods ----------------------------------------------------------------------------------------------------


class SourceBehind(BaseModel):
    source: str
    complete_up_to: datetime
    last_seen_at: datetime
    events: int


class WatermarkOverride(BaseModel):
    """An admin closed the period although these active sources had not delivered data up to its end."""

    by: str
    at: datetime
    reason: str
    sources_behind: list[SourceBehind]


class PeriodOut(BaseModel):
    period: str
    status: Literal["open", "closed"]
    closes_at: datetime | None = Field(description="open: when it closes by itself (month end + grace), once no "
                                                   "active source is behind its end")
    closed_at: datetime | None
    closed_by: str | None
    bills: int | None
    total: Yuan | None
    watermark_override: WatermarkOverride | None = None
    held_by: list[str] = Field([], description="open and ended: the active sources whose data has not reached "
                                               "its end (it closes only once they have; GET /v1/sources)")


class CloseIn(BaseModel):
    """Optional body of a close. A period waits for every active event source to deliver data up to its end;
    ``override_watermarks`` closes it anyway, and the reason is recorded on the period."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "override_watermarks": True, "reason": "hv-cluster-3 collector decommissioned on 11-27 (CHG-2026-1201)"}]})

    override_watermarks: bool = False
    reason: Annotated[str, Field(min_length=1, max_length=500, pattern=NO_NUL)] | None = None


class SourceOut(BaseModel):
    source: str
    complete_up_to: datetime | None = Field(description="the newest usage interval end stored for the source")
    last_seen_at: datetime = Field(description="when a new event of the source was last stored")
    events: int
    active: bool = Field(description="last seen less than GOVMETER_SOURCE_ACTIVE_DAYS ago")
    holds: list[str] = Field(description="open periods that have ended and that wait for this source")


class IssuedBill(BaseModel):
    bill_id: str
    department_id: str
    total: Yuan
    content_hash: str


class CloseResult(BaseModel):
    """The outcome of closing a period; closing it again returns the same outcome."""

    period: str
    closed_at: datetime
    closed_by: str
    total: Yuan
    bills: list[IssuedBill]
    watermark_override: WatermarkOverride | None = None


# --- adjustments ------------------------------------------------------------------------------------------------


class AdjustmentIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "department_id": "czj", "amount": "-120.00", "reason": "服务中断补偿 (outage credit)",
        "reference": "INC-2026-1107", "month": "2026-11",
    }]})

    department_id: Annotated[str, Field(min_length=1, max_length=64, pattern=NO_NUL)]
    amount: Annotated[FenAmount, AfterValidator(_not_zero)] = Field(description="yuan; negative: a credit")
    reason: Annotated[str, Field(min_length=1, max_length=500, pattern=NO_NUL)]
    reference: Annotated[str, Field(max_length=200, pattern=NO_NUL)] | None = None
    month: Month | None = Field(None, description="the open period whose bill carries it; default: this month")


class AdjustmentOut(BaseModel):
    id: int
    department_id: str
    period: str
    amount: Yuan
    reason: str
    reference: str | None
    created_by: str
    created_at: datetime
    ledger_seq: int
    ledger_hash: str | None


# --- budgets and alerts -----------------------------------------------------------------------------------------


class BudgetIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"amount": "120000.00"}]})

    amount: Annotated[FenAmount, Field(gt=0)]


class BudgetOut(BaseModel):
    department_id: str
    year: int
    amount: Yuan
    updated_by: str
    updated_at: datetime
    spend: Yuan | None = Field(None, description="the year's bills so far (final, and drafts of open periods)")
    subtree_spend: Yuan | None = Field(None, description="with rollup: the year's spend of the department and of "
                                                         "every department below it within the caller's scope")
    alerts: list["AlertOut"] = Field(default_factory=list, description="alerts raised by this evaluation")


class AlertOut(BaseModel):
    id: int
    department_id: str
    year: int
    kind: Literal["spend_50", "spend_80", "spend_100", "projected_overrun"]
    period: str | None
    budget: Yuan
    spend: Yuan
    projected: Yuan | None
    message: str
    created_at: datetime
    published_at: datetime | None


# --- ledger -----------------------------------------------------------------------------------------------------


class LedgerProblemOut(BaseModel):
    seq: int
    problem: str


class LedgerVerification(BaseModel):
    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    problems: list[LedgerProblemOut]


# --- webhook subscriptions --------------------------------------------------------------------------------------

WebhookEvent = Literal["budget.alert", "spend.warning"]
AlertKind = Literal["spend_50", "spend_80", "spend_100", "projected_overrun"]


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"url": "https://hooks.example.gov.cn/govmeter", "events": ["budget.alert", "spend.warning"],
         "alert_kinds": ["spend_80", "spend_100"], "department_id": "dep-001"}]})

    url: Annotated[str, Field(min_length=1, max_length=2048, pattern=NO_NUL,
                              description="http or https; its host must be allowed by GOVMETER_WEBHOOK_ALLOWED_HOSTS")]
    events: Annotated[list[WebhookEvent], Field(min_length=1, max_length=2)]
    alert_kinds: Annotated[list[AlertKind] | None, Field(
        None, min_length=1, max_length=4, description="budget alerts of these kinds only (default: every kind)")]
    department_id: Annotated[str | None, Field(
        None, min_length=1, max_length=64, pattern=DEPARTMENT_ID_PATTERN,
        description="the scope: one department (a department token: its own, the default); finance and admin may "
                    "leave it out for every department")]


class SubscriptionOut(BaseModel):
    id: uuid.UUID
    url: str
    events: list[WebhookEvent]
    alert_kinds: list[AlertKind] | None
    department_id: str | None
    created_at: datetime
    pending: int = Field(0, description="deliveries still being tried")
    delivered: int = 0
    failed: int = Field(0, description="deliveries given up after GOVMETER_WEBHOOK_MAX_ATTEMPTS attempts")


class SubscriptionCreated(SubscriptionOut):
    secret: str = Field(description="signs every delivery (Govmeter-Signature); shown only in this answer")
