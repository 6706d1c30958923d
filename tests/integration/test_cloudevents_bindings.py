"""CloudEvents binary content mode and ``data_base64``, with the CloudEvents SDK (PyPI ``cloudevents``) as the
client: its current bindings (``cloudevents.core.bindings``) and its 1.x API (``cloudevents.v1``, what many
producers still call). HTTP through the metering API, Kafka through aiokafka to the real broker, counted by the
real worker; malformed input is a 4xx naming the header over HTTP and a dead letter on Kafka."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from cloudevents.v1 import conversion as v1_conversion
from cloudevents.v1 import kafka as v1_kafka
from cloudevents.v1.http import CloudEvent as V1CloudEvent
from sqlalchemy import text

from services.common.db import get_engine
from tests.integration.support import ADMIN, FINANCE, PROVIDER, SOURCE, auth, dead_letters, usage_rows, wait_stored, \
    wait_until

pytestmark = pytest.mark.usefixtures("worker")
JSON = JSONFormat()
SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def usage(subject: str, quantity: str, start: datetime, **extensions) -> dict:
    """A usage event as the structured dict the SDK would write (attributes and data)."""
    end = start + timedelta(hours=1)
    return {"specversion": "1.0", "id": str(uuid.uuid4()), "source": SOURCE, "type": "gov.cloud.usage.v1",
            "subject": subject, "time": end.isoformat().replace("+00:00", "Z"), "datacontenttype": "application/json",
            **extensions,
            "data": {"meter": "compute.vcpu", "quantity": quantity, "start": start.isoformat(), "end": end.isoformat()}}


def sdk_event(event: dict, data_as_bytes: bool = False) -> CloudEvent:
    attributes = {k: v for k, v in event.items() if k != "data"}
    attributes["time"] = datetime.fromisoformat(attributes["time"])
    data = json.dumps(event["data"]).encode() if data_as_bytes else event["data"]
    return CloudEvent(attributes=attributes, data=data)


def v1_event(event: dict) -> V1CloudEvent:
    return V1CloudEvent({k: v for k, v in event.items() if k != "data"}, event["data"])


async def post(apps, headers: dict, body: bytes | str, token=None):
    body = body.encode() if isinstance(body, str) else body
    return await apps["metering"].post("/v1/events", content=body, headers={**(token or PROVIDER), **headers})


async def stored_payload(event: dict) -> dict:
    async with get_engine().connect() as conn:
        by_key = text(
            "SELECT payload FROM events WHERE govmeter_event_key(source, event_id) = govmeter_event_key(:s, :i)")
        payload = (await conn.execute(by_key, {"s": event["source"], "i": event["id"]})).scalar_one()
    return orjson.loads(payload)


async def vcpu_hours(apps, subject_prefix: str, window: datetime) -> list[tuple[str, str]]:
    rows = await usage_rows(apps["query"], FINANCE, **{"from": window.isoformat(),
                                                       "to": (window + timedelta(days=2)).isoformat(),
                                                       "group_by": "resource"})
    return sorted((r["resource_id"], r["quantity"]) for r in rows if r["resource_id"].startswith(subject_prefix))


async def test_sdk_http_binary_structured_and_base64_events_are_each_counted_once(apps, window):
    prefix = f"ce-http-{uuid.uuid4().hex[:6]}-"
    t = window + timedelta(hours=1)
    # the subject is Chinese: the SDK percent-encodes it in the ce-subject header, the API decodes it
    binary = usage(prefix + "云主机-1", "1", t, region="台州", tenantid="t-1")
    structured = usage(prefix + "vm-2", "2", t)
    based = usage(prefix + "vm-3", "4", t)
    legacy = usage(prefix + "vm-4", "8", t)
    legacy_structured = usage(prefix + "vm-5", "16", t)
    messages = [
        ce_http.to_binary(sdk_event(binary), JSON),
        ce_http.to_structured(sdk_event(structured), JSON),
        ce_http.to_structured(sdk_event(based, data_as_bytes=True), JSON),  # data_base64
    ]
    assert b"data_base64" in messages[2].body and "ce-type" in messages[0].headers
    assert "%" in messages[0].headers["ce-subject"]
    requests = [(m.headers, m.body) for m in messages]
    requests.append(v1_conversion.to_binary(v1_event(legacy)))
    requests.append(v1_conversion.to_structured(v1_event(legacy_structured)))
    for headers, body in requests:
        response = await post(apps, headers, body)
        assert response.status_code == 202, response.text
        assert response.json() == {"accepted": 1, "rejected": []}
    events = [binary, structured, based, legacy, legacy_structured]
    await wait_stored(events)

    # binary mode and data_base64 are stored as their structured form: the same event resent in another mode is
    # the same bytes, a duplicate and not a conflict
    assert await stored_payload(binary) == binary
    assert await stored_payload(based) == based
    again = [ce_http.to_structured(sdk_event(binary), JSON), ce_http.to_binary(sdk_event(based), JSON),
             ce_http.to_binary(sdk_event(structured), JSON)]
    for message in again:
        assert (await post(apps, message.headers, message.body)).status_code == 202
    marker = usage(prefix + "vm-6", "32", t)
    message = ce_http.to_binary(sdk_event(marker), JSON)
    assert (await post(apps, message.headers, message.body)).status_code == 202
    await wait_stored([marker])
    assert await vcpu_hours(apps, prefix, window) == sorted(
        [(e["subject"], e["data"]["quantity"]) for e in [*events, marker]])
    assert [letter for e in events for letter in await dead_letters(event_id=e["id"])] == []


async def test_sdk_kafka_binary_and_structured_records_are_each_counted_once(apps, window, settings):
    prefix = f"ce-kafka-{uuid.uuid4().hex[:6]}-"
    t = window + timedelta(hours=1)
    binary = usage(prefix + "云主机-1", "1", t, region="台州")
    structured = usage(prefix + "vm-2", "2", t)
    legacy_binary = usage(prefix + "vm-3", "4", t, partitionkey="vm-3")
    legacy_structured = usage(prefix + "vm-4", "8", t)
    based = usage(prefix + "vm-5", "16", t)
    plain = usage(prefix + "vm-6", "32", t)  # a plain JSON record, no headers at all
    messages = [
        ce_kafka.to_binary(sdk_event(binary), JSON),
        ce_kafka.to_structured(sdk_event(structured), JSON),
        v1_kafka.to_binary(v1_event(legacy_binary)),
        v1_kafka.to_structured(v1_event(legacy_structured)),
        ce_kafka.to_structured(sdk_event(based, data_as_bytes=True), JSON),
    ]
    assert "ce_type" in messages[0].headers and b"data_base64" in messages[4].value
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for message in messages:
            key = message.key.encode() if isinstance(message.key, str) else message.key
            await producer.send_and_wait(settings.events_topic, message.value, key=key,
                                         headers=list(message.headers.items()))
        await producer.send_and_wait(settings.events_topic, orjson.dumps(plain))
        # the binary event again, now in structured mode: a duplicate, counted once
        again = ce_kafka.to_structured(sdk_event(binary), JSON)
        await producer.send_and_wait(settings.events_topic, again.value, headers=list(again.headers.items()))
    finally:
        await producer.stop()
    events = [binary, structured, legacy_binary, legacy_structured, based, plain]
    await wait_stored(events)
    assert await stored_payload(binary) == binary
    # the 1.x SDK maps partitionkey to the record key and leaves it out of the headers (Kafka binding 3.1)
    assert await stored_payload(legacy_binary) == {k: v for k, v in legacy_binary.items() if k != "partitionkey"}
    expected = sorted((e["subject"], e["data"]["quantity"]) for e in events)
    assert await wait_until(lambda: _equal(vcpu_hours(apps, prefix, window), expected))
    assert [letter for e in events for letter in await dead_letters(event_id=e["id"])] == []


async def _equal(rows, expected) -> bool:
    return await rows == expected


async def test_malformed_binary_http_input_is_a_4xx_naming_the_header(apps, window):
    good = usage("vm-bad-http", "1", window)
    message = ce_http.to_binary(sdk_event(good), JSON)

    def without(*names: str, **changed: str) -> dict:
        headers = {k: v for k, v in message.headers.items() if k not in names}
        return {**headers, **changed}

    async def refused(headers, body=message.body, token=None) -> tuple[int, list[str] | str]:
        response = await post(apps, headers, body, token)
        detail = response.json()
        return response.status_code, detail["rejected"][0]["errors"] if "rejected" in detail else detail["detail"]

    code, errors = await refused(without("ce-type"))  # the 422 "type: … got None", now named
    assert code == 422 and errors[0].startswith("ce-type: must be one of gov.cloud.usage.v1")
    code, errors = await refused(without("ce-time"))
    assert (code, errors) == (422, ["ce-time: Field required"])
    code, errors = await refused(without(**{"ce-id": "x" * 300}))
    assert code == 422 and errors[0].startswith("ce-id: String should have at most 256 characters")
    code, errors = await refused(without(**{"ce-subject": "vm%00nul"}))  # NUL, percent-encoded
    assert code == 422 and errors[0].startswith("ce-subject: contains a NUL character")
    code, errors = await refused(without(**{"ce-specversion": "0.3"}))
    assert code == 422 and errors[0].startswith("ce-specversion: Input should be '1.0'")
    code, errors = await refused(message.headers, body=b'{"meter": "compute.vcpu", "quantity": "-1"')
    assert code == 400 and errors.startswith("data: the body is not valid JSON")
    code, errors = await refused(message.headers, body=orjson.dumps({**good["data"], "quantity": "-1"}))
    assert code == 422 and errors[0].startswith("data.quantity:")
    code, errors = await refused(message.headers, body=b"")
    assert (code, errors) == (422, ["data: Field required"])
    code, errors = await refused(without(**{"content-type": "text/plain"}))
    assert code == 415 and errors.startswith("content-type: the data must be JSON")
    code, errors = await refused(without(**{"ce-source": "urn:someone:else"}))
    assert code == 403 and "urn:someone:else" in errors
    # the same limits as structured mode: an event over 64 KiB is refused whatever mode it came in
    code, errors = await refused(message.headers, body=orjson.dumps({**good["data"], "attributes": {"x": "y" * 70_000}}))
    assert code == 422 and errors[0].startswith("event: ") and "at most 65536" in errors[0]

    structured = {k: v for k, v in good.items() if k != "data"}
    for data_base64, why in (("not base64!", "data_base64: not base64 of JSON data"),
                             (base64.b64encode(b"{not json").decode(), "data_base64: not base64 of JSON data"),
                             (12, "data_base64: must be a base64 string")):
        response = await apps["metering"].post("/v1/events", content=orjson.dumps({**structured,
                                                                                   "data_base64": data_base64}),
                                               headers={**PROVIDER, "content-type": "application/cloudevents+json"})
        assert response.status_code == 422 and response.json()["rejected"][0]["errors"][0].startswith(why)
    both = {**good, "data": {}, "data_base64": base64.b64encode(orjson.dumps(good["data"])).decode()}
    response = await apps["metering"].post("/v1/events", json=both, headers=PROVIDER)
    assert response.json()["rejected"][0]["errors"] == ["data_base64: an event carries data or data_base64, not both"]
    assert await dead_letters(event_id=good["id"]) == []


async def test_malformed_binary_kafka_records_become_dead_letters_and_the_worker_goes_on(apps, window, settings):
    def binary(event: dict, drop: tuple[str, ...] = (), value: bytes | None = None, **headers: bytes):
        message = ce_kafka.to_binary(sdk_event(event), JSON)
        pairs = {k: v for k, v in message.headers.items() if k not in drop} | headers
        return value if value is not None else message.value, list(pairs.items())

    no_type = usage("vm-bad-kafka-1", "1", window)
    junk_value = usage("vm-bad-kafka-2", "1", window)
    not_json_type = usage("vm-bad-kafka-3", "1", window)
    bad_header = usage("vm-bad-kafka-4", "1", window)
    bad_data = usage("vm-bad-kafka-5", "1", window)
    bad_base64 = {k: v for k, v in usage("vm-bad-kafka-6", "1", window).items() if k != "data"}
    bad_base64["data_base64"] = "@@@"
    good = usage("vm-good-kafka", "1", window + timedelta(hours=1))
    records = [
        binary(no_type, drop=("ce_type",)),
        binary(junk_value, value=b"\xff{not json"),
        binary(not_json_type, **{"content-type": b"text/plain"}),
        binary(bad_header, ce_subject=b"\xff\xfe"),
        binary(bad_data, value=orjson.dumps({**bad_data["data"], "meter": "compute.nothing"})),
        (orjson.dumps(bad_base64), [("content-type", b"application/cloudevents+json")]),
        binary(good),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for value, headers in records:
            await producer.send_and_wait(settings.events_topic, value, headers=headers)
    finally:
        await producer.stop()
    await wait_stored([good])  # the worker went on past every bad record

    async def letter(event: dict) -> dict:
        found = await wait_until(lambda: dead_letters(event_id=event["id"]))
        assert len(found) == 1 and found[0]["source"] == SOURCE  # the provider can list it (its source)
        return found[0]

    assert (await letter(no_type))["errors"][0].startswith("ce_type: must be one of gov.cloud.usage.v1")
    junk = await letter(junk_value)
    assert junk["reason"] == "invalid JSON" and junk["errors"][0].startswith("data: the body is not valid JSON")
    assert orjson.loads(junk["payload"])["headers"]["ce_id"] == junk_value["id"]  # the record as received
    assert (await letter(not_json_type))["errors"][0].startswith("content-type: the data must be JSON")
    assert (await letter(bad_data))["errors"][0].startswith("data.meter: Input should be")
    assert (await letter(bad_base64))["errors"][0].startswith("data_base64: not base64 of JSON data")
    # a header that is not UTF-8 names no readable subject; the id header still names the letter
    assert (await letter(bad_header))["errors"] == ["ce_subject: not UTF-8"]
    response = await apps["metering"].get("/v1/dead-letters", params={"source": SOURCE, "limit": 1000},
                                          headers=PROVIDER)
    listed = {d["event_id"] for d in response.json()["dead_letters"]}
    assert {no_type["id"], junk_value["id"], bad_data["id"]} <= listed


@pytest.mark.parametrize("api", ["metering", "billing", "query"])
async def test_every_role_reads_the_meter_catalogue_on_every_api(apps, api):
    catalogue = json.loads((SCHEMAS / "meters.json").read_text(encoding="utf-8"))
    published = json.loads((SCHEMAS / "jsonschema" / "meter-catalogue.schema.json").read_text(encoding="utf-8"))
    for headers in (PROVIDER, FINANCE, ADMIN, auth("department", "dep-any"), auth("provider")):
        response = await apps[api].get("/v1/meters", headers=headers)
        assert response.status_code == 200, response.text
        jsonschema.validate(response.json(), published)  # the published contract
        meters = response.json()["meters"]
        assert [m["key"] for m in meters] == list(catalogue) and len(meters) == 12
        for meter in meters:
            spec = catalogue[meter["key"]]
            assert (meter["unit"], meter["name_zh"], meter["name_en"]) == (spec["unit"], spec["name_zh"],
                                                                           spec["name_en"])
    assert (await apps[api].get("/v1/meters")).status_code == 401
    assert (await apps[api].get("/v1/meters", headers={"Authorization": "Bearer nonsense"})).status_code == 401
