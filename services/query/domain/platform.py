"""What the platform report adds up (pure): a month's usage per meter and per department, the unattributed part,
and the ranking of departments by spend."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Iterable, Mapping

from services.query.domain.figures import UsageFigure

TOP_DEPARTMENTS = 10


@dataclass
class Tally:
    by_meter: dict[str, UsageFigure] = field(default_factory=lambda: defaultdict(UsageFigure))
    by_department: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    unattributed: dict[str, UsageFigure] = field(default_factory=lambda: defaultdict(UsageFigure))

    @property
    def total(self) -> Decimal:
        return sum((f.amount for f in self.by_meter.values()), Decimal(0))


def tally(rows: Iterable[Mapping]) -> Tally:
    """Rows of (department_id, meter, quantity, amount); department_id None is usage not yet attributed."""
    result = Tally()
    for r in rows:
        result.by_meter[r["meter"]].add(r["quantity"], r["amount"])
        if r["department_id"] is not None:
            result.by_department[r["department_id"]] += r["amount"]
        else:
            result.unattributed[r["meter"]].add(r["quantity"], r["amount"])
    return result


def top_departments(by_department: Mapping[str, Decimal], n: int = TOP_DEPARTMENTS) -> list[tuple[str, Decimal]]:
    """The ``n`` departments that spent most, ties by id."""
    return sorted(by_department.items(), key=lambda item: (-item[1], item[0]))[:n]
