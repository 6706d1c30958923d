"""Metering API: the provider posts CloudEvents; each valid one is on the broker (acks=all) before we answer."""

from __future__ import annotations

import asyncio
from typing import Annotated

import orjson
from aiokafka.errors import KafkaError
from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse

from sqlalchemy import select

from schemas.api import DeadLetterOut, DeadLetterPage, IngestResult, RejectedEvent, Role
from schemas.bindings import HTTP_PREFIX, from_binary, http_attributes, is_binary, judge_structured, rename_errors
from schemas.events import MAX_TEXT, PRINTABLE, event_identity
from schemas.openapi import ErrorDetail, cloudevents_request_body
from services.common.auth import Principal, require_roles
from services.common.config import get_settings
from services.common.db import get_sessionmaker
from services.common.models import DeadLetter
from services.common.guard import check_event_count, guard
from services.common.health import add_health_route
from services.common.meters import add_meters_route
from services.common.openapi import document_error_details
from services.common.lifespan import producer_lifespan
from services.common.kafka import batch_records
from services.common.metrics import count_ingest
from services.common.events_out import publish
from services.common.observability import instrument
from services.common.source_binding import require_writable_sources
from services.metering.lag import router as lag_router


app = FastAPI(title="govmeter metering API", version="1.0", lifespan=producer_lifespan())
add_health_route(app)
add_meters_route(app)
instrument(app, "metering")
document_error_details(app)
guard(app, "metering")
app.include_router(lag_router)  # GET /v1/worker-lag (services/metering/lag.py)

BATCH_TYPES = ("application/cloudevents-batch+json",)


@app.post(
    "/v1/events",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=IngestResult,
    responses={400: {"model": ErrorDetail, "description": "body not JSON, or a ce- header not UTF-8"},
               413: {"model": ErrorDetail,
                     "description": "over GOVMETER_MAX_EVENTS_PER_REQUEST events or GOVMETER_MAX_BODY_BYTES"},
               415: {"model": ErrorDetail, "description": "binary mode: the data (Content-Type) is not JSON"},
               422: {"model": IngestResult, "description": "no valid event (or an empty batch: ErrorDetail)"},
               503: {"model": ErrorDetail, "description": "the broker did not acknowledge in time: nothing is "
                     "confirmed; send the same events (same ids) again after Retry-After seconds, counted once"}},
    openapi_extra=cloudevents_request_body(),
)
async def ingest_events(
    request: Request, principal: Annotated[Principal, Depends(require_roles(Role.PROVIDER, Role.ADMIN))]
):
    """Take one CloudEvent (an object) or a batch (an array, or ``application/cloudevents-batch+json``) in
    structured mode, or one event in binary mode: its attributes in ``ce-*`` headers (percent-encoded), its JSON
    data as the body, ``Content-Type`` its datacontenttype. ``data_base64`` (base64 of the JSON data) is taken for
    ``data``. Every mode is judged by the same validator; binary-mode errors name the header (``ce-type: …``)."""
    body = await request.body()
    content_type = request.headers.get("content-type")
    if is_binary(content_type, request.headers.keys(), HTTP_PREFIX):
        raws, binary = [binary_event(request, content_type, body)], True
    else:
        raws, binary = structured_events(content_type, body), False
    check_event_count(len(raws))
    require_writable_sources(principal, raws)
    if not raws:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="body: the batch is empty")

    accepted: list[bytes] = []
    rejected: list[RejectedEvent] = []
    for index, raw in enumerate(raws):
        raw, event, errors, _ = judge_structured(raw)
        if event is None:
            errors = rename_errors(errors, HTTP_PREFIX) if binary else errors
            rejected.append(RejectedEvent(index=index, id=event_identity(raw)[1], errors=errors))
        else:
            accepted.append(orjson.dumps(raw))  # the structured form, whatever the mode it came in
    result = IngestResult(accepted=len(accepted), rejected=rejected)
    if not accepted:
        count_ingest(raws, rejected, accepted=False)
        return JSONResponse(result.model_dump(), status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    settings = get_settings()
    records = batch_records(accepted, max_events=settings.ingest_record_events)
    try:
        # Every record acknowledged by the broker (acks=all) before we say accepted, or a bounded 503: a provider
        # must be able to tell "counted" from "try again". Records the broker takes after the 503 count once, as
        # the resent copies dedupe on (source, id).
        await asyncio.wait_for(publish(request.app.state.producer, settings.events_topic, records),
                               timeout=settings.ingest_ack_timeout_seconds)
    except (TimeoutError, KafkaError) as exc:
        retry_after = max(1, round(settings.ingest_ack_timeout_seconds))
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=f"broker: the events were not acknowledged ({type(exc).__name__}); nothing is confirmed, send the "
                   f"same events again after {retry_after} s (the same ids are counted once)",
            headers={"Retry-After": str(retry_after)},
        ) from None
    count_ingest(raws, rejected, accepted=True)
    return result


def structured_events(content_type: str | None, body: bytes) -> list:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=f"body: not valid JSON ({exc})") from None
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type in BATCH_TYPES and not isinstance(parsed, list):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="body: a CloudEvents batch must be a JSON array")
    return parsed if isinstance(parsed, list) else [parsed]


def binary_event(request: Request, content_type: str | None, body: bytes) -> dict:
    """The structured event of a binary-mode request; 400 (415 for data that is not JSON) naming the header or
    the body when it cannot be read as one."""
    attributes, errors = http_attributes(request.headers.items())
    raw = None
    if not errors:
        raw, errors = from_binary(attributes, content_type, body)
    if raw is None:
        code = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE if errors[0].startswith("content-type") else \
            status.HTTP_400_BAD_REQUEST
        raise HTTPException(code, detail="; ".join(errors))
    return raw


@app.get("/v1/dead-letters", response_model=DeadLetterPage)
async def list_dead_letters(
    principal: Annotated[Principal, Depends(require_roles(Role.PROVIDER, Role.ADMIN))],
    source: Annotated[str | None, Query(max_length=MAX_TEXT, pattern=PRINTABLE)] = None,
    reason: Annotated[str | None, Query(max_length=MAX_TEXT, pattern=PRINTABLE)] = None,
    after_id: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
):
    """What the worker could not count, oldest first, with the reason and the raw record: invalid input produced
    straight into Kafka, conflicting duplicates, events the database refused. Page with ``after_id``. A provider
    sees the letters of its token's sources; admin sees all, including records with no readable source."""
    query = select(DeadLetter).where(DeadLetter.id > after_id).order_by(DeadLetter.id).limit(limit + 1)
    if source is not None:
        query = query.where(DeadLetter.source == source)
    if principal.role == Role.PROVIDER:  # a collector sees what it sent: its sources' letters, not another's
        query = query.where(DeadLetter.source.in_(sorted(principal.sources)))
    if reason is not None:
        query = query.where(DeadLetter.reason == reason)
    async with get_sessionmaker()() as session:
        rows = (await session.scalars(query)).all()
    page = [DeadLetterOut(id=r.id, received_at=r.created_at, reason=r.reason, errors=r.errors, source=r.source,
                          event_id=r.event_id, topic=r.topic, partition=r.partition, offset=r.offset,
                          payload=r.payload) for r in rows[:limit]]
    return DeadLetterPage(dead_letters=page, next_after_id=page[-1].id if len(rows) > limit else None)
