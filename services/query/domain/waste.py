"""One resource judged by the waste rules (pure): the evidence windows before ``as_of``, what is known of the
resource in them, and the one finding it gets. ``services.query.views.waste_reads`` gathers the evidence,
``services.query.reports.waste`` renders the findings.

Evidence is taken over the days before the end of the window: a resource must have been held by one department
throughout the rule's window, and utilisation-based rules need observations covering at least
``MIN_OBSERVED_SHARE`` of it. A resource found idle is not also listed as oversized: releasing it saves more."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Mapping, Sequence

from services.query.domain.figures import UtilizationFigures
from services.query.domain.waste_rules import (
    IDLE,
    OVERSIZED,
    UNATTACHED_IP,
    UNATTACHED_VOLUME,
    Size,
    WastePolicy,
    is_attached,
    is_idle,
    monthly_cost,
    resize_saving,
    suggest_size,
)

MIN_OBSERVED_SHARE = Decimal("0.8")
EGRESS = "network.egress"


@dataclass(frozen=True)
class Windows:
    """Where each rule's evidence starts; all end at ``end``. Idle and unattached resources are judged on the
    usage of the shorter window's start (the longer of the two when they differ: it is the evidence gathered)."""

    end: datetime
    idle: datetime
    oversized: datetime
    unattached: datetime

    @classmethod
    def before(cls, end: datetime, policy: WastePolicy = WastePolicy()) -> Windows:
        return cls(end, end - timedelta(days=policy.idle_days), end - timedelta(days=policy.oversize_days),
                   end - timedelta(days=policy.unattached_days))

    @property
    def usage_start(self) -> datetime:
        return min(self.idle, self.unattached)

    @property
    def earliest(self) -> datetime:
        return min(self.idle, self.oversized, self.unattached)

    @property
    def usage_hours(self) -> int:
        return int((self.end - self.usage_start).total_seconds() // 3600)


@dataclass(frozen=True)
class ResourceEvidence:
    intervals: Sequence[Mapping]  # its ownership intervals that reach into the windows
    quantities: Mapping[str, Decimal]  # per meter over the usage window
    billed: Decimal  # yuan over the usage window
    week: UtilizationFigures | None  # over the idle window
    fortnight: UtilizationFigures | None  # over the oversize window


@dataclass(frozen=True)
class Verdict:
    kind: str
    held: list  # the intervals that prove it
    saving: Decimal  # exact yuan a month
    cost: Decimal  # its monthly cost at current prices
    figures: UtilizationFigures | None = None
    egress: Decimal | None = None
    current: Size | None = None
    suggested: Size | None = None


def held_throughout(intervals: Sequence[Mapping], start: datetime, end: datetime) -> list | None:
    """The intervals that cover [start, end) without a gap and under one department, else None."""
    covering = sorted((i for i in intervals
                       if i["valid_from"] < end and (i["valid_to"] is None or i["valid_to"] > start)),
                      key=lambda i: i["valid_from"])
    if not covering or covering[0]["valid_from"] > start:
        return None
    cursor = covering[0]["valid_from"]
    for interval in covering:
        if interval["valid_from"] > cursor or interval["department_id"] != covering[0]["department_id"]:
            return None
        cursor = interval["valid_to"] or end
    return covering if cursor >= end else None


def observed_enough(figures: UtilizationFigures | None, start: datetime, end: datetime) -> bool:
    window_ms = Decimal((end - start).total_seconds() * 1000)
    return figures is not None and figures.observed_ms >= MIN_OBSERVED_SHARE * window_ms


def held_size(intervals: Sequence[Mapping]) -> Size | None:
    """The VM's one size throughout ``intervals``; None if it was resized or has no vCPU count."""
    sizes = {(i["spec"] or {}).get("vcpu") for i in intervals}
    memories = {(i["spec"] or {}).get("memory_gib") for i in intervals}
    vcpu, memory = next(iter(sizes)), next(iter(memories))
    if len(sizes) != 1 or len(memories) != 1 or not isinstance(vcpu, int) or isinstance(vcpu, bool):
        return None
    return Size(vcpu, memory if isinstance(memory, int) and not isinstance(memory, bool) else None)


def judge_resource(evidence: ResourceEvidence, windows: Windows, prices: Mapping[str, Decimal],
                   policy: WastePolicy = WastePolicy()) -> Verdict | None:
    """The one finding for a resource, the rules tried in order: idle, then unattached, then oversized."""
    kind = evidence.intervals[-1]["kind"]
    short = held_throughout(evidence.intervals, windows.usage_start, windows.end)
    cost = monthly_cost(evidence.quantities, windows.usage_hours, prices, policy)
    billed = bool(short) and evidence.billed > 0
    if billed and observed_enough(evidence.week, windows.idle, windows.end):
        egress = evidence.quantities.get(EGRESS, Decimal(0))
        if is_idle(evidence.week.cpu_max, egress, policy):
            return Verdict(IDLE, short, cost, cost, evidence.week, egress)
    if kind in ("volume", "ip") and billed and not any(is_attached(i["spec"] or {}) for i in short):
        return Verdict(UNATTACHED_VOLUME if kind == "volume" else UNATTACHED_IP, short, cost, cost)
    if kind == "vm":
        return _oversized(evidence, windows, prices, policy, cost)
    return None


def _oversized(evidence: ResourceEvidence, windows: Windows, prices: Mapping[str, Decimal], policy: WastePolicy,
               cost: Decimal) -> Verdict | None:
    long = held_throughout(evidence.intervals, windows.oversized, windows.end)
    figures = evidence.fortnight
    if not long or not observed_enough(figures, windows.oversized, windows.end):
        return None
    current = held_size(long)
    if current is None:
        return None  # resized in the window, or no vCPU count: not enough evidence at the current size
    suggested = suggest_size(current, figures.cpu_p95, figures.memory_p95, policy)
    if suggested is None:
        return None
    return Verdict(OVERSIZED, long, resize_saving(current, suggested, prices, policy), cost, figures,
                   current=current, suggested=suggested)
