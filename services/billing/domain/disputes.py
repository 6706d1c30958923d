"""Disputes of a final bill's line (Art. 13), the pure rules: which line a dispute names and what it came to, who
may move a dispute from which state, how much an upheld dispute may credit, and the credit adjustment it becomes.

States: ``open`` → ``rejected`` (with a reply) or ``upheld`` (with an amount). Both answers are final: a department
that still disagrees opens a new dispute on the line once none is open."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from decimal import Decimal

import orjson

from services.billing.domain.periods import next_open_period
from schemas.money import FEN, exact

OPEN, REJECTED, UPHELD = "open", "rejected", "upheld"
STATES = (OPEN, REJECTED, UPHELD)
ANSWERS = (REJECTED, UPHELD)
CREDIT_REFERENCE = "dispute:{id}"  # the credit adjustment's reference: where the ledger names the dispute


class DisputeRefused(ValueError):
    """A request the rules refuse; ``status`` is the HTTP answer, the message starts with the field it is about."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class DisputedLine:
    meter: str
    quantity: str
    amount: Decimal  # the line's amount on the final bill, as issued (yuan, two places)


def line_of(document: bytes, bill_id: str, meter: str) -> DisputedLine:
    """The line for ``meter`` on a final bill's stored JSON; refused (422, ``meter``) when the bill has none."""
    # A trial (试运行) line is not disputed: its rate is documented; the meter's normal line is.
    lines = {line["meter"]: line for line in orjson.loads(document)["lines"] if "trial_rate" not in line}
    if meter not in lines:
        listed = ", ".join(sorted(lines)) or "none"
        raise DisputeRefused(422, f"meter: bill {bill_id} has no line for {meter} (its lines: {listed})")
    line = lines[meter]
    return DisputedLine(meter, line["quantity"], Decimal(line["amount"]))


def check_answer(dispute_id: int, status: str, answered_by: str | None, answered_at) -> None:
    """Only an open dispute is answered: a second answer is a 409 naming the state it is in and who put it there."""
    if status != OPEN:
        raise DisputeRefused(409, f"status: dispute {dispute_id} is already {status} (by {answered_by} at "
                                  f"{answered_at.isoformat()}); an answer is final")


@exact
def credit_limit(line_amount: Decimal, upheld_before: Iterable[Decimal]) -> Decimal:
    """The most an upheld dispute of a line may credit: the line's amount less what earlier upheld disputes of the
    same line already credited (a line is never credited more than it charged), never below zero."""
    return max(line_amount - sum(upheld_before, Decimal(0)), Decimal(0))


@exact
def check_credit(amount: Decimal, line_amount: Decimal, upheld_before: Iterable[Decimal]) -> Decimal:
    """The upheld ``amount`` if the line can take it, else a 422 naming ``amount`` and the limit."""
    before = list(upheld_before)
    limit = credit_limit(line_amount, before)
    if amount > limit:
        credited = sum(before, Decimal(0))
        already = f" less {credited.quantize(FEN)} already credited by earlier disputes" if before else ""
        raise DisputeRefused(422, f"amount: at most {limit.quantize(FEN)} (the line's {line_amount.quantize(FEN)}"
                                  f"{already})")
    return amount


def credit_period(disputed_period: str, closed: Collection[str]) -> str:
    """The department's next open bill after the disputed one: where the credit lands (as late changes do)."""
    return next_open_period(disputed_period, closed)


def credit_reason(dispute_id: int, bill_id: str, meter: str) -> str:
    """The credit adjustment's reason, naming the dispute, the bill and the line (shown on the bill and its CSV)."""
    return f"争议 #{dispute_id} 成立 (dispute upheld): {bill_id} {meter}"


def credit_reference(dispute_id: int) -> str:
    return CREDIT_REFERENCE.format(id=dispute_id)
