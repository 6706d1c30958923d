"""Money rules shared by every figure govmeter shows: CNY, to the fen, half-up."""

from decimal import ROUND_HALF_UP, Context, Decimal

CURRENCY = "CNY"
FEN = Decimal("0.01")
# Quantities reach 30 digits (21 whole, 9 places) and amounts more (quantity × a price to 6 places), beyond
# Decimal's default 28-digit context, which would round them: exact sums and products run with this precision.
EXACT_DIGITS = 60
_EXACT = Context(prec=EXACT_DIGITS)


def round_fen(amount: Decimal) -> Decimal:
    """Round an exact yuan amount to the fen, half-up (0.005 → 0.01, -0.005 → -0.01)."""
    return amount.quantize(FEN, rounding=ROUND_HALF_UP, context=_EXACT)  # 28 digits would refuse ≥ 1e26


def quantity_text(value: Decimal) -> str:
    """A quantity as a plain decimal string without trailing zeros: ``"12.5"``, ``"1000"``, ``"0"``."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def yuan_text(amount: Decimal) -> str:
    """The wire form of a billed amount: a string with exactly two decimals."""
    return f"{round_fen(amount):.2f}"
