"""Trial phases (试运行) of fulfilled applications in PostgreSQL: recorded with the fulfilment (in its
transaction), ended early by going live, shown on the application. Bills read them in ``bills.usage_slices``."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from schemas.applications import TrialOut
from services.billing.application_store import Writes
from services.bill_reads.bills import closed_periods
from services.billing.domain.trials import Trial, go_live, phase, trial_window
from services.common.http import unprocessable


def record_trial(resource_id: str, effective_at: datetime, trial_days: int, now: datetime, rate: Decimal) -> Writes:
    """The fulfilment's write of its trial, at ``rate`` (the setting now: stored, so a bill never re-prices)."""

    async def write(conn, row: dict) -> None:
        try:
            trial = trial_window(effective_at, trial_days, now, set(await closed_periods(conn)))
        except ValueError as exc:
            raise unprocessable(str(exc)) from None
        await conn.execute(
            """
            INSERT INTO resource_trials (application_id, department_id, resource_id, starts_at, planned_ends_at,
                                         ends_at, rate, recorded_at)
            VALUES ($1, $2, $3, $4, $5, $5, $6, $7)
            """,
            row["id"], row["department_id"], resource_id, trial.starts_at, trial.ends_at, rate, now,
        )

    return write


def end_trial(subject: str, now: datetime) -> Writes:
    """Going live: the trial's window ends now (IllegalTransition when the application is not in trial)."""

    async def write(conn, row: dict) -> None:
        found = await conn.fetchrow("SELECT starts_at, ends_at FROM resource_trials WHERE application_id = $1",
                                    row["id"])
        trial = None if found is None else Trial(found["starts_at"], found["ends_at"])
        ended = go_live(row["state"], trial, now)
        await conn.execute("UPDATE resource_trials SET ends_at = $2, went_live_by = $3, went_live_at = $4"
                           " WHERE application_id = $1", row["id"], ended.ends_at, subject, now)

    return write


def trial_out(row: dict | None, now: datetime) -> TrialOut | None:
    if row is None:
        return None
    return TrialOut(phase=phase(Trial(row["starts_at"], row["ends_at"]), now),
                    rate=format(row["rate"].normalize(), "f"),
                    **{k: row[k] for k in ("starts_at", "planned_ends_at", "ends_at", "went_live_by", "went_live_at")})
