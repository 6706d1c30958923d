"""Binary content mode and data_base64 become the structured event that the one validator judges."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime

import orjson
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from schemas.bindings import HTTP_PREFIX, KAFKA_PREFIX, is_binary, judge_structured, rename_errors
from schemas.catalogue import meters
from services.metering.pipeline import KafkaRecord, decode_records

EVENT = {"specversion": "1.0", "id": "e-1", "source": "urn:test:provider", "type": "gov.cloud.usage.v1",
         "subject": "vm-1", "time": "2030-01-01T01:00:00Z", "datacontenttype": "application/json",
         "data": {"meter": "compute.vcpu", "quantity": "1.5", "start": "2030-01-01T00:00:00Z",
                  "end": "2030-01-01T01:00:00Z"}}


def sdk_binary(event: dict) -> ce_kafka.KafkaMessage:
    attributes = {k: v for k, v in event.items() if k != "data"}
    attributes["time"] = datetime(2030, 1, 1, 1, tzinfo=UTC)
    return ce_kafka.to_binary(CloudEvent(attributes=attributes, data=event["data"]), JSONFormat())


def test_a_binary_record_decodes_to_the_structured_events_stored_bytes():
    message = sdk_binary(EVENT)
    binary = KafkaRecord("t", 0, 0, message.value, list(message.headers.items()))
    structured = KafkaRecord("t", 0, 1, orjson.dumps(EVENT))
    traced = KafkaRecord("t", 0, 2, orjson.dumps(EVENT), [("traceparent", b"00-abc-def-01")])  # not ce_: structured
    incoming, dead = decode_records([binary, structured, traced])
    assert dead == [] and len(incoming) == 3
    assert incoming[0].payload == incoming[1].payload == incoming[2].payload


def test_a_structured_media_type_wins_over_stray_ce_headers():
    record = KafkaRecord("t", 0, 0, orjson.dumps(EVENT), [("content-type", b"application/cloudevents+json"),
                                                          ("ce_type", b"something.else")])
    incoming, dead = decode_records([record])
    assert dead == [] and incoming[0].event["type"] == "gov.cloud.usage.v1"
    assert not is_binary("application/cloudevents+json; charset=utf-8", ["ce-id"], HTTP_PREFIX)
    assert is_binary("application/json", ["Ce-Id"], HTTP_PREFIX) and not is_binary(None, ["host"], HTTP_PREFIX)


def test_data_base64_is_judged_as_its_decoded_data():
    encoded = {k: v for k, v in EVENT.items() if k != "data"}
    encoded["data_base64"] = base64.b64encode(orjson.dumps(EVENT["data"])).decode()
    raw, event, errors, payload = judge_structured(encoded)
    assert errors == [] and raw == EVENT and payload == judge_structured(EVENT)[3]
    encoded["data_base64"] = base64.b64encode(orjson.dumps({**EVENT["data"], "quantity": "-1"})).decode()
    assert judge_structured(encoded)[2][0].startswith("data.quantity:")


def test_validator_errors_name_the_header_the_sender_wrote():
    errors = ["type: must be one of …", "time: Field required", "data.quantity: bad", "event: too big",
              "datacontenttype: String should have at most 256 characters"]
    assert rename_errors(errors, HTTP_PREFIX) == ["ce-type: must be one of …", "ce-time: Field required",
                                                  "data.quantity: bad", "event: too big",
                                                  "content-type: String should have at most 256 characters"]
    assert rename_errors(errors[:1], KAFKA_PREFIX) == ["ce_type: must be one of …"]


def test_the_catalogue_names_twelve_meters_in_chinese_and_english():
    catalogue = meters()
    assert len(catalogue) == 12
    for meter in catalogue.values():
        assert meter.unit and meter.name_en.isascii() and re.search(r"[\u4e00-\u9fff]", meter.name_zh), meter
