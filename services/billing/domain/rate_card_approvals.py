"""Maker/checker for rate cards (pure): who may propose, who may decide, and the ledger entries of a decision.

A rate card changes every department's figures, so one person may not both propose and apply it. An admin
proposes; a *different* person, an admin or the finance bureau (finance), approves or rejects it. The two are
told apart by their tokens' subjects (``sub``), compared exactly: the proposer can never decide on their own
card, under any role. Rejecting needs a reason. A decision is final: pending → approved or pending → rejected."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Iterable, Mapping

from schemas.api import Role
from services.billing.domain.ledger import LedgerEntry
from services.common.periods import month_of

PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
STATUSES = (PENDING, APPROVED, REJECTED)
PROPOSERS = (Role.ADMIN,)
CHECKERS = (Role.ADMIN, Role.FINANCE)
# Ledger kinds of a card's life; these entries carry no amount and belong to no department.
PROPOSED, APPROVED_ENTRY, REJECTED_ENTRY = "rate_card_proposed", "rate_card_approved", "rate_card_rejected"


@dataclass(frozen=True)
class Decider:
    subject: str
    role: str


def decision_refusal(status: str, proposed_by: str, decider: Decider) -> str | None:
    """Why ``decider`` may not approve or reject a proposal in ``status`` made by ``proposed_by``; None if they
    may. The message is the API's 403/409 detail."""
    if decider.role not in CHECKERS:
        return f"role: a rate card is approved or rejected by {' or '.join(CHECKERS)}, not {decider.role}"
    if decider.subject == proposed_by:
        return (f"sub: {decider.subject} proposed this rate card; a second, different person must approve or "
                "reject it")
    if status != PENDING:
        return f"status: the proposal is already {status}"
    return None


def is_conflict(refusal: str) -> bool:
    """A refusal about the proposal's state (409), not about who asks (403)."""
    return refusal.startswith("status:")


def ledger_entry(kind: str, version: str, effective_from: datetime, actor: str, at: datetime,
                 reason: str | None = None) -> LedgerEntry:
    """The ledger's record of a proposal, approval or rejection: who and when, the card's version as the
    reference, its first period as the period (the one its re-pricing starts in), no amount."""
    return LedgerEntry(0, kind, department_id=None, period=month_of(effective_from), amount=Decimal(0),
                       created_by=actor, created_at=at, reference=version, reason=reason)


def missing_entries(proposals: Iterable[Mapping], entries: Iterable[LedgerEntry]) -> list[str]:
    """What the ledger lacks for rate card proposals (rows with ``id``, ``version``, ``status``, ``proposed_by``,
    ``decided_by``): each proposal's entry, and each decision's, by kind, version and who."""
    recorded = {(e.kind, e.reference, e.created_by) for e in entries if e.kind.startswith("rate_card_")}
    missing = []
    for p in proposals:
        wanted = [(PROPOSED, p["proposed_by"])]
        if p["status"] != PENDING:
            wanted.append((APPROVED_ENTRY if p["status"] == APPROVED else REJECTED_ENTRY, p["decided_by"]))
        missing += [f"the {kind} entry of rate card {p['version']} (proposal {p['id']}, by {who}) is missing: deleted"
                    for kind, who in wanted if (kind, p["version"], who) not in recorded]
    return missing
