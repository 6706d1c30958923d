"""Money rules shared by every figure govmeter shows: CNY, to the fen, half-up; the largest figures it takes, and
the decimal context its arithmetic runs in so that every figure within them stays exact."""

from __future__ import annotations

import functools
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal, DivisionByZero, InvalidOperation, Overflow, \
    localcontext
from typing import Callable, TypeVar

CURRENCY = "CNY"
FEN = Decimal("0.01")
# Quantities reach 30 digits (21 whole, 9 places) and amounts more (quantity × a price to 6 places), beyond
# Decimal's default 28-digit context, which would round them: exact sums and products run with this precision.
EXACT_DIGITS = 60

# The maxima (all exclusive), refused with 422 before anything is stored:
MAX_QUANTITY = Decimal(10) ** 21  # an event's quantity (21 whole digits, 9 places: the events contract)
MAX_UNIT_PRICE = Decimal(10) ** 6  # a unit price in yuan (6 places)
MAX_AMOUNT = Decimal(10) ** 12  # a manual adjustment (either sign) or a budget in yuan (2 places)

# A product of the largest quantity and the largest price has 21 + 9 + 6 + 6 = 42 digits; 60 leave room to add up
# 10^18 of them exactly. Python's default 28 digits would round such products silently and make ``quantize``
# raise from 10^26 yuan on (a provider could then block a department's close with huge quantities).
# PostgreSQL's NUMERIC columns are unconstrained and sum exactly at any of these sizes.
EXACT = Context(prec=EXACT_DIGITS, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow])

F = TypeVar("F", bound=Callable)


def exact(function: F) -> F:
    """Run ``function`` in the EXACT decimal context (for the pure money and rating code)."""

    @functools.wraps(function)
    def in_exact_context(*args, **kwargs):
        with localcontext(EXACT):
            return function(*args, **kwargs)

    return in_exact_context  # type: ignore[return-value]


def round_fen(amount: Decimal) -> Decimal:
    """Round an exact yuan amount to the fen, half-up (0.005 → 0.01, -0.005 → -0.01)."""
    return amount.quantize(FEN, rounding=ROUND_HALF_UP, context=EXACT)


def quantity_text(value: Decimal) -> str:
    """A quantity as a plain decimal string without trailing zeros: ``"12.5"``, ``"1000"``, ``"0"``."""
    if value == 0:
        return "0"
    return format(value.normalize(EXACT), "f")


def yuan_text(amount: Decimal) -> str:
    """The wire form of a billed amount: a string with exactly two decimals."""
    return f"{round_fen(amount):.2f}"
