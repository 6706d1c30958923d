"""``/v1/applications``: resource applications (Art. 8–10) on the billing API.

A department applies (and first sees what a month would cost under the rate card in force); the e-government
centre (role ``egov``) accepts, approves or rejects; the provider fulfils, which publishes the
``gov.cloud.resource.v1`` ``activated`` event to the events topic through the ingest validator, so the metering
worker attributes the resource to the department exactly as if the provider had posted it. Approval and
fulfilment each run a clock of two working days on the Chinese calendar (docs/workflow-applications.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status

from schemas.api import Role
from schemas.applications import ApplicationIn, ApplicationOut, Estimate, EstimateLine, FulfilIn, StepIn
from schemas.catalogue import unit_of
from services.billing.application_store import Actor, NotFound, UnknownDepartment, move, read, submit
from services.billing.domain.applications import (
    ACTIONS,
    STATES,
    IllegalTransition,
    Item,
    approval_running,
    due_at,
    estimate_lines,
    fulfilment_running,
    is_late,
    month_of,
)
from services.common.auth import Principal, require_roles, scoped_department
from services.common.scope import may_see
from services.common.config import get_settings
from services.common.db import get_engine, raw_connection
from services.common.decimal_json import DecimalJSONRoute
from services.common.http import unprocessable
from services.common.events_out import publish_event
from schemas.money import quantity_text
from services.metering.domain.rating import card_at
from services.common.source_binding import require_writable_sources
from services.reference.rate_cards import load_rate_cards
from services.billing.trials import end_trial, record_trial, trial_out

router = APIRouter(tags=["applications"], route_class=DecimalJSONRoute)  # JSON numbers parsed as Decimal
Applicant = Annotated[Principal, Depends(require_roles(Role.DEPARTMENT, Role.ADMIN))]
Reader = Annotated[Principal, Depends(require_roles(*Role.ALL))]
Mover = Annotated[Principal, Depends(require_roles(Role.EGOV, Role.PROVIDER, Role.ADMIN, Role.DEPARTMENT))]
ApplicationId = Annotated[int, Path(ge=1, le=2 ** 63 - 1)]
# A fulfilment may name when billing starts; a clock a little ahead of ours is not the future.
CLOCK_SKEW = timedelta(minutes=5)


async def applications_clock() -> datetime:
    """The current instant; a dependency so that tests can stand at any date."""
    return datetime.now(UTC)


Now = Annotated[datetime, Depends(applications_clock)]


def _actor(principal: Principal) -> Actor:
    return Actor(principal.subject, principal.role, principal.department if principal.role == Role.DEPARTMENT
                 else None)


async def _estimate(application: ApplicationIn, now: datetime) -> Estimate:
    async with raw_connection(get_engine()) as conn:
        card = card_at(await load_rate_cards(conn), now)
    month = month_of(now)
    items = [Item(i.meter, i.quantity) for i in application.items]
    lines = estimate_lines(items, card, month, application.system)
    return Estimate(
        month=month, rate_card=card.version if card else None,
        lines=[EstimateLine(meter=line.meter, unit=unit_of(line.meter) or "", amount=line.amount,
                            monthly_quantity=quantity_text(line.quantity),
                            unit_price=str(card.flat[line.meter]) if card and line.meter in card.flat else None,
                            tiered=bool(card and line.meter in card.tiered))
               for line in lines],
        total=sum((line.amount for line in lines), Decimal(0)),
        unpriced_meters=[line.meter for line in lines if line.unpriced_quantity > 0],
    )


@router.post("/v1/applications/estimate", response_model=Estimate)
async def estimate_application(application: ApplicationIn, principal: Reader, now: Now):
    """What a month of the items would cost under the rate card in force now (rate meters held every hour of
    this month, volume meters at the given monthly volume), priced by the bills' own code; nothing is stored."""
    return await _estimate(application, now)


