"""The finance questions the benchmark asks (bench/run.py): the four kinds, each as one repeated request or as
distinct requests drawn from a seeded generator, so that the response cache rarely answers (docs/benchmark.md)."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date

Request = tuple[str, str, dict]  # service, path, query parameters

KINDS = ("spend by department × month", "one department by meter × day", "top departments over a window",
         "a department's bill list")


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later (clamped to the month's last day)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    for last in (day.day, 30, 29, 28):
        try:
            return date(year, month + 1, last)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def random_window(rng: random.Random, year: int) -> dict:
    """A window of 1 to 12 whole months from a random day of ``year``, cut at the year's end: thousands of distinct
    windows, as finance asks them ("the three months from 17 March")."""
    start = date(year, 1, 1).toordinal() + rng.randrange(365)
    first = date.fromordinal(start)
    end = min(add_months(first, rng.randint(1, 12)), date(year + 1, 1, 1))
    return {"from": first.isoformat(), "to": end.isoformat()}


def repeated_request(kind: str, department: str, year: int) -> Request:
    """The one request the benchmark has always timed for ``kind``: the whole year, one department."""
    whole = {"from": f"{year}-01-01", "to": f"{year + 1}-01-01"}
    return {
        KINDS[0]: ("query", "/v1/usage", {**whole, "group_by": "department", "granularity": "month"}),
        KINDS[1]: ("query", "/v1/usage", {**whole, "group_by": "meter", "granularity": "day",
                                          "department": department}),
        KINDS[2]: ("query", "/v1/usage", {**whole, "group_by": "department"}),
        KINDS[3]: ("billing", "/v1/bills", {"department": department}),
    }[kind]


def distinct_request(kind: str, rng: random.Random, departments: list[str], year: int) -> Request:
    """A random question of ``kind``: a random window, and a random department where the kind takes one; one bill
    list in three asks for a single month of the stored year."""
    department = rng.choice(departments)
    if kind == KINDS[0]:
        return "query", "/v1/usage", {**random_window(rng, year), "group_by": "department", "granularity": "month"}
    if kind == KINDS[1]:
        return "query", "/v1/usage", {**random_window(rng, year), "group_by": "meter", "granularity": "day",
                                      "department": department}
    if kind == KINDS[2]:
        return "query", "/v1/usage", {**random_window(rng, year), "group_by": "department"}
    if rng.random() < 1 / 3:
        return "billing", "/v1/bills", {"department": department, "month": f"{year}-{rng.randint(1, 12):02d}"}
    return "billing", "/v1/bills", {"department": department}


def request_source(kind: str, distinct: bool, seed: int, departments: list[str], year: int
                   ) -> Callable[[], Request]:
    """The requests of one measurement: the same one every time, or a seeded stream of distinct ones."""
    if not distinct:
        fixed = repeated_request(kind, departments[3], year)
        return lambda: fixed
    rng = random.Random(seed)
    return lambda: distinct_request(kind, rng, departments, year)


def percentile(ordered: list[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values (the benchmark's p50 and p99)."""
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]
