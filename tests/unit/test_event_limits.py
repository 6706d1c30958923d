"""The validator refuses what the store cannot hold, names the field, and never raises whatever JSON arrives."""

from __future__ import annotations

import copy

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.events import MAX_NESTING, MAX_TEXT, _strings, canonical_payload, validate_event

USAGE = {"specversion": "1.0", "id": "e-1", "source": "urn:collector", "type": "gov.cloud.usage.v1",
         "subject": "vm-1", "time": "2026-10-01T01:00:00+08:00",
         "data": {"meter": "compute.vcpu", "quantity": "4", "start": "2026-10-01T00:00:00+08:00",
                  "end": "2026-10-01T01:00:00+08:00"}}
LIFECYCLE = {"specversion": "1.0", "id": "e-2", "source": "urn:collector", "type": "gov.cloud.resource.v1",
             "subject": "vm-1", "time": "2026-10-01T00:00:00+08:00",
             "data": {"action": "activated", "department_id": "dep-1", "system": "政务服务平台",
                      "effective_at": "2026-10-01T00:00:00+08:00", "kind": "vm", "spec": {"vcpu": 4}}}


def nested(depth: int):
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


def with_(event: dict, path: str, value) -> dict:
    event = copy.deepcopy(event)
    *parents, last = path.split(".")
    target = event
    for part in parents:
        target = target[part]
    target[last] = value
    return event


HOSTILE = [
    (USAGE, "subject", "vm\x00-1", "subject"),
    (USAGE, "id", "e\x07", "id"),
    (USAGE, "source", "urn:\x1bcollector", "source"),
    (USAGE, "subject", "v" * (MAX_TEXT + 1), "subject"),
    (USAGE, "time", "9999-12-31T00:00:00Z", "time"),
    (USAGE, "time", "2100-01-01T00:00:00+08:00", "time"),
    (USAGE, "data.start", "1970-01-01T00:00:00Z", "data.start"),
    (USAGE, "data.end", "2099-10-01T00:00:00+08:00", "data.end"),  # an interval of 73 years
    (USAGE, "data.quantity", "1" * 40, "data.quantity"),
    (USAGE, "data.quantity", 1e300, "data.quantity"),
    (USAGE, "data.quantity", "NaN", "data.quantity"),
    (USAGE, "data.attributes", {"note": "a\x00b"}, "data.attributes.note"),
    (USAGE, "type", ["gov.cloud.usage.v1"], "type"),
    (USAGE, "type", {"a": 1}, "type"),
    (USAGE, "extension", nested(600), "extension"),
    (USAGE, "extension", nested(MAX_NESTING + 1), "extension"),
    (USAGE, "extension", "x" * 70_000, "event"),
    (LIFECYCLE, "data.system", "s" * 5000, "data.system"),
    (LIFECYCLE, "data.system", "a\nb", "data.system"),
    (LIFECYCLE, "data.department_id", "dep\x00", "data.department_id"),
    (LIFECYCLE, "data.spec", {"name": "a\x00"}, "data.spec.name"),
    (LIFECYCLE, "data.spec", {"name": "\u0085"}, "data.spec.name"),
    (LIFECYCLE, "data.effective_at", "2100-01-01T00:00:00Z", "data.effective_at"),
]


@pytest.mark.parametrize("base,path,value,field", HOSTILE)
def test_what_the_store_cannot_hold_is_refused_naming_the_field(base, path, value, field):
    assert validate_event(base) [1] == []
    event, errors = validate_event(with_(base, path, value))
    assert event is None
    assert errors and errors[0].startswith(f"{field}"), errors


def test_the_limits_admit_the_ordinary_and_the_edges():
    assert validate_event(with_(USAGE, "subject", "v" * MAX_TEXT))[1] == []
    assert validate_event(with_(USAGE, "data.end", "2026-11-01T00:00:00+08:00"))[1] == []  # 31 days
    assert validate_event(with_(USAGE, "time", "2000-01-01T00:00:00Z"))[1] == []
    assert validate_event(with_(USAGE, "subject", "云主机-١٢٣-\u200d"))[1] == []  # odd but printable
    assert validate_event(with_(LIFECYCLE, "data.spec", {"disk": {"gb": 100, "tags": ["a", "b"]}}))[1] == []
    assert validate_event(with_(USAGE, "data.attributes", {"path": "C:\\u0000"}))[1] == []  # a backslash, no NUL


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from([USAGE, LIFECYCLE]), path=st.sampled_from(
    ["id", "source", "subject", "time", "type", "data", "data.quantity", "data.start", "data.end", "data.meter",
     "data.system", "data.spec", "data.department_id", "data.action", "data.attributes", "ext"]),
    value=json_values)
def test_validation_never_raises_and_what_it_accepts_can_be_stored(base, path, value):
    raw = with_(base, path, value) if not (path.startswith("data.") and not isinstance(base["data"], dict)) else base
    try:
        event, errors = validate_event(raw)
    except Exception as exc:  # pragma: no cover - the property's failure
        pytest.fail(f"validate_event raised {exc!r}")
    assert (event is None) == bool(errors)
    if event is not None:
        payload = canonical_payload(raw)
        assert not any("\x00" in text for _, text in _strings(orjson.loads(payload), "")) and len(payload) <= 64 * 1024
        for text in (event["id"], event["source"], event["subject"]):
            assert text.isprintable() or all(ord(c) > 0x9f or 0x20 <= ord(c) < 0x7f for c in text)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_are_json_or_not_and_never_crash_validation(data):
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return
    for raw in parsed if isinstance(parsed, list) else [parsed]:
        validate_event(raw)