@router.post("/v1/applications", status_code=status.HTTP_201_CREATED, response_model=ApplicationOut)
async def create_application(application: ApplicationIn, principal: Applicant, now: Now):
    """Apply for a resource. A department applies for itself; admin names the department. The answer carries
    the estimate and the approval clock (two working days)."""
    if principal.role == Role.ADMIN and application.department_id is None:
        raise unprocessable("department_id: required when admin applies")
    department = scoped_department(principal, application.department_id)
    estimate = await _estimate(application, now)
    try:
        application_id = await submit(get_engine(), application, department, _actor(principal), now, estimate.total,
                                      estimate.rate_card, due_at(now))
    except UnknownDepartment as exc:
        raise unprocessable(str(exc)) from None
    return await _one(principal, application_id, now)


@router.get("/v1/applications", response_model=list[ApplicationOut])
async def list_applications(principal: Reader, now: Now,
                            overdue: Annotated[bool, Query(description="only open applications whose running "
                                                                       "clock has run out")] = False,
                            state: Annotated[str | None, Query(max_length=16)] = None,
                            department: Annotated[str | None, Query(max_length=64)] = None):
    """Applications, newest first (at most 500): a department sees its own; every other role sees all."""
    if state is not None and state not in STATES:
        raise unprocessable(f"state: one of {', '.join(STATES)}")
    rows = await read(get_engine(), scoped_department(principal, department), overdue_at=now if overdue else None,
                      state=state)
    return [application_out(row, now) for row in rows]


@router.get("/v1/applications/{application_id}", response_model=ApplicationOut)
async def get_application(application_id: ApplicationId, principal: Reader, now: Now):
    return await _one(principal, application_id, now)


async def _one(principal: Principal, application_id: int, now: datetime) -> ApplicationOut:
    rows = await read(get_engine(), _actor(principal).department, application_id)
    if rows and not await may_see(principal, rows[0]["department_id"]):
        rows = []  # a district finance office: another district's application is as if it did not exist
    if not rows:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"application_id: no application {application_id}")
    return application_out(rows[0], now)


def application_out(row: dict, now: datetime) -> ApplicationOut:
    approval_late = is_late(row["approval_due_at"], row["decided_at"], now, approval_running(row["state"]))
    fulfilment_late = is_late(row["fulfilment_due_at"], row["fulfilled_at"], now, fulfilment_running(row["state"]))
    running_late = (approval_running(row["state"]) and approval_late) or \
        (fulfilment_running(row["state"]) and fulfilment_late)
    return ApplicationOut(
        **{k: row[k] for k in ("id", "department_id", "system", "kind", "spec", "items", "reason", "wanted_by",
                               "state", "estimate", "estimate_rate_card", "submitted_by", "submitted_at",
                               "resource_id", "steps")},
        trial=trial_out(row.get("trial"), now),
        approval={"due_at": row["approval_due_at"], "calendar": row["approval_calendar"],
                  "done_at": row["decided_at"], "late": approval_late},
        fulfilment={"due_at": row["fulfilment_due_at"], "calendar": row["fulfilment_calendar"],
                    "done_at": row["fulfilled_at"], "late": fulfilment_late},
        overdue=running_late,
    )


def _may(principal: Principal, action: str) -> None:
    if principal.role not in ACTIONS[action].roles:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"role {principal.role} may not {action} an application")


async def _move(principal: Principal, application_id: int, action: str, now: datetime, note: str | None,
                **kwargs) -> ApplicationOut:
    _may(principal, action)
    try:
        await move(get_engine(), application_id, action, _actor(principal), now, note, **kwargs)
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    except IllegalTransition as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    return await _one(principal, application_id, now)


@router.post("/v1/applications/{application_id}/accept", response_model=ApplicationOut,
             responses={409: {"description": "the state does not allow it (the detail names the state)"}})
async def accept_application(application_id: ApplicationId, principal: Mover, now: Now, body: StepIn | None = None):
    """The e-government centre takes the application up (submitted → accepted)."""
    return await _move(principal, application_id, "accept", now, body.reason if body else None)


@router.post("/v1/applications/{application_id}/approve", response_model=ApplicationOut,
             responses={409: {"description": "the state does not allow it (the detail names the state)"}})
async def approve_application(application_id: ApplicationId, principal: Mover, now: Now, body: StepIn | None = None):
    """The e-government centre approves (accepted → approved); the provider's fulfilment clock starts."""
    due = due_at(now)
    return await _move(principal, application_id, "approve", now, body.reason if body else None,
                       changes=lambda row: {"decided_at": now, "fulfilment_due_at": due.at,
                                            "fulfilment_calendar": due.calendar})


