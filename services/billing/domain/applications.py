"""Resource applications (Art. 8–10), pure: who may move an application from which state to which, the
working-day clocks of approval and fulfilment, and the monthly cost estimate.

The estimate is priced by the bills' own code (``price_usage``): the application's items become one month of
usage slices under the rate card in force, so an estimate and the bill of that usage agree to the fen."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable, Iterable

import chinese_calendar

from schemas.api import Role
from schemas.catalogue import meters
from services.billing.domain.bills import BillLine, UsageSlice, price_usage
from schemas.money import exact
from services.common.periods import LOCAL_TZ, month_bounds
from services.metering.domain.rating import RateCardPrices

SUBMITTED, ACCEPTED, APPROVED, REJECTED, FULFILLED, WITHDRAWN = (
    "submitted", "accepted", "approved", "rejected", "fulfilled", "withdrawn")
STATES = (SUBMITTED, ACCEPTED, APPROVED, REJECTED, FULFILLED, WITHDRAWN)
# Art. 10: approval within two working days; the measures give fulfilment the same clock.
SLA_WORKING_DAYS = 2
CHINESE_CALENDAR = "chinese-calendar"
WEEKDAYS = "weekdays"


@dataclass(frozen=True)
class Action:
    name: str
    sources: tuple[str, ...]  # the states it may leave
    target: str
    roles: tuple[str, ...]


ACTIONS = {
    a.name: a for a in (
        Action("accept", (SUBMITTED,), ACCEPTED, (Role.EGOV,)),
        Action("approve", (ACCEPTED,), APPROVED, (Role.EGOV,)),
        Action("reject", (SUBMITTED, ACCEPTED), REJECTED, (Role.EGOV,)),
        Action("fulfil", (APPROVED,), FULFILLED, (Role.PROVIDER, Role.ADMIN)),
        Action("withdraw", (SUBMITTED, ACCEPTED), WITHDRAWN, (Role.DEPARTMENT,)),
        # Ends a trial (试运行) early (domain.trials): the department, whose testing it is, or admin.
        Action("go-live", (FULFILLED,), FULFILLED, (Role.DEPARTMENT, Role.ADMIN)),
    )
}


class IllegalTransition(ValueError):
    """The application's state does not allow the action (an HTTP 409)."""


def next_state(state: str, action: str) -> str:
    """The state ``action`` moves an application in ``state`` to; IllegalTransition naming the state if none."""
    found = ACTIONS[action]
    if state not in found.sources:
        allowed = " or ".join(found.sources)
        raise IllegalTransition(f"state: the application is {state}; {action} needs it {allowed}")
    return found.target


def approval_running(state: str) -> bool:
    return state in (SUBMITTED, ACCEPTED)


def fulfilment_running(state: str) -> bool:
    return state == APPROVED


# --- working-day clocks ------------------------------------------------------------------------------------------


def working_day(day: dt.date) -> tuple[bool, str]:
    """Whether ``day`` is a working day in mainland China, and the calendar that said so.

    ``chinese-calendar`` knows the public holidays and the adjusted working weekends of the years it ships data
    for; outside them (the State Council publishes a year's schedule only late in the year before) a day counts
    as working when it is Monday to Friday, and the answer says ``weekdays`` so that the due date reads as
    provisional."""
    try:
        return chinese_calendar.is_workday(day), CHINESE_CALENDAR
    except NotImplementedError:
        return day.weekday() < 5, WEEKDAYS


@dataclass(frozen=True)
class Due:
    at: dt.datetime  # the clock runs out at this instant (local midnight ending the last working day)
    calendar: str  # chinese-calendar, or weekdays when a day counted lay outside the package's data


def due_at(start: dt.datetime, working_days: int = SLA_WORKING_DAYS,
           is_working: Callable[[dt.date], tuple[bool, str]] = working_day) -> Due:
    """When a clock started at ``start`` runs out: the end (24:00 Asia/Shanghai) of the ``working_days``-th
    working day after the local day of ``start``. The starting day does not count, whatever the hour."""
    day = start.astimezone(LOCAL_TZ).date()
    calendar = CHINESE_CALENDAR
    counted = 0
    while counted < working_days:
        day += dt.timedelta(days=1)
        works, said_by = is_working(day)
        if said_by != CHINESE_CALENDAR:
            calendar = said_by
        counted += works
    end = day + dt.timedelta(days=1)
    return Due(dt.datetime(end.year, end.month, end.day, tzinfo=LOCAL_TZ), calendar)


def is_late(due: dt.datetime | None, done_at: dt.datetime | None, now: dt.datetime, running: bool = True) -> bool:
    """A clock is late when it ran out before its step was done, or, still ``running`` (the step not done and
    the application not rejected or withdrawn), before ``now``."""
    if due is None:
        return False
    if done_at is not None:
        return done_at > due
    return running and now > due


# --- cost estimate -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    meter: str
    quantity: Decimal  # rate meters: units held (e.g. 4 vCPU); volume meters: the month's volume (e.g. GB)


def month_of(instant: dt.datetime) -> str:
    return instant.astimezone(LOCAL_TZ).strftime("%Y-%m")


def hours_in(month: str) -> int:
    start, end = month_bounds(month)
    return int((end - start).total_seconds()) // 3600


@exact
def monthly_usage(item: Item, month: str) -> Decimal:
    """The quantity a month of holding ``item`` bills: a rate meter runs every hour of the month."""
    if meters()[item.meter].kind == "rate":
        return item.quantity * hours_in(month)
    return item.quantity


@exact
def estimate_lines(items: Iterable[Item], card: RateCardPrices | None, month: str, system: str) -> list[BillLine]:
    """The bill lines a month of ``items`` would get under ``card`` (None: no card in force, all unpriced):
    one slice per item, priced by the bills' ``price_usage`` exactly as rating and billing price usage."""
    slices = []
    for item in items:
        quantity = monthly_usage(item, month)
        flat = card.flat.get(item.meter) if card else None
        priced = card is not None and card.is_priced(item.meter)
        slices.append(UsageSlice(
            hour=None, meter=item.meter, rate_card_id=card.id if card else 0, system=system, quantity=quantity,
            amount=quantity * flat if flat is not None else Decimal(0),
            unpriced_quantity=Decimal(0) if priced else quantity))
    return price_usage(slices, {card.id: card} if card else {})
