"""Maker/checker rules for rate cards: who may decide, never the proposer, and the ledger's record of it."""

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.billing.domain.ledger import GENESIS, chain, verify_chain
from services.billing.domain.rate_card_approvals import (
    APPROVED,
    PENDING,
    REJECTED,
    Decider,
    decision_refusal,
    is_conflict,
    ledger_entry,
    missing_entries,
)


def test_a_second_admin_or_finance_may_decide_a_pending_card():
    assert decision_refusal(PENDING, "alice", Decider("bob", "admin")) is None
    assert decision_refusal(PENDING, "alice", Decider("czj-finance", "finance")) is None


@given(st.text(min_size=1, max_size=20), st.sampled_from(["admin", "finance"]))
def test_the_proposer_never_decides_their_own_card_whatever_their_role(subject, role):
    refusal = decision_refusal(PENDING, subject, Decider(subject, role))
    assert refusal is not None and refusal.startswith("sub:") and not is_conflict(refusal)


def test_departments_and_the_provider_never_decide():
    for role in ("department", "provider"):
        refusal = decision_refusal(PENDING, "alice", Decider("bob", role))
        assert refusal.startswith("role:") and not is_conflict(refusal)


def test_a_decided_card_is_never_decided_again():
    for status in (APPROVED, REJECTED):
        refusal = decision_refusal(status, "alice", Decider("bob", "admin"))
        assert refusal == f"status: the proposal is already {status}" and is_conflict(refusal)


def test_a_decision_is_a_ledger_entry_of_no_department_in_the_cards_first_local_month():
    at = datetime(2093, 1, 5, 2, tzinfo=UTC)
    # 2092-12-31T16:00Z is local midnight of 1 January 2093
    entry = ledger_entry("rate_card_approved", "2093-01", datetime(2092, 12, 31, 16, tzinfo=UTC), "bob", at,
                         reason="proposed by alice")
    assert (entry.department_id, entry.period, entry.amount, entry.reference, entry.created_by) == (
        None, "2093-01", Decimal(0), "2093-01", "bob")
    assert verify_chain(chain([entry], 0, GENESIS)) == []


def test_the_ledger_vouches_for_every_proposal_and_decision():
    at = datetime(2093, 1, 5, 2, tzinfo=UTC)
    start = datetime(2093, 1, 1, tzinfo=UTC)
    proposals = [{"id": 1, "version": "v1", "status": APPROVED, "proposed_by": "alice", "decided_by": "bob"},
                 {"id": 2, "version": "v2", "status": PENDING, "proposed_by": "alice", "decided_by": None}]
    entries = [ledger_entry("rate_card_proposed", "v1", start, "alice", at),
               ledger_entry("rate_card_approved", "v1", start, "bob", at),
               ledger_entry("rate_card_proposed", "v2", start, "alice", at)]
    assert missing_entries(proposals, entries) == []
    assert missing_entries(proposals, entries[:1] + entries[2:]) == [
        "the rate_card_approved entry of rate card v1 (proposal 1, by bob) is missing: deleted"]
    # an approval recorded under someone else's name does not stand for the checker's
    forged = [entries[0], ledger_entry("rate_card_approved", "v1", start, "alice", at), entries[2]]
    assert len(missing_entries(proposals, forged)) == 1
