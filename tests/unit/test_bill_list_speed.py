"""The cheap check of closed months' usage (services/bill_reads/bills.py ``unchanged_digests``), pure."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.bill_reads.bills import NO_USAGE, Settled, unchanged_digests

DIGESTS = st.sampled_from([NO_USAGE, "a1", "b2", "c3"])


@st.composite
def histories(draw):
    """Per (department, month): the fingerprint after each write (version 0: before any), and the version its
    latest baseline was taken at (None: no baseline; then nothing was settled and it counts as "no usage")."""
    keys = draw(st.lists(st.tuples(st.sampled_from("xyz"), st.sampled_from(["2098-01", "2098-02"])), unique=True))
    world = {}
    for key in keys:
        digests = draw(st.lists(DIGESTS, min_size=1, max_size=5))
        digests[0] = NO_USAGE  # before any write there is no usage
        settled_at = draw(st.none() | st.integers(0, len(digests) - 1))
        world[key] = (digests, settled_at)
    return world


@given(histories())
def test_a_fingerprint_is_taken_from_the_baseline_only_when_no_write_came_since(world):
    versions = {key: len(digests) - 1 for key, (digests, _) in world.items() if len(digests) > 1}
    baselines = {key: Settled(digests[at], 1, at) for key, (digests, at) in world.items() if at is not None}
    known, stale = unchanged_digests(versions, baselines)
    truth = {key: digests[-1] for key, (digests, _) in world.items() if digests[-1] != NO_USAGE}
    assert set(known).isdisjoint(stale)
    # what is known is the truth; what is not known is either recomputed or truly "no usage"
    assert all(truth.get(key, NO_USAGE) == digest for key, digest in known.items())
    assert {key for key in truth if key not in known} <= set(stale)
    # and nothing is recomputed whose version is the one its baseline was taken at
    assert all(versions.get(key, 0) != (baselines[key].usage_version if key in baselines else 0) for key in stale)


def test_a_month_never_written_and_never_settled_is_no_usage_without_reading_anything():
    assert unchanged_digests({}, {}) == ({}, [])
    assert unchanged_digests({("x", "2098-01"): 0}, {}) == ({}, [])
    assert unchanged_digests({("x", "2098-01"): 2}, {}) == ({}, [("x", "2098-01")])
