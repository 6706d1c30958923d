"""The billing ledger's hash chain (pure): canonical form of an entry, its hash, and verification.

Canonical form: a JSON object of every field except ``hash`` (``seq`` and ``prev_hash`` included), keys sorted,
no whitespace, UTF-8; decimals as plain strings without trailing zeros (``"12.5"``, ``"-3"``, ``"0"``), instants
as UTC ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, absent values as null. ``hash`` = sha256 hex of those bytes. The first
entry's ``prev_hash`` is 64 zeros. Because each hash covers the previous one and the entry's own ``seq``, an
edited entry fails its own hash, and a deleted, inserted or reordered one breaks the link that follows it."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Iterable, Sequence

import orjson

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    seq: int
    kind: str  # bill_line | late_adjustment | bill | adjustment
    department_id: str | None  # None: a rate card's entries (they concern every department)
    period: str
    amount: Decimal
    created_by: str
    created_at: datetime
    bill_id: str | None = None
    original_period: str | None = None
    meter: str | None = None
    quantity: Decimal | None = None
    reason: str | None = None
    reference: str | None = None
    content_hash: str | None = None
    prev_hash: str = GENESIS
    hash: str = ""


def _decimal_text(value: Decimal) -> str:
    return "0" if value == 0 else format(value.normalize(), "f")


def canonical_form(entry: LedgerEntry) -> bytes:
    fields = asdict(entry)
    del fields["hash"]
    for name, value in fields.items():
        if isinstance(value, Decimal):
            fields[name] = _decimal_text(value)
        elif isinstance(value, datetime):
            fields[name] = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


def entry_hash(entry: LedgerEntry) -> str:
    return hashlib.sha256(canonical_form(entry)).hexdigest()


def chain(entries: Iterable[LedgerEntry], last_seq: int, last_hash: str) -> list[LedgerEntry]:
    """Number and link new entries after the ledger's head (``last_seq`` 0 and GENESIS for an empty ledger)."""
    linked = []
    for entry in entries:
        last_seq += 1
        entry = replace(entry, seq=last_seq, prev_hash=last_hash, hash="")
        entry = replace(entry, hash=entry_hash(entry))
        linked.append(entry)
        last_hash = entry.hash
    return linked


@dataclass(frozen=True, slots=True)
class LedgerProblem:
    seq: int
    problem: str


def verify_chain(entries: Sequence[LedgerEntry]) -> list[LedgerProblem]:
    """Every problem in the chain, naming the entry (by seq) where it shows. ``entries`` in seq order."""
    problems: list[LedgerProblem] = []
    original = _positions_by_links(entries)
    previous_seq, previous_hash = 0, GENESIS
    for entry in entries:
        if entry.seq != previous_seq + 1:
            missing = (f"entry {previous_seq + 1}" if entry.seq == previous_seq + 2
                       else f"entries {previous_seq + 1}–{entry.seq - 1}")
            problems.append(LedgerProblem(entry.seq, f"{missing} missing before entry {entry.seq}: deleted"))
        if entry_hash(entry) != entry.hash:
            was = original.get(entry.hash)
            if was is not None and was != entry.seq and entry_hash(replace(entry, seq=was)) == entry.hash:
                problems.append(LedgerProblem(entry.seq, f"entry {entry.seq} was entry {was}: reordered"))
            else:
                problems.append(LedgerProblem(entry.seq, f"entry {entry.seq} does not match its hash: edited"))
        elif entry.prev_hash != previous_hash and entry.seq == previous_seq + 1:
            problems.append(LedgerProblem(
                entry.seq, f"entry {entry.seq} does not follow entry {previous_seq}: entry {previous_seq} was "
                           "replaced, or entries were inserted or reordered"))
        previous_seq, previous_hash = entry.seq, entry.hash
    return problems


def _positions_by_links(entries: Sequence[LedgerEntry]) -> dict[str, int]:
    """hash → position in the chain the prev_hash links describe, walking from GENESIS. Rows moved to other
    seqs keep their links, so this is where they stood before."""
    following = {e.prev_hash: e for e in entries}
    positions: dict[str, int] = {}
    current, position = GENESIS, 0
    while current in following and position <= len(entries):
        entry = following[current]
        position += 1
        positions[entry.hash] = position
        current = entry.hash
    return positions
