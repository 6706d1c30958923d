"""The trial phase (试运行) of a fulfilled application, pure: its window, whether it is running, and who may end
it early (go-live).

A fulfilment may ask for a trial of ``trial_days``: the resource's usage from its activation until then is metered
as any usage but billed at the trial's rate (a fraction of the normal price, stored with the trial). Going live
ends the trial at that instant; a trial that reaches its planned end is live by itself. A bill counts an hour of
the hourly rollup as trial when the hour overlaps the window (the hour of activation and the hour of going live
included: the rollup knows no finer time)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Collection

from services.billing.domain.applications import FULFILLED, IllegalTransition
from services.common.periods import months_touching

TRIAL, LIVE = "trial", "live"
MAX_TRIAL_DAYS = 90


@dataclass(frozen=True)
class Trial:
    starts_at: datetime  # the activation (the fulfilment's effective_at)
    ends_at: datetime  # the planned end, or when it went live early
    went_live_early: bool = False


def phase(trial: Trial | None, now: datetime) -> str:
    """``trial`` while a trial runs, ``live`` otherwise (no trial asked for, ended early, or run out)."""
    return TRIAL if trial is not None and now < trial.ends_at else LIVE


def trial_window(effective_at: datetime, trial_days: int, now: datetime, closed: Collection[str] = ()) -> Trial:
    """The trial a fulfilment asks for; ValueError naming the field when it could not be billed truthfully: it
    must end after ``now`` and touch no ``closed`` period (a closed bill never changes)."""
    if not 1 <= trial_days <= MAX_TRIAL_DAYS:
        raise ValueError(f"trial_days: between 1 and {MAX_TRIAL_DAYS}")
    ends_at = effective_at + timedelta(days=trial_days)
    if ends_at <= now:
        raise ValueError("trial_days: the trial would have ended already (effective_at + trial_days is past)")
    touched = months_touching(effective_at, ends_at) & set(closed)
    if touched:
        raise ValueError(f"effective_at: a trial cannot reach into a closed period ({', '.join(sorted(touched))})")
    return Trial(effective_at, ends_at)


def go_live(state: str, trial: Trial | None, now: datetime) -> Trial:
    """The trial ended at ``now``; IllegalTransition naming the state when the application is not in trial."""
    if state != FULFILLED or trial is None:
        raise IllegalTransition(f"state: the application is {state} without a trial; go-live needs it in trial")
    if phase(trial, now) != TRIAL:
        raise IllegalTransition(f"state: the application is live since {trial.ends_at.isoformat()}; "
                                "go-live needs it in trial")
    return Trial(trial.starts_at, max(now, trial.starts_at), went_live_early=True)
