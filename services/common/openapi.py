"""The OpenAPI document says what the 4xx answers really carry: besides FastAPI's own validation errors (a list
under ``detail``), the handlers answer 422 with ``{"detail": "field: why"}`` (an HTTPException). Clients and the
fuzzer (tests/integration/test_fuzz_openapi.py) then expect what they get."""

from __future__ import annotations

from fastapi import FastAPI

from schemas.openapi import ErrorDetail

_ERROR_DETAIL = {"$ref": "#/components/schemas/ErrorDetail"}


def document_error_details(app: FastAPI) -> None:
    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)  # builds and caches app.openapi_schema
            schema.setdefault("components", {}).setdefault("schemas", {})["ErrorDetail"] = \
                ErrorDetail.model_json_schema()
            for operation in (op for path in schema.get("paths", {}).values() for op in path.values()):
                content = operation.get("responses", {}).get("422", {}).get("content", {}).get("application/json")
                if content and "schema" in content and _ERROR_DETAIL not in content["schema"].get("anyOf", []):
                    content["schema"] = {"anyOf": [content["schema"], _ERROR_DETAIL]}
        return app.openapi_schema

    app.openapi = openapi
