"""Metering API: the provider posts CloudEvents; each valid one is on the broker (acks=all) before we answer."""

from __future__ import annotations

import asyncio
from typing import Annotated

import orjson
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse

from schemas.api import IngestResult, RejectedEvent, Role
from schemas.events import event_identity, validate_event
from services.common.auth import Principal, require_roles
from services.common.config import get_settings
from services.common.guard import check_event_count, guard
from services.common.health import add_health_route
from services.common.lifespan import producer_lifespan
from services.common.kafka import batch_records


app = FastAPI(title="govmeter metering API", version="1.0", lifespan=producer_lifespan())
add_health_route(app)
guard(app, "metering")

BATCH_TYPES = ("application/cloudevents-batch+json",)


@app.post(
    "/v1/events",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=IngestResult,
    responses={400: {"description": "body is not JSON"}, 422: {"model": IngestResult},
               413: {"description": "over GOVMETER_MAX_EVENTS_PER_REQUEST events or GOVMETER_MAX_BODY_BYTES"}},
)
async def ingest_events(
    request: Request, principal: Annotated[Principal, Depends(require_roles(Role.PROVIDER, Role.ADMIN))]
):
    """Take one CloudEvent (an object) or a batch (an array, or ``application/cloudevents-batch+json``)."""
    body = await request.body()
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=f"body: not valid JSON ({exc})") from None
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in BATCH_TYPES and not isinstance(parsed, list):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="body: a CloudEvents batch must be a JSON array")
    raws = parsed if isinstance(parsed, list) else [parsed]
    check_event_count(len(raws))
    if not raws:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="body: the batch is empty")

    accepted: list[bytes] = []
    rejected: list[RejectedEvent] = []
    for index, raw in enumerate(raws):
        event, errors = validate_event(raw)
        if event is None:
            rejected.append(RejectedEvent(index=index, id=event_identity(raw)[1], errors=errors))
        else:
            accepted.append(orjson.dumps(raw))
    result = IngestResult(accepted=len(accepted), rejected=rejected)
    if not accepted:
        return JSONResponse(result.model_dump(), status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    settings = get_settings()
    producer = request.app.state.producer
    sends = [await producer.send(settings.events_topic, record)
             for record in batch_records(accepted, max_events=settings.ingest_record_events)]
    await asyncio.gather(*sends)  # every record acknowledged by the broker (acks=all) before we say accepted
    return result
