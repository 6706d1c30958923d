from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.query.domain.waste_rules import (
    Size,
    WastePolicy,
    is_attached,
    is_idle,
    monthly_cost,
    power_of_two_at_least,
    resize_saving,
    suggest_size,
)

D = Decimal
PRICES = {"compute.vcpu": D("0.12"), "compute.memory": D("0.05"), "storage.block": D("0.001")}


def test_an_oversized_vm_is_sized_to_run_its_p95_at_the_target():
    # 8 vCPU at p95 12 %: needs 8 × 12 / 60 = 1.6 → 2 vCPU; memory 32 GiB at p95 30 %: 32 × 30 / 80 = 12 → 16 GiB
    assert suggest_size(Size(8, 32), D(12), D(30)) == Size(2, 16)
    assert suggest_size(Size(8, 32), D(12), None) == Size(2, 32)  # memory not observed: kept
    assert suggest_size(Size(8, 32), D(25), D(30)) is None  # p95 above the 20 % threshold
    assert suggest_size(Size(1, 2), D(1), D(1)) is None  # nothing smaller


def test_the_saving_of_a_resize_is_the_capacity_given_up_for_a_30_day_month():
    assert resize_saving(Size(8, 32), Size(2, 16), PRICES) == 6 * D("0.12") * 720 + 16 * D("0.05") * 720  # 1094.40


def test_the_monthly_cost_scales_a_window_to_720_hours_at_current_prices():
    assert monthly_cost({"storage.block": D(168_000)}, 168, PRICES) == D(720)  # 1000 GiB × 720 h × 0.001
    assert monthly_cost({"compute.gpu": D(5)}, 168, PRICES) == 0  # no price, no saving claimed


def test_idle_means_cpu_never_above_the_threshold_and_no_traffic():
    assert is_idle(D("4.9"), D(0))
    assert not is_idle(D("5.1"), D(0))
    assert not is_idle(D(1), D("0.001"))
    assert not is_idle(None, D(0))  # not observed: no evidence


def test_attachment_is_read_from_the_spec():
    assert not is_attached({}) and not is_attached({"attached_to": None}) and not is_attached({"attached_to": ""})
    assert is_attached({"attached_to": "vm-1"})


@given(st.integers(min_value=2, max_value=256), st.integers(min_value=1, max_value=512),
       st.decimals(min_value=0, max_value=D("19.9"), places=1), st.decimals(min_value=0, max_value=100, places=1))
def test_a_suggestion_is_never_larger_and_its_saving_never_negative(vcpu, memory, cpu_p95, memory_p95):
    suggested = suggest_size(Size(vcpu, memory), cpu_p95, memory_p95)
    if suggested is not None:
        assert suggested.vcpu <= vcpu and suggested.memory_gib <= memory
        assert (suggested.vcpu, suggested.memory_gib) != (vcpu, memory)
        assert resize_saving(Size(vcpu, memory), suggested, PRICES) > 0
        # the suggested size still runs the observed p95 at no more than the target
        assert D(vcpu) * cpu_p95 / suggested.vcpu <= WastePolicy().target_cpu_p95


def test_power_of_two():
    assert [power_of_two_at_least(D(v)) for v in ("0", "1", "1.01", "3", "4", "4.5")] == [1, 1, 2, 4, 4, 8]
