from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.query.domain.anomaly import AnomalyRule, median, spend_anomaly

D = Decimal
money = st.decimals(min_value=0, max_value=100_000, places=2, allow_nan=False, allow_infinity=False)


def test_median_of_odd_and_even_counts():
    assert median([D(3), D(1), D(2)]) == 2
    assert median([D(4), D(1), D(3), D(2)]) == D("2.5")


def test_a_spike_is_an_outlier_with_the_figures_that_show_it():
    baseline = [D(v) for v in ("10", "11", "9", "10", "12", "10", "9", "11", "10", "10", "11", "9", "10", "10")]
    anomaly = spend_anomaly(baseline, D("30"))
    assert anomaly is not None
    assert (anomaly.median, anomaly.mad, anomaly.mad_used) == (D(10), D("0.5"), D("0.5"))
    assert anomaly.robust_z == D("0.6745") * 20 / D("0.5")  # 26.98
    assert spend_anomaly(baseline, D("11.5")) is None  # z = 2.0235: a normal day


def test_a_steady_spend_uses_the_floor_so_small_changes_do_not_warn():
    baseline = [D("48.00")] * 14  # MAD = 0: floor = 5 % of the median = 2.40
    assert spend_anomaly(baseline, D("55.00")) is None  # z = 0.6745 × 7 / 2.4 = 1.97
    warned = spend_anomaly(baseline, D("61.00"))  # z = 3.65
    assert warned is not None and warned.mad == 0 and warned.mad_used == D("2.4000")


def test_too_short_a_history_is_not_judged():
    baseline = [D(0)] * 8 + [D(10)] * 6
    assert spend_anomaly(baseline, D(1000)) is None
    assert spend_anomaly([D(0)] * 7 + [D(10)] * 7, D(1000)) is not None


@given(st.lists(money, min_size=14, max_size=14), money)
def test_spend_at_or_below_the_median_never_warns(baseline, spend):
    center = median(baseline)
    assert spend_anomaly(baseline, min(spend, center)) is None


@st.composite
def outlier_cases(draw):
    """A baseline with at least 7 days of spend and a spend that is an outlier by docs/reports.md's formula, worked
    out here independently: z = 0.6745·(x − median)/MAD′ > 3.5 with MAD′ = max(MAD, 5 % of |median|, 0.01)."""
    active = draw(st.lists(money.filter(lambda v: v != 0), min_size=7, max_size=14))
    baseline = draw(st.permutations(active + [D(0)] * (14 - len(active))))
    ordered = sorted(baseline)
    center = (ordered[6] + ordered[7]) / 2
    deviations = sorted(abs(v - center) for v in baseline)
    mad_used = max((deviations[6] + deviations[7]) / 2, D("0.05") * center, D("0.01"))
    z = draw(st.decimals(min_value=D("3.51"), max_value=1000, places=2))
    low = center + z * mad_used / D("0.6745")
    return baseline, low, z


@given(outlier_cases(), st.decimals(min_value=0, max_value=10**6, places=2))
def test_a_larger_spend_warns_whenever_a_smaller_one_does(case, more):
    baseline, low, _ = case
    assert spend_anomaly(baseline, low) is not None  # every generated case is an outlier: the rule is exercised
    assert spend_anomaly(baseline, low + more) is not None


@given(outlier_cases())
def test_an_outliers_figures_are_the_formulas(case):
    baseline, spend, z = case
    anomaly = spend_anomaly(baseline, spend)
    assert anomaly is not None and abs(anomaly.robust_z - z) < D("1E-20")


def test_the_threshold_is_configurable():
    baseline = [D(10), D(11)] * 7
    assert spend_anomaly(baseline, D(13), AnomalyRule(threshold=D(2))) is not None
    assert spend_anomaly(baseline, D(13)) is None
