"""Write the JSON Schema of every contract to ``schemas/jsonschema/`` (``python -m schemas.export``).

A unit test fails when a model changes and the exported files were not regenerated."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, TypeAdapter

from schemas import api, events

OUT = Path(__file__).with_name("jsonschema")

CONTRACTS: dict[str, type[BaseModel] | TypeAdapter] = {
    "usage-event": events.EVENT_ADAPTERS[events.USAGE_TYPE],
    "resource-event": events.EVENT_ADAPTERS[events.RESOURCE_TYPE],
    "utilization-event": events.EVENT_ADAPTERS[events.UTILIZATION_TYPE],
    "ingest-result": api.IngestResult,
    "department": api.DepartmentIn,
    "rate-card": api.RateCardIn,
    "usage-report": api.UsageReport,
    "meter-catalogue": api.MeterCatalogue,
}


def rendered() -> dict[str, str]:
    return {
        f"{name}.schema.json": json.dumps(_schema(contract), indent=2, ensure_ascii=False, sort_keys=True)
        + "\n"
        for name, contract in CONTRACTS.items()
    }


def _schema(contract) -> dict:
    return contract.json_schema() if isinstance(contract, TypeAdapter) else contract.model_json_schema()


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for filename, text in rendered().items():
        (OUT / filename).write_text(text, encoding="utf-8")
        print(f"wrote {OUT / filename}")


if __name__ == "__main__":
    main()
