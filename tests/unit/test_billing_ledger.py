"""The ledger's hash chain: canonical form, linking, and naming every edited, deleted or reordered entry."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.billing.domain.ledger import GENESIS, LedgerEntry, canonical_form, chain, entry_hash, verify_chain

T0 = datetime(2050, 4, 4, 1, 2, 3, 456789, tzinfo=UTC)


def entries(n: int) -> list[LedgerEntry]:
    raw = [LedgerEntry(0, "bill_line", department_id=f"dep-{i % 3}", period="2050-03", amount=Decimal(i) / 4,
                       created_by="auto-close", created_at=T0 + timedelta(seconds=i), bill_id=f"GM-2050-03-dep-{i % 3}",
                       meter="compute.vcpu", quantity=Decimal("12.500")) for i in range(n)]
    return chain(raw, 0, GENESIS)


def test_the_canonical_form_is_sorted_compact_json_with_plain_decimals_and_utc_instants():
    entry = entries(1)[0]
    text = canonical_form(replace(entry, amount=Decimal("12.50"), quantity=Decimal("1E+3"))).decode()
    assert text.startswith('{"amount":"12.5","bill_id":"GM-2050-03-dep-0","content_hash":null,')
    assert '"created_at":"2050-04-04T01:02:03.456789Z"' in text and '"quantity":"1000"' in text
    assert '"hash"' not in text and '"prev_hash":"' + GENESIS + '"' in text and '"seq":1' in text
    # the same value at another scale (as PostgreSQL may return it) hashes the same
    assert entry_hash(replace(entry, amount=Decimal("0.000"))) == entry_hash(replace(entry, amount=Decimal(0)))


def test_a_chain_links_each_entry_to_the_previous_and_verifies():
    ledger = entries(5)
    assert [e.seq for e in ledger] == [1, 2, 3, 4, 5]
    assert ledger[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(ledger, ledger[1:]))
    assert verify_chain(ledger) == []
    more = chain([replace(ledger[0], seq=0, hash="")], ledger[-1].seq, ledger[-1].hash)
    assert more[0].seq == 6 and verify_chain(ledger + more) == []


@given(st.integers(0, 7), st.sampled_from(["amount", "department_id", "created_at", "meter", "kind"]))
def test_an_edited_entry_is_named(index, field):
    ledger = entries(8)
    changed = {"amount": Decimal("999"), "department_id": "someone-else", "created_at": T0 - timedelta(days=1),
               "meter": "compute.gpu", "kind": "adjustment"}[field]
    ledger[index] = replace(ledger[index], **{field: changed})
    problems = verify_chain(ledger)
    assert [(p.seq, p.problem) for p in problems] == [(index + 1, f"entry {index + 1} does not match its hash: edited")]


@given(st.integers(0, 6))
def test_a_deleted_entry_is_named(index):
    ledger = entries(8)
    del ledger[index]
    (problem,) = verify_chain(ledger)
    assert problem.seq == index + 2
    assert problem.problem == f"entry {index + 1} missing before entry {index + 2}: deleted"


def test_an_entry_edited_and_rehashed_breaks_the_link_to_the_next():
    ledger = entries(4)
    forged = replace(ledger[1], amount=Decimal("0.01"))
    ledger[1] = replace(forged, hash=entry_hash(forged))
    (problem,) = verify_chain(ledger)
    assert problem.seq == 3 and "does not follow entry 2" in problem.problem


@given(st.integers(0, 6), st.integers(1, 7))
def test_reordered_entries_are_named_with_where_they_were(index, distance):
    ledger = entries(8)
    other = min(index + distance, 7)
    if other == index:
        return
    a, b = ledger[index], ledger[other]
    ledger[index], ledger[other] = replace(b, seq=a.seq), replace(a, seq=b.seq)
    problems = {(p.seq, p.problem) for p in verify_chain(ledger)}
    assert (a.seq, f"entry {a.seq} was entry {b.seq}: reordered") in problems
    assert (b.seq, f"entry {b.seq} was entry {a.seq}: reordered") in problems
