"""Waste rules (Art. 10, 19): idle resources, oversized VMs, unattached volumes and public IPs. Pure functions;
``services.query.domain.waste`` applies them to one resource's evidence.

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
(30 days). A graduated (tiered) price counts at its lowest tier price, so a saving is never overstated."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Mapping

IDLE = "idle"
OVERSIZED = "oversized"
UNATTACHED_VOLUME = "unattached_volume"
UNATTACHED_IP = "unattached_ip"
KINDS = (IDLE, OVERSIZED, UNATTACHED_VOLUME, UNATTACHED_IP)


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
