"""Security hardening (#13): the one month parser, tokens, and request size limits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from schemas.billing import AdjustmentIn, Month
from services.billing.domain.bills import parse_bill_number
from services.common.periods import canonical_month, parse_month

NOT_MONTHS = ["２０２６-10", "2026-１０", "٢٠٢٦-10", "𝟚𝟘𝟚𝟞-10", "2026-10\n", "2026-10 ", " 2026-10", "+202-10",
              "2_02-10", "2026-1", "2026-13", "2026-00", "26-10", "2026/10", ""]


@pytest.mark.parametrize("text", NOT_MONTHS)
def test_only_ascii_yyyy_mm_is_a_month_everywhere(text):
    with pytest.raises(ValueError):
        parse_month(text)
    with pytest.raises(ValidationError):
        TypeAdapter(Month).validate_python(text)
    with pytest.raises(ValidationError):
        AdjustmentIn(department_id="czj", amount="1", reason="x", month=text)
    assert parse_bill_number(f"GM-{text}-czj") is None


@given(st.integers(0, 9999), st.integers(1, 12))
def test_every_canonical_month_parses_to_itself(year, mon):
    text = f"{year:04d}-{mon:02d}"
    assert parse_month(text) == (year, mon) and canonical_month(text) == text
    assert TypeAdapter(Month).validate_python(text) == text
    assert parse_bill_number(f"GM-{text}-dep-a.1") == (text, "dep-a.1")
