import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas
from schemas.events import canonical_payload, event_identity, validate_event
from services.common.periods import month_bounds, month_of, next_month, parse_bound
from tests.unit.strategies import hostile_text


def usage(**data):
    body = {"meter": "compute.vcpu", "quantity": "1", "start": "2026-11-01T09:00:00+08:00",
            "end": "2026-11-01T10:00:00+08:00"}
    body.update(data)
    return {"specversion": "1.0", "id": "e1", "source": "s", "type": "gov.cloud.usage.v1", "subject": "vm-1",
            "time": "2026-11-01T10:00:00+08:00", "data": body}


@pytest.mark.parametrize("data, error", [
    ({"meter": "compute.cpu"}, "data.meter: Input should be 'compute.vcpu'"),
    ({"quantity": "-1"}, "data.quantity: Input should be greater than or equal to 0"),
    ({"quantity": "abc"}, "data.quantity: "),
    ({"quantity": "١٢٣"}, "data.quantity: must be a plain decimal in ASCII digits"),
    ({"quantity": "1_000"}, "data.quantity: must be a plain decimal in ASCII digits"),
    ({"quantity": "0.0000000001"}, "data.quantity: Decimal input should have no more than 9 decimal places"),
    ({"end": "2026-11-01T08:00:00+08:00"}, "data.end: must be after data.start"),
    ({"start": "2026-11-01T09:00:00"}, "data.start: Input should have timezone info"),
])
def test_each_bad_field_is_named(data, error):
    event, errors = validate_event(usage(**data))
    assert event is None
    assert any(e.startswith(error) for e in errors), errors


def quantity_is_valid(text: str) -> bool:
    """Reference, written out by hand from the contract: ASCII digits, optionally a point with digits after it;
    leading zeros of the whole part and trailing zeros of the fraction aside, ≤ 21 whole digits and ≤ 9 places."""
    whole, point, fraction = text.partition(".")
    if not whole or (point and not fraction) or any(c not in "0123456789" for c in whole + fraction):
        return False
    return len(whole.lstrip("0")) <= 21 and len(fraction.rstrip("0")) <= 9


USAGE_SCHEMA = jsonschema.Draft202012Validator(
    json.loads((Path(schemas.__file__).parent / "jsonschema" / "usage-event.schema.json").read_text()))
ODD = ["١", "٢", "۳", "𝟙", "１", "½", "²", "\u0660", "\x00", "\u200b", "\n", "\t", " ", "_", "e", "E", "-", "+", ","]
quantity_texts = st.one_of(
    # plain decimals around the limits: up to 24 whole digits and 12 places, leading and trailing zeros
    st.builds(lambda zeros, whole, fraction, trailing: f"{'0' * zeros}{whole}" + (
        f".{fraction}{'0' * trailing}" if fraction or trailing else ""),
        st.integers(0, 3), st.text("0123456789", min_size=1, max_size=24), st.text("0123456789", max_size=12),
        st.integers(0, 3)),
    st.text(st.sampled_from(list("0123456789.") + ODD), max_size=14),  # odd spellings of numbers
    st.text(max_size=10),
    st.sampled_from(["١٢٣", "1_000", "abc", "-5", "-0", "1e3", "1E+20", " 1", "1 ", "1\n", "1.", ".5", "+1", "0x10",
                     "NaN", "Infinity", "1" * 21, "1" * 22, "0" * 30 + "1", "1." + "0" * 20, "0.000000001",
                     "0.0000000001", "1" * 21 + "." + "9" * 9]),
)


@settings(max_examples=400)
@given(quantity_texts)
def test_a_quantity_string_is_valid_exactly_when_the_contract_and_the_published_schema_say_so(text):
    expected = quantity_is_valid(text)
    event, errors = validate_event(usage(quantity=text))
    assert (event is not None) == expected, errors
    assert all(e.startswith("data.quantity: ") for e in errors) and bool(errors) != expected
    assert USAGE_SCHEMA.is_valid(usage(quantity=text)) == expected


@given(st.one_of(st.integers(-10, 10**22), st.sampled_from([10**21 - 1, 10**21, -1, 0])))
def test_a_whole_number_quantity_is_valid_exactly_when_the_contract_and_the_published_schema_say_so(number):
    expected = 0 <= number < 10**21
    assert (validate_event(usage(quantity=number))[0] is not None) == expected
    assert USAGE_SCHEMA.is_valid(usage(quantity=number)) == expected


def test_a_json_number_quantity_is_judged_by_its_decimal_places():
    assert validate_event(usage(quantity=0.5))[0] is not None
    assert validate_event(usage(quantity=1e-10))[1] == [
        "data.quantity: Decimal input should have no more than 9 decimal places"]


def test_unknown_type_and_non_object_are_named():
    assert validate_event({"type": "x"})[1][0].startswith("type: must be one of")
    assert validate_event([1])[1] == ["event: must be a JSON object, got list"]


def test_key_order_does_not_change_the_stored_payload_but_content_does():
    event = usage()
    reordered = dict(reversed(list(event.items())))
    assert canonical_payload(event) == canonical_payload(reordered)
    assert canonical_payload(event) != canonical_payload(usage(quantity="2"))


def test_department_is_required_to_activate_a_resource():
    event = {"specversion": "1.0", "id": "r1", "source": "s", "type": "gov.cloud.resource.v1", "subject": "vm-1",
             "time": "2026-11-01T10:00:00+08:00",
             "data": {"action": "activated", "effective_at": "2026-11-01T10:00:00+08:00", "kind": "vm"}}
    assert validate_event(event) == (None, ["data.department_id: required when action is activated"])
    event["data"]["action"] = "terminated"
    assert validate_event(event)[0] is not None


def test_billing_months_are_local_time():
    assert month_of(datetime(2026, 11, 30, 15, 30, tzinfo=UTC)) == "2026-11"  # 23:30 local
    assert month_of(datetime(2026, 11, 30, 16, 0, tzinfo=UTC)) == "2026-12"  # local midnight
    start, end = month_bounds("2026-12")
    assert start.astimezone(UTC) == datetime(2026, 11, 30, 16, tzinfo=UTC)
    assert end.astimezone(UTC) == datetime(2026, 12, 31, 16, tzinfo=UTC)
    assert next_month("2026-12") == "2027-01"


def test_a_date_bound_means_local_midnight():
    assert parse_bound("2026-11-01").astimezone(UTC) == datetime(2026, 10, 31, 16, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse_bound("2026-11-01T00:00:00")


@given(hostile_text, hostile_text, hostile_text, hostile_text)
def test_any_id_source_subject_and_system_are_stored_and_named_exactly_as_sent(event_id, source, subject, system):
    """The dedupe key and the stored payload keep hostile text exactly, whatever the key order (whether such an
    id is accepted at all is the validator's business, not the store's)."""
    event = dict(usage(), id=event_id, source=source, subject=subject)
    event["data"]["attributes"] = {"system": system, system: event_id}
    assert event_identity(event) == (source, event_id)
    stored = canonical_payload(event)
    assert orjson.loads(stored) == event
    assert canonical_payload(dict(reversed(list(event.items())))) == stored
