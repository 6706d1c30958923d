"""Response contracts of the report endpoints (query API). Money is yuan as a string with two decimals,
quantities and percentages are decimal strings; a null percentage means there was nothing to compare with."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class MeterUse(BaseModel):
    meter: str
    name: str
    unit: str | None
    quantity: str
    amount: str
    previous_quantity: str
    quantity_change_percent: str | None


class UtilizationRow(BaseModel):
    department_id: str
    department_name: str
    system: str | None
    resources: int
    allocated: dict[str, str]  # time-weighted average: vcpu, memory_gib, storage_gib
    meters: list[MeterUse]
    cost: str
    previous_cost: str
    cost_change_percent: str | None
    cpu_average: str | None
    cpu_p95: str | None
    memory_average: str | None
    memory_p95: str | None
    previous_cpu_average: str | None
    previous_memory_average: str | None


class UtilizationReport(BaseModel):
    period: Literal["week", "month"]
    start: str
    end: str
    previous_start: str
    currency: Literal["CNY"] = "CNY"
    lang: str
    rows: list[UtilizationRow]


class PlatformMeter(BaseModel):
    meter: str
    name: str
    unit: str | None
    quantity: str
    previous_quantity: str
    growth_percent: str | None
    amount: str
    previous_amount: str


class PlatformFamily(BaseModel):
    family: str
    name: str
    amount: str
    previous_amount: str
    growth_percent: str | None
    meters: list[PlatformMeter]


class PlatformDepartment(BaseModel):
    rank: int
    department_id: str
    department_name: str
    amount: str
    share_percent: str | None
    previous_amount: str
    growth_percent: str | None


class UnattributedMeter(BaseModel):
    meter: str
    name: str
    unit: str | None
    quantity: str
    amount: str


class Unattributed(BaseModel):
    amount: str
    share_percent: str | None
    resources: int
    meters: list[UnattributedMeter]


class DeadLetterCounts(BaseModel):
    total: int
    by_reason: dict[str, int]


class PlatformTotal(BaseModel):
    amount: str
    previous_amount: str
    growth_percent: str | None
    departments: int
    resources: int


class LateApplications(BaseModel):
    """Resource applications whose two-working-day clock ran out in the month before its step was done (or is
    still running past it): approval by the e-government centre, fulfilment by the provider."""

    late_approvals: int
    late_fulfilments: int


class PlatformReport(BaseModel):
    month: str
    previous_month: str
    currency: Literal["CNY"] = "CNY"
    lang: str
    total: PlatformTotal
    families: list[PlatformFamily]
    top_departments: list[PlatformDepartment]
    unattributed: Unattributed
    dead_letters: DeadLetterCounts
    applications: LateApplications


class SpendWarningOut(BaseModel):
    id: int
    day: str
    department_id: str
    department_name: str
    meter: str
    meter_name: str
    spend: str  # yuan, that day
    median: str  # yuan, of the baseline
    mad: str
    mad_used: str
    robust_z: str
    threshold: str
    baseline: dict[str, Any]
    message: str
    created_at: str


class WarningList(BaseModel):
    warnings: list[SpendWarningOut]


class WasteFinding(BaseModel):
    kind: Literal["idle", "oversized", "unattached_volume", "unattached_ip"]
    kind_name: str
    department_id: str
    department_name: str
    system: str
    resource_id: str
    resource_kind: str
    monthly_saving: str
    evidence: dict[str, Any]
    suggestion: dict[str, Any] | None = None


class WasteReport(BaseModel):
    as_of: str
    currency: Literal["CNY"] = "CNY"
    lang: str
    policy: dict[str, Any]
    total_monthly_saving: str
    findings: list[WasteFinding]


class BudgetMonth(BaseModel):
    """A month as billed: ``amount`` = the lines (``by_family``; ``by_system`` with ``by=system``) + late
    adjustments + manual adjustments (dispute credits included)."""

    month: str
    amount: str
    by_family: dict[str, str]
    by_system: dict[str, str] | None = None
    late_adjustments: str = "0.00"
    manual_adjustments: str = "0.00"


class BudgetDepartment(BaseModel):
    department_id: str
    department_name: str
    months: list[BudgetMonth]
    by_family: dict[str, str]
    by_system: dict[str, str] | None = None
    late_adjustments: str = "0.00"
    manual_adjustments: str = "0.00"
    actual_12_months: str
    monthly_mean: str
    trend_per_month: str
    projected: str
    bounded: str
    annual_waste: str
    proposed_basis: str
    waste_findings: int


class BudgetBasisReport(BaseModel):
    year: int
    months: list[str]
    currency: Literal["CNY"] = "CNY"
    lang: str
    formula: str
    departments: list[BudgetDepartment]
    total_proposed_basis: str
