"""The department tree and the read scope built on it (issue 17): pure functions, no database."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.api import Role
from services.common.auth import Principal
from services.common.hierarchy import ancestors, cycle_refusal, subtree
from services.common.scope import OutOfScope, Scope, resolve_scope

# The city: two districts with bureaux, the high-tech zone's committee with one bureau, two city bureaux.
TREE = {
    "city-edu": None, "city-health": None,
    "jiaojiang": None, "jj-edu": "jiaojiang", "jj-water": "jiaojiang", "jj-water-lab": "jj-water",
    "huangyan": None, "hy-edu": "huangyan",
    "hitech": None, "hitech-park": "hitech",
}


def finance(department=None):
    return Principal("f", Role.FINANCE, department)


def department(department_id):
    return Principal(department_id, Role.DEPARTMENT, department_id)


def test_a_subtree_is_the_department_and_everything_below_it():
    assert subtree(TREE, "jiaojiang") == {"jiaojiang", "jj-edu", "jj-water", "jj-water-lab"}
    assert subtree(TREE, "jj-water") == {"jj-water", "jj-water-lab"}
    assert subtree(TREE, "city-edu") == {"city-edu"}
    assert subtree(TREE, "unknown") == {"unknown"}


def test_ancestors_run_from_the_parent_to_the_top():
    assert ancestors(TREE, "jj-water-lab") == ["jj-water", "jiaojiang"]
    assert ancestors(TREE, "jiaojiang") == []


def test_a_move_under_oneself_or_one_s_subtree_is_refused_naming_parent_id():
    assert cycle_refusal(TREE, "jiaojiang", "jj-water-lab").startswith("parent_id: ")
    assert cycle_refusal(TREE, "jiaojiang", "jiaojiang").startswith("parent_id: ")
    assert cycle_refusal(TREE, "jj-water", "huangyan") is None
    assert cycle_refusal(TREE, "jj-water", None) is None


def test_city_finance_and_admin_see_every_department():
    for who in (finance(), Principal("a", Role.ADMIN, None)):
        assert resolve_scope(who, TREE, None) == Scope(None)
        assert resolve_scope(who, TREE, "hy-edu") == Scope(("hy-edu",))


def test_district_finance_sees_its_district_and_bureaux_and_nothing_else():
    district = finance("jiaojiang")
    assert resolve_scope(district, TREE, None).ids == ("jiaojiang", "jj-edu", "jj-water", "jj-water-lab")
    assert resolve_scope(district, TREE, "jj-edu").ids == ("jj-edu",)
    for outside in ("huangyan", "hy-edu", "city-edu", "hitech", "hitech-park", "nowhere"):
        with pytest.raises(OutOfScope):
            resolve_scope(district, TREE, outside)


def test_a_bureau_s_token_sees_itself_only_even_with_rollup():
    for own in ("jj-edu", "hitech", "jiaojiang"):
        assert resolve_scope(department(own), TREE, None).ids == (own,)
        assert resolve_scope(department(own), TREE, own, rollup=True).ids == (own,)
    with pytest.raises(OutOfScope):
        resolve_scope(department("jiaojiang"), TREE, "jj-edu")


def test_rollup_is_the_requested_department_s_subtree_within_the_visible_set():
    assert resolve_scope(finance(), TREE, "hitech", rollup=True).ids == ("hitech", "hitech-park")
    assert resolve_scope(finance("jiaojiang"), TREE, "jj-water", rollup=True).ids == ("jj-water", "jj-water-lab")
    assert resolve_scope(finance("jj-water"), TREE, "jj-water", rollup=True).ids == ("jj-water", "jj-water-lab")


@st.composite
def forests(draw):
    """Random forests: each department's parent is an earlier department or none (so no cycles)."""
    size = draw(st.integers(1, 12))
    names = [f"d{i}" for i in range(size)]
    return {n: (draw(st.sampled_from([None, *names[:i]])) if i else None) for i, n in enumerate(names)}


@given(forests(), st.data())
def test_every_scope_is_within_the_principal_s_subtree(tree, data):
    claim = data.draw(st.sampled_from(sorted(tree)))
    requested = data.draw(st.sampled_from([None, *sorted(tree)]))
    rollup = data.draw(st.booleans())
    allowed = subtree(tree, claim)
    try:
        scope = resolve_scope(finance(claim), tree, requested, rollup)
    except OutOfScope:
        assert requested not in allowed
        return
    assert set(scope.ids) <= allowed and scope.ids == tuple(sorted(scope.ids))
    if requested is not None:
        assert requested in scope.ids


@given(forests(), st.data())
def test_a_move_is_refused_exactly_when_it_would_close_a_cycle(tree, data):
    child = data.draw(st.sampled_from(sorted(tree)))
    parent = data.draw(st.sampled_from(sorted(tree)))
    refused = cycle_refusal(tree, child, parent) is not None
    assert refused == (parent in subtree(tree, child))
