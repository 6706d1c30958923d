"""OpenAPI descriptions of request bodies that a handler reads itself rather than through a model (the ingest
endpoint parses its body once, by hand, for speed), so that generated clients and fuzzers still see them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter

from schemas.events import CloudEvent


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """Replace local ``$ref``s by their definitions: inside an OpenAPI document ``#/$defs/...`` would resolve
    against the document's root, not against this schema. The event contracts are not recursive."""
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def cloudevents_request_body() -> dict[str, Any]:
    """``openapi_extra`` for POST /v1/events: one CloudEvent (structured mode) or a batch (a non-empty array)."""
    schema = TypeAdapter(CloudEvent).json_schema()
    event = _inline({k: v for k, v in schema.items() if k != "$defs"}, schema.get("$defs", {}))
    event["title"] = "CloudEvent"
    batch = {"title": "CloudEvents batch", "type": "array", "items": event, "minItems": 1}
    return {"requestBody": {"required": True, "content": {
        "application/cloudevents+json": {"schema": event},
        "application/cloudevents-batch+json": {"schema": batch},
        "application/json": {"schema": {"oneOf": [event, batch]}},
    }}}


class ErrorDetail(BaseModel):
    """What an HTTPException answers: ``{"detail": "field: why"}``."""

    detail: str
