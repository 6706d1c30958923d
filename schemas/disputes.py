"""Contracts of bill disputes (Art. 13): a department disputes a line of its own final bill; finance or admin
rejects it with a reply or upholds it with an amount, credited on the department's next open bill."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.api import NO_NUL
from schemas.billing import FenAmount, Yuan

DisputeStatus = Literal["open", "rejected", "upheld"]
Text = Annotated[str, Field(min_length=1, max_length=1000, pattern=NO_NUL)]


class DisputeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "bill_id": "GM-2026-11-czj", "meter": "compute.vcpu", "reason": "11 月 20 日起该云主机已停用，仍被计费"}]})

    bill_id: Annotated[str, Field(min_length=1, max_length=100, pattern=NO_NUL,
                                  description="a final bill of the caller's own department")]
    meter: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_.]+$",
                                description="the disputed line: its meter, as on the bill")]
    reason: Text


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reply": "监控数据显示该主机持续运行"}]})

    reply: Text


class UpholdIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "amount": "86.40", "reply": "核实停用，核减 11 月 20 日后费用"}]})

    amount: Annotated[FenAmount, Field(gt=0, description="yuan, two places, at most the line's amount less what "
                                                         "earlier upheld disputes of the line credited")]
    reply: Text | None = None


class DisputeOut(BaseModel):
    id: int
    department_id: str
    bill_id: str
    period: str = Field(description="the disputed bill's period")
    meter: str
    line_quantity: str
    line_amount: Yuan = Field(description="the line's amount on the final bill")
    reason: str
    status: DisputeStatus
    opened_by: str
    opened_at: datetime
    answered_by: str | None
    answered_at: datetime | None
    reply: str | None
    credit: Yuan | None = Field(description="upheld: the amount credited")
    credit_period: str | None = Field(description="upheld: the open period whose bill carries the credit")
    adjustment_id: int | None = Field(description="upheld: the credit adjustment (GET /v1/adjustments)")
    ledger_seq: int | None = Field(description="upheld: the credit's ledger entry")

