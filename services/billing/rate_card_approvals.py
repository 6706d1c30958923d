"""Rate cards take effect only when approved (maker/checker, Art. 7): proposals in PostgreSQL and their routes.

``POST /v1/rate-cards`` (admin) only proposes: the card waits in ``rate_card_proposals`` and changes no figure.
``POST /v1/rate-cards/proposals/{id}/approve`` by someone else (admin or finance; the rules are in
services.billing.domain.rate_card_approvals) stores it exactly as a card was stored before this workflow
(services.reference.store.store_rate_card: the card, re-pricing stored usage from its effective instant under the
exclusive attribution lock), marks the proposal approved and appends the decision to the ledger, in one
transaction; then the card is published to the rate-card topic. ``…/reject`` closes it with a reason."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status

from schemas.api import RateCardIn, RateCardOut, Role
from schemas.rate_card_approvals import RateCardProposal, RateCardRejection
from services.billing.domain.rate_card_approvals import (
    APPROVED,
    APPROVED_ENTRY,
    PROPOSED,
    REJECTED,
    REJECTED_ENTRY,
    Decider,
    decision_refusal,
    is_conflict,
    ledger_entry,
)
from services.billing.ledger import append_entries
from services.common.auth import Principal, require_roles
from services.common.config import get_settings
from services.common.db import get_engine, raw_connection, raw_transaction
from services.common.decimal_json import DecimalJSONRoute
from services.common.scope import require_city_wide
from services.common.locks import lock_billing
from services.reference.rate_cards import with_unpriced
from services.reference.store import AlreadyExists, store_rate_card

COLUMNS = ("id, version, effective_from, currency, prices, status, proposed_by, proposed_at, decided_by, "
           "decided_role, decided_at, reason, rate_card_id")


class UnknownProposal(LookupError):
    pass


class DecisionRefused(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _proposal(row) -> dict:
    return with_unpriced(dict(row))  # jsonb arrives decoded (the engine's codec)


async def _refuse_taken_version(conn, version: str) -> None:
    taken = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM rate_cards WHERE version = $1) "
        "OR EXISTS (SELECT 1 FROM rate_card_proposals WHERE version = $1 AND status <> 'rejected')", version)
    if taken:
        raise AlreadyExists(f"version: rate card {version} already exists or is pending approval")


async def propose_rate_card(engine, card: RateCardIn, proposed_by: str) -> dict:
    """Keep ``card`` as a pending proposal (and its ledger entry); nothing is priced with it yet."""
    prices = orjson.loads(card.model_dump_json(include={"prices"}))["prices"]
    proposed_at = datetime.now(UTC)
    async with raw_transaction(engine) as conn:
        await lock_billing(conn)  # one ledger appender at once
        await _refuse_taken_version(conn, card.version)
        row = await conn.fetchrow(
            f"""
            INSERT INTO rate_card_proposals (version, effective_from, currency, prices, proposed_by, proposed_at)
            VALUES ($1, $2, $3, $4::jsonb, $5, $6) RETURNING {COLUMNS}
            """,
            card.version, card.effective_from, card.currency, orjson.dumps(prices).decode(), proposed_by, proposed_at,
        )
        await append_entries(conn, [ledger_entry(PROPOSED, card.version, card.effective_from, proposed_by,
                                                 proposed_at)])
    return _proposal(row)


async def _pending_for(conn, proposal_id: int, decider: Decider):
    """The proposal, locked for its decision; UnknownProposal or DecisionRefused when it may not be decided."""
    await lock_billing(conn)  # before the attribution lock, as a close
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM rate_card_proposals WHERE id = $1 FOR UPDATE", proposal_id)
    if row is None:
        raise UnknownProposal(f"proposal_id: no rate card proposal {proposal_id}")
    refusal = decision_refusal(row["status"], row["proposed_by"], decider)
    if refusal is not None:
        raise DecisionRefused(refusal)
    return row


async def approve_rate_card(engine, proposal_id: int, decider: Decider) -> dict:
    """Store the proposed card as effective (re-pricing stored usage, as any new card), mark the proposal
    approved and record the approval in the ledger, in one transaction. Returns the stored card."""
    async with raw_transaction(engine) as conn:
        row = await _pending_for(conn, proposal_id, decider)
        approved_at = datetime.now(UTC)
        card = RateCardIn(version=row["version"], effective_from=row["effective_from"], currency=row["currency"],
                          prices=row["prices"])
        stored = await store_rate_card(conn, card, row["proposed_by"], approval={
            "proposed_at": row["proposed_at"], "approved_by": decider.subject, "approved_at": approved_at})
        await conn.execute(
            "UPDATE rate_card_proposals SET status = $2, decided_by = $3, decided_role = $4, decided_at = $5, "
            "rate_card_id = $6 WHERE id = $1",
            proposal_id, APPROVED, decider.subject, decider.role, approved_at, stored["id"],
        )
        await append_entries(conn, [ledger_entry(APPROVED_ENTRY, card.version, card.effective_from, decider.subject,
                                                 approved_at, reason=f"proposed by {row['proposed_by']}")])
    return with_unpriced(stored)


async def reject_rate_card(engine, proposal_id: int, decider: Decider, reason: str) -> dict:
    """Close the proposal as rejected with ``reason`` (and its ledger entry); no card is stored."""
    async with raw_transaction(engine) as conn:
        await _pending_for(conn, proposal_id, decider)
        rejected_at = datetime.now(UTC)
        row = await conn.fetchrow(
            f"UPDATE rate_card_proposals SET status = $2, decided_by = $3, decided_role = $4, decided_at = $5, "
            f"reason = $6 WHERE id = $1 RETURNING {COLUMNS}",
            proposal_id, REJECTED, decider.subject, decider.role, rejected_at, reason,
        )
        await append_entries(conn, [ledger_entry(REJECTED_ENTRY, row["version"], row["effective_from"],
                                                 decider.subject, rejected_at, reason=reason)])
    return _proposal(row)


async def list_proposals(engine, status_filter: str | None) -> list[dict]:
    async with raw_connection(engine) as conn:
        rows = await conn.fetch(
            f"SELECT {COLUMNS} FROM rate_card_proposals WHERE $1::text IS NULL OR status = $1 ORDER BY id",
            status_filter)
    return [_proposal(r) for r in rows]


async def publish_rate_card(producer, card: RateCardOut) -> None:
    """Put an effective card on the compacted rate-card topic, keyed by its version."""
    await producer.send_and_wait(get_settings().rate_card_topic, orjson.dumps(card.model_dump(mode="json")),
                                 key=card.version.encode())


# --- routes (mounted by the billing API) ---------------------------------------------------------------------

router = APIRouter(route_class=DecimalJSONRoute, tags=["rate cards"])
# Rate cards price the whole city: the city finance bureau or a second admin decides, never a district office.
Checker = Annotated[Principal, Depends(require_city_wide(Role.ADMIN, Role.FINANCE))]
ProposalId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _refused(exc: DecisionRefused) -> HTTPException:
    code = status.HTTP_409_CONFLICT if is_conflict(exc.detail) else status.HTTP_403_FORBIDDEN
    return HTTPException(code, detail=exc.detail)


@router.post("/v1/rate-cards", status_code=status.HTTP_202_ACCEPTED, response_model=RateCardProposal)
async def create_rate_card(card: RateCardIn, principal: Annotated[Principal, Depends(require_roles(Role.ADMIN))]):
    """Propose a rate card. It is pending, and prices nothing, until someone else approves it
    (``POST /v1/rate-cards/proposals/{id}/approve``)."""
    try:
        return await propose_rate_card(get_engine(), card, proposed_by=principal.subject)
    except AlreadyExists as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None


@router.get("/v1/rate-cards/proposals", response_model=list[RateCardProposal])
async def get_proposals(principal: Checker,
                        state: Annotated[Literal["pending", "approved", "rejected"] | None,
                                         Query(alias="status")] = None):
    """Proposed rate cards, oldest first (``status=pending``: those waiting for a decision)."""
    return await list_proposals(get_engine(), state)


@router.post("/v1/rate-cards/proposals/{proposal_id}/approve", status_code=status.HTTP_201_CREATED,
             response_model=RateCardOut,
             responses={403: {"description": "the caller proposed this card, or may not approve"},
                        404: {"description": "no such proposal"}, 409: {"description": "already decided"}})
async def approve(proposal_id: ProposalId, principal: Checker, request: Request):
    """Approve a pending card (someone other than its proposer): it is stored, re-prices stored usage from its
    ``effective_from`` and is published, exactly as a new card. Returns the card with who proposed and approved it."""
    try:
        stored = await approve_rate_card(get_engine(), proposal_id, Decider(principal.subject, principal.role))
    except UnknownProposal as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    except DecisionRefused as exc:
        raise _refused(exc) from None
    except AlreadyExists as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    out = RateCardOut(**stored)
    await publish_rate_card(request.app.state.producer, out)
    return out


@router.post("/v1/rate-cards/proposals/{proposal_id}/reject", response_model=RateCardProposal,
             responses={403: {"description": "the caller proposed this card, or may not reject"},
                        404: {"description": "no such proposal"}, 409: {"description": "already decided"}})
async def reject(proposal_id: ProposalId, body: RateCardRejection, principal: Checker):
    """Reject a pending card with a reason (someone other than its proposer). Nothing is priced with it."""
    try:
        return await reject_rate_card(get_engine(), proposal_id, Decider(principal.subject, principal.role),
                                      body.reason)
    except UnknownProposal as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    except DecisionRefused as exc:
        raise _refused(exc) from None