@router.post("/v1/applications/{application_id}/reject", response_model=ApplicationOut,
             responses={409: {"description": "the state does not allow it (the detail names the state)"}})
async def reject_application(application_id: ApplicationId, principal: Mover, now: Now, body: StepIn | None = None):
    """The e-government centre rejects (submitted or accepted → rejected), with a reason."""
    if body is None or body.reason is None:
        raise unprocessable("reason: required to reject")
    return await _move(principal, application_id, "reject", now, body.reason,
                       changes=lambda row: {"decided_at": now})


@router.post("/v1/applications/{application_id}/withdraw", response_model=ApplicationOut,
             responses={409: {"description": "the state does not allow it (the detail names the state)"}})
async def withdraw_application(application_id: ApplicationId, principal: Mover, now: Now,
                               body: StepIn | None = None):
    """The department takes its application back before it is decided (submitted or accepted → withdrawn)."""
    return await _move(principal, application_id, "withdraw", now, body.reason if body else None)


@router.post("/v1/applications/{application_id}/fulfil", response_model=ApplicationOut,
             responses={409: {"description": "the state does not allow it (the detail names the state)"},
                        503: {"description": "the broker did not acknowledge the lifecycle event: nothing changed"}})
async def fulfil_application(application_id: ApplicationId, body: FulfilIn, principal: Mover, now: Now,
                             request: Request):
    """The provider has made the resource (approved → fulfilled): the ``gov.cloud.resource.v1`` ``activated``
    event (subject ``resource_id``, id ``application-<id>``, under ``source``, which the token must be allowed to
    write) is judged by the ingest validator and published to the events topic; the step is recorded only once
    the broker has it. From ``effective_at`` on the resource's usage is the department's."""
    _may(principal, "fulfil")
    require_writable_sources(principal, [{"source": body.source}])
    effective_at = body.effective_at or now
    if effective_at > now + CLOCK_SKEW:
        raise unprocessable("effective_at: not in the future")

    async def publish(row: dict) -> None:
        if row["decided_at"] is not None and effective_at < row["decided_at"]:
            raise unprocessable("effective_at: not before the approval")
        event = lifecycle_event(row, body, effective_at)
        try:
            errors = await publish_event(request.app.state.producer, get_settings(), event)
        except (TimeoutError, KafkaError) as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "5"},
                                detail=f"broker: the lifecycle event was not acknowledged ({type(exc).__name__}); "
                                       "the application is still approved, fulfil it again") from None
        if errors:
            raise unprocessable("; ".join(errors))

    trial = None if body.trial_days is None else record_trial(body.resource_id, effective_at, body.trial_days, now,
                                                               get_settings().trial_rate_factor)
    note = f"resource {body.resource_id} from {body.source}" + (
        f", trial of {body.trial_days} days" if body.trial_days else "")
    return await _move(principal, application_id, "fulfil", now, note,
                       changes=lambda row: {"fulfilled_at": now, "resource_id": body.resource_id},
                       before_commit=publish, writes=trial)


@router.post("/v1/applications/{application_id}/go-live", response_model=ApplicationOut,
             responses={409: {"description": "the application is not in trial (the detail names the state)"}})
async def go_live_application(application_id: ApplicationId, principal: Mover, now: Now, body: StepIn | None = None):
    """The department (its own application) or admin ends the trial (试运行) early: from now on the resource's
    usage is billed at the normal price. A trial that reaches its planned end is live by itself."""
    return await _move(principal, application_id, "go-live", now, body.reason if body else None,
                       writes=end_trial(principal.subject, now))


def lifecycle_event(row: dict, body: FulfilIn, effective_at: datetime) -> dict:
    """The ``activated`` lifecycle event of a fulfilled application, as a provider would post it."""
    return {
        "specversion": "1.0", "id": f"application-{row['id']}", "source": body.source,
        "type": "gov.cloud.resource.v1", "subject": body.resource_id, "time": effective_at.isoformat(),
        "datacontenttype": "application/json",
        "data": {"action": "activated", "department_id": row["department_id"], "system": row["system"],
                 "effective_at": effective_at.isoformat(), "kind": row["kind"], "spec": row["spec"],
                 "application_id": row["id"]},
    }
