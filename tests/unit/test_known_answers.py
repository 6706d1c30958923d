"""The memo of requests already answered (services.common.known_answers): bounded, and fed only while routing."""

from services.common.auth import Principal
from services.common.known_answers import _ROUTING, KnownAnswers
from services.common.response_cache import ResponseCache

FINANCE = Principal("finance", "finance", None)


def test_a_key_is_remembered_only_for_a_request_being_routed_and_the_oldest_go_first():
    known = KnownAnswers(ResponseCache(tables=("bills",)), max_entries=2)
    known.remember(("key", 0))  # outside a routed request (a test calling the route, a background task): nothing
    assert not known._keys
    for n in range(3):
        token = _ROUTING.set((("/v1/bills", FINANCE, f"month=2071-0{n + 1}".encode()), (1, 0)))
        try:
            known.remember(("key", n))
        finally:
            _ROUTING.reset(token)
    assert [key for key, _ in known._keys.values()] == [("key", 1), ("key", 2)]
