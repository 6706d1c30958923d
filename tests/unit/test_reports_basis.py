from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.query.domain.basis import budget_basis, linear_trend

D = Decimal


def test_the_trend_of_a_line_is_its_slope():
    assert linear_trend([D(100 + 10 * t) for t in range(12)]) == 10
    assert linear_trend([D(5)] * 12) == 0
    assert linear_trend([D(7)]) == 0


def test_a_gentle_trend_is_continued_over_the_next_twelve_months():
    monthly = [D(1000 + 5 * t) for t in range(12)]  # 1000 … 1055
    basis = budget_basis(monthly)
    assert basis.actual == D(12330)
    assert basis.projected == sum(D(1000 + 5 * t) for t in range(12, 24))  # 13 050
    assert basis.proposed == D("13050.00")


def test_a_steep_trend_is_bounded_and_waste_comes_off():
    monthly = [D(0)] * 10 + [D(100), D(200)]
    basis = budget_basis(monthly, monthly_waste=D("10.00"))
    assert basis.actual == 300 and basis.bounded == D(390)  # capped at 1.3 × actual
    assert basis.annual_waste == 120 and basis.proposed == D("270.00")
    falling = budget_basis([D(200), D(100)] + [D(0)] * 10)
    assert falling.bounded == D(240)  # never below 0.8 × actual


def test_the_basis_is_never_negative():
    assert budget_basis([D(10)] * 12, monthly_waste=D(1000)).proposed == 0


@given(st.decimals(min_value=0, max_value=10_000_000, places=2), st.decimals(min_value=0, max_value=1000, places=2))
def test_a_steady_spend_proposes_its_annual_amount_less_the_waste(monthly, waste):
    basis = budget_basis([monthly] * 12, waste)
    assert basis.proposed == max(D(0), 12 * monthly - 12 * waste).quantize(D("0.01"))
