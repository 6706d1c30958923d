"""Money rules shared by every figure govmeter shows: CNY, to the fen, half-up."""

from decimal import ROUND_HALF_UP, Decimal

CURRENCY = "CNY"
FEN = Decimal("0.01")


def round_fen(amount: Decimal) -> Decimal:
    """Round an exact yuan amount to the fen, half-up (0.005 → 0.01, -0.005 → -0.01)."""
    return amount.quantize(FEN, rounding=ROUND_HALF_UP)


def quantity_text(value: Decimal) -> str:
    """A quantity as a plain decimal string without trailing zeros: ``"12.5"``, ``"1000"``, ``"0"``."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def yuan_text(amount: Decimal) -> str:
    """The wire form of a billed amount: a string with exactly two decimals."""
    return f"{round_fen(amount):.2f}"
