"""Deliberately naive reference implementations for the unit properties: exact fractions and the plainest
arithmetic, written from the rules in docs/billing.md, sharing no code with what they check."""

from decimal import Decimal
from fractions import Fraction


def naive_fen(amount) -> Decimal:
    """Round to the fen, half away from zero (docs/billing.md's "half-up"), by integer arithmetic."""
    exact = Fraction(amount)
    fen = int(abs(exact) * 100 + Fraction(1, 2))  # floor of |x| × 100 + ½
    return Decimal(f"{'-' if exact < 0 else ''}{fen}E-2")  # exact: arithmetic would round past 28 digits


def naive_cumulative(tiers, units) -> Fraction:
    """What the first ``units`` of a month cost under graduated ``tiers`` ((up_to | None, unit_price) pairs)."""
    total, lower, units = Fraction(0), Fraction(0), Fraction(units)
    for up_to, unit_price in tiers:
        upper = None if up_to is None else Fraction(up_to)
        inside = units - lower if upper is None else min(units, upper) - lower
        total += max(inside, Fraction(0)) * Fraction(unit_price)
        if upper is None:
            break
        lower = upper
    return total


def naive_graduated(tiers, position, quantity) -> Fraction:
    """The charge for ``quantity`` more units after ``position``: a difference of two cumulative charges."""
    return naive_cumulative(tiers, Fraction(position) + Fraction(quantity)) - naive_cumulative(tiers, position)


def naive_tier_split(tiers, position, quantity) -> list[Fraction]:
    """How many of the units in [position, position + quantity) fall in each tier's range [lower, up_to)."""
    start, end = Fraction(position), Fraction(position) + Fraction(quantity)
    parts, lower = [], Fraction(0)
    for up_to, _ in tiers:
        upper = end if up_to is None else Fraction(up_to)
        parts.append(max(Fraction(0), min(end, upper) - max(start, lower)))
        lower = upper
    return parts
