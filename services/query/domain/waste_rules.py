"""Waste rules (Art. 10, 19): idle resources, oversized VMs, unattached volumes and public IPs. Pure functions;
``services.query.views.waste_reads`` gathers their evidence, ``services.query.reports.waste`` renders them.

* Idle: a resource owned and billed throughout the last ``idle_days`` days whose CPU never exceeded
  ``idle_cpu_max`` percent in that time (its utilisation maximum) and that sent no traffic (no
  ``network.egress`` on it). A resource without utilisation observations is never called idle: no evidence.
  Saving: everything it costs, i.e. its monthly cost at current prices.
* Oversized VM: a VM whose p95 CPU over the last ``oversize_days`` days is below ``oversize_cpu_p95``. Suggested
  size: the smallest power-of-two vCPU count that would run that p95 at no more than ``target_cpu_p95``
  (needed = vcpu × p95 / target), and likewise memory against ``target_memory_p95`` when memory was observed
  (otherwise memory is kept). Saving: the vCPU and GiB given up × hours_per_month × current unit prices.
* Unattached volume or public IP: a ``volume`` or ``ip`` whose lifecycle spec has had no ``attached_to`` (missing,
  null or empty) throughout the last ``unattached_days`` days while it was billed. Saving: its monthly cost.

Monthly cost of a resource = Σ over its meters of (metered quantity in the window ÷ hours in the window) ×
hours_per_month × the unit price in force at the end of the window. A month is ``hours_per_month`` = 720 hours
(30 days). A graduated (tiered) price counts at its lowest tier price, so a saving is never overstated.

Evidence is taken over the days before the end of the window: a resource must have been held by one department
throughout the rule's window, and utilisation-based rules need observations covering at least
``MIN_OBSERVED_SHARE`` of it. A resource found idle is not also listed as oversized: releasing it saves more."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Mapping, Sequence

from services.query.domain.figures import UtilizationFigures

IDLE = "idle"
OVERSIZED = "oversized"
UNATTACHED_VOLUME = "unattached_volume"
UNATTACHED_IP = "unattached_ip"
KINDS = (IDLE, OVERSIZED, UNATTACHED_VOLUME, UNATTACHED_IP)
MIN_OBSERVED_SHARE = Decimal("0.8")
EGRESS = "network.egress"


@dataclass(frozen=True)
class WastePolicy:
    idle_days: int = 7
    idle_cpu_max: Decimal = Decimal(5)
    oversize_days: int = 14
    oversize_cpu_p95: Decimal = Decimal(20)
    target_cpu_p95: Decimal = Decimal(60)
    target_memory_p95: Decimal = Decimal(80)
    unattached_days: int = 7
    hours_per_month: int = 720


@dataclass(frozen=True)
class Size:
    vcpu: int
    memory_gib: int | None


def power_of_two_at_least(value: Decimal) -> int:
    size = 1
    while size < value:
        size *= 2
    return size


def suggest_size(current: Size, cpu_p95: Decimal, memory_p95: Decimal | None,
                 policy: WastePolicy = WastePolicy()) -> Size | None:
    """A smaller size for an oversized VM, or None when it is not oversized or cannot shrink."""
    if cpu_p95 >= policy.oversize_cpu_p95 or current.vcpu <= 1:
        return None
    vcpu = min(current.vcpu, power_of_two_at_least(Decimal(current.vcpu) * cpu_p95 / policy.target_cpu_p95))
    memory = current.memory_gib
    if memory is not None and memory_p95 is not None:
        memory = min(memory, power_of_two_at_least(Decimal(memory) * memory_p95 / policy.target_memory_p95))
    suggested = Size(vcpu, memory)
    return suggested if suggested != current else None


def resize_saving(current: Size, suggested: Size, prices: Mapping[str, Decimal],
                  policy: WastePolicy = WastePolicy()) -> Decimal:
    """Exact monthly saving (yuan) of running ``suggested`` instead of ``current``."""
    hours = Decimal(policy.hours_per_month)
    saving = (current.vcpu - suggested.vcpu) * prices.get("compute.vcpu", Decimal(0)) * hours
    if current.memory_gib is not None and suggested.memory_gib is not None:
        saving += (current.memory_gib - suggested.memory_gib) * prices.get("compute.memory", Decimal(0)) * hours
    return saving


def monthly_cost(quantities: Mapping[str, Decimal], window_hours: int, prices: Mapping[str, Decimal],
                 policy: WastePolicy = WastePolicy()) -> Decimal:
    """Exact monthly cost at ``prices`` of using ``quantities`` (per meter) every ``window_hours``."""
    hours = Decimal(policy.hours_per_month)
    # multiply before dividing: 720/168 has no finite decimal, Σ q × price × 720 usually divides exactly
    return sum((q * prices.get(m, Decimal(0)) * hours for m, q in quantities.items()), Decimal(0)) / window_hours


def is_idle(cpu_max: Decimal | None, egress: Decimal, policy: WastePolicy = WastePolicy()) -> bool:
    return cpu_max is not None and cpu_max <= policy.idle_cpu_max and egress == 0


def is_attached(spec: Mapping) -> bool:
    return spec.get("attached_to") not in (None, "", [], {})


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
