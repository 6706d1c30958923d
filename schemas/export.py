"""Write the JSON Schema of every contract to ``schemas/jsonschema/`` (``python -m schemas.export``).

A unit test fails when a model changes and the exported files were not regenerated."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from schemas import api, events

OUT = Path(__file__).with_name("jsonschema")

CONTRACTS: dict[str, type[BaseModel]] = {
    "usage-event": events.UsageEvent,
    "resource-event": events.ResourceEvent,
    "utilization-event": events.UtilizationEvent,
    "ingest-result": api.IngestResult,
    "department": api.DepartmentIn,
    "rate-card": api.RateCardIn,
    "usage-report": api.UsageReport,
}


def rendered() -> dict[str, str]:
    return {
        f"{name}.schema.json": json.dumps(model.model_json_schema(), indent=2, ensure_ascii=False, sort_keys=True)
        + "\n"
        for name, model in CONTRACTS.items()
    }


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for filename, text in rendered().items():
        (OUT / filename).write_text(text, encoding="utf-8")
        print(f"wrote {OUT / filename}")


if __name__ == "__main__":
    main()
