"""Contracts of rate card approval (maker/checker): a proposed card, pending until a second person decides."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.api import NO_NUL, RateCardIn


class RateCardProposal(RateCardIn):
    """``POST /v1/rate-cards`` (202) and ``GET /v1/rate-cards/proposals``: a proposed card and its decision.
    ``rate_card_id`` is the stored card once approved."""

    id: int
    unpriced_meters: list[str]
    status: Literal["pending", "approved", "rejected"]
    proposed_by: str
    proposed_at: datetime
    decided_by: str | None = None
    decided_role: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None
    rate_card_id: int | None = None


class RateCardRejection(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "存储单价与招标文件不符 (storage price "
                                                                            "differs from the tender)"}]})

    reason: Annotated[str, Field(min_length=1, max_length=500, pattern=NO_NUL)]
