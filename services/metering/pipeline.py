"""One batch of Kafka records → validated events → one PostgreSQL transaction.

The worker calls ``MeteringPipeline.process`` with whatever it took from the topic; the batch's events, their
dedupe keys, dead letters and rollup changes commit together. Running a batch twice changes nothing."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.bindings import (KAFKA_PREFIX, from_binary, judge_structured, kafka_message, rejudge_base64,
                              rename_errors)
from schemas.events import RESOURCE_TYPE, USAGE_TYPE, UTILIZATION_TYPE, event_identity, judge_event
from services.common.db import raw_transaction
from services.metering.domain.attribution import Ownership, lifecycle_from_hours
from services.metering.domain.rating import RateCardPrices, rate_usage
from services.metering.isolation import apply_isolating
from services.common.locks import lock_attribution
from services.metering.event_store import (
    DeadLetterRow,
    IncomingEvent,
    InstantText,
    incoming_event,
    insert_dead_letters,
    store_events,
)
from services.projection.ownership import load_ownership, projection_versions, reproject_ownership
from services.projection.rerate import rebuild_rollups
from services.projection.rollups import apply_rollup_deltas
from services.reference.rate_cards import load_rate_cards
from services.metering.utilization_store import store_utilization
from services.metering.watermarks import advance_watermarks

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    topic: str
    partition: int
    offset: int
    value: bytes
    headers: tuple | list | None = ()  # (name, bytes) pairs; ce_* ones make a binary-mode CloudEvent


@dataclass
class BatchOutcome:
    events: int = 0
    new_usage: int = 0
    new_lifecycle: int = 0
    new_other: int = 0
    duplicates: int = 0
    dead_letters: list[DeadLetterRow] = field(default_factory=list)

    def absorb(self, part: BatchOutcome) -> None:
        """Add the outcome of one part of a bisected batch."""
        self.events += part.events
        self.new_usage += part.new_usage
        self.new_lifecycle += part.new_lifecycle
        self.new_other += part.new_other
        self.duplicates += part.duplicates
        self.dead_letters += part.dead_letters


def decode_records(records: list[KafkaRecord]) -> tuple[list[IncomingEvent], list[DeadLetterRow]]:
    """Each record holds one CloudEvent (a JSON object) or a batch (a JSON array) in structured mode, or one event
    in binary mode (``ce_*`` headers, the data as the value). Invalid input becomes a dead letter keyed by its Kafka
    position, so a redelivered record does not file it twice. Nothing a record holds can make this raise: a record
    that breaks decoding in an unforeseen way is a dead letter too."""
    incoming: list[IncomingEvent] = []
    dead: list[DeadLetterRow] = []
    instant_text = InstantText()
    for record in records:
        where = f"{record.topic}:{record.partition}:{record.offset}"
        if record.headers:  # most records have none: binary mode costs them nothing
            binary = _binary_event(record, where)
            if binary is not None:
                raw, errors, attributes = binary
                if raw is None:
                    reason = "invalid JSON" if errors[0].startswith("data:") else "invalid event"
                    dead.append(_record_letter(record, f"{where}:0", reason, *errors, identity=attributes))
                else:
                    _judge_binary(raw, record, where, instant_text, incoming, dead)
                continue
        try:
            body = orjson.loads(record.value)
        except orjson.JSONDecodeError as exc:
            dead.append(_record_letter(record, f"{where}:-", "invalid JSON", f"body: {exc}"))
            continue
        for index, raw in enumerate(body if isinstance(body, list) else [body]):
            try:
                event, errors, payload = judge_event(raw)
                if event is None:  # data_base64 is decoded only then: valid events pay nothing for it
                    raw, event, errors, payload = rejudge_base64(raw, errors)
                if event is not None:
                    incoming.append(incoming_event(event, raw, payload, instant_text))
                    continue
            except Exception as exc:  # a validator bug must cost one event, not the agent
                errors = _judging_failed(exc, index, where)
            dead.append(_event_letter(raw, index, record, where, errors))
    return incoming, dead


def _binary_event(record: KafkaRecord, where: str) -> tuple[dict | None, list[str], dict] | None:
    """The structured event of a binary-mode record (or None and why not) and its attributes; None when the
    record is not in binary mode."""
    try:
        message = kafka_message(record.headers)
        if message is None:
            return None
        attributes, content_type, errors = message
        if errors:
            return None, errors, attributes
        return (*from_binary(attributes, content_type, record.value), attributes)
    except Exception as exc:  # odd headers must cost one dead letter, not the agent
        log.exception("the headers of record %s could not be read", where)
        return None, [f"headers: could not be read ({type(exc).__name__})"], {}


def _judge_binary(raw: dict, record: KafkaRecord, where: str, instant_text: InstantText,
                  incoming: list[IncomingEvent], dead: list[DeadLetterRow]) -> None:
    try:
        raw, event, errors, payload = judge_structured(raw)
        if event is not None:
            incoming.append(incoming_event(event, raw, payload, instant_text))
            return
        errors = rename_errors(errors, KAFKA_PREFIX)  # ce_type: …, as the producer wrote it
    except Exception as exc:  # a validator bug must cost one event, not the agent
        errors = _judging_failed(exc, 0, where)
    dead.append(_event_letter(raw, 0, record, where, errors))


def _judging_failed(exc: Exception, index: int, where: str) -> list[str]:
    log.exception("event %s of record %s could not be judged", index, where)
    return [f"event: could not be validated ({type(exc).__name__})"]


def _event_letter(raw, index: int, record: KafkaRecord, where: str, errors: list[str]) -> DeadLetterRow:
    source, event_id = event_identity(raw)
    return DeadLetterRow(f"{where}:{index}", source, event_id, "invalid event", errors, _raw_text(raw, record),
                         record.topic, record.partition, record.offset)


def _record_letter(record: KafkaRecord, key: str, reason: str, *errors: str, identity: dict | None = None
                   ) -> DeadLetterRow:
    source, event_id = event_identity(identity)  # a binary record's headers name it even when its value is junk
    return DeadLetterRow(key, source, event_id, reason, list(errors), _record_text(record), record.topic,
                         record.partition, record.offset)


def _record_text(record: KafkaRecord) -> str:
    """The record as received: its value, or with headers a JSON object of both."""
    value = record.value.decode("utf-8", "backslashreplace")
    if not record.headers:
        return value
    pairs = record.headers.items() if isinstance(record.headers, dict) else record.headers
    headers = {str(k): v.decode("utf-8", "backslashreplace") if isinstance(v, bytes) else v for k, v in pairs}
    return orjson.dumps({"headers": headers, "value": value}).decode()


def _raw_text(raw, record: KafkaRecord) -> str:
    """The event as received, for the dead letter; the whole record when the event cannot be written back
    (orjson refuses nesting past 254 levels, which JSON parsing allows up to 1,024)."""
    try:
        return orjson.dumps(raw).decode()
    except (TypeError, orjson.JSONEncodeError):
        return _record_text(record)


async def split_unknown_departments(conn, lifecycle: list[IncomingEvent]) -> tuple[list[IncomingEvent],
                                                                                   list[DeadLetterRow]]:
    """Lifecycle events that attribute a resource to a department that does not exist are not stored (their
    usage would be billed to nobody's bill): they become dead letters with that reason. A termination attributes
    nothing, so it is never held back."""
    def owner(item: IncomingEvent) -> str | None:
        data = item.event["data"]
        return None if data["action"] == "terminated" else data.get("department_id")

    named = {owner(i) for i in lifecycle} - {None}
    if not named:
        return lifecycle, []
    known = {r["id"] for r in await conn.fetch("SELECT id FROM departments WHERE id = ANY($1::text[])", list(named))}
    kept, dead = [], []
    for item in lifecycle:
        department = owner(item)
        if department is None or department in known:
            kept.append(item)
            continue
        source, event_id = item.key
        digest = hashlib.sha256(item.payload).hexdigest()
        dead.append(DeadLetterRow(f"unknown-department:{source}:{event_id}:{digest}", source, event_id,
                                  "unknown department", [f"data.department_id: department {department} does not exist"],
                                  item.payload.decode()))
    return kept, dead


class MeteringPipeline:
    """Applies batches to PostgreSQL. Keeps ownership and rate cards cached while their versions hold."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._versions: tuple[int, int] | None = None
        self._owners: dict[str, list[Ownership]] = {}
        self._cards: list[RateCardPrices] = []

    async def process(self, records: list[KafkaRecord]) -> BatchOutcome:
        incoming, dead = decode_records(records)
        return await self.apply_isolating(incoming, dead)

    async def apply_isolating(self, incoming: list[IncomingEvent], dead: list[DeadLetterRow]) -> BatchOutcome:
        """``apply`` until committed: transient failures retried, refused events dead-lettered one by one."""
        return await apply_isolating(self.apply, incoming, dead, BatchOutcome, on_failure=self.forget_state)

    def forget_state(self) -> None:
        # A failed transaction may have loaded ownership it then rolled back; the next one reloads.
        self._versions = None

    async def apply(self, incoming: list[IncomingEvent], dead: list[DeadLetterRow]) -> BatchOutcome:
        outcome = BatchOutcome(events=len(incoming))
        lifecycle = [i for i in incoming if i.event["type"] == RESOURCE_TYPE]
        others = [i for i in incoming if i.event["type"] != RESOURCE_TYPE]
        new_lifecycle: list[IncomingEvent] = []
        async with raw_transaction(self.engine) as conn:
            await lock_attribution(conn, exclusive=bool(lifecycle))
            conflicts: list[DeadLetterRow] = []
            if lifecycle:
                lifecycle, unknown = await split_unknown_departments(conn, lifecycle)
                conflicts += unknown
                new_lifecycle, found = await store_events(conn, lifecycle)
                conflicts += found
                outcome.new_lifecycle = len(new_lifecycle)
                if new_lifecycle:
                    await self._apply_lifecycle(conn, new_lifecycle)
            new_others, found = await store_events(conn, others)
            conflicts += found
            new_usage = [i.event for i in new_others if i.event["type"] == USAGE_TYPE]
            outcome.new_usage = len(new_usage)
            outcome.new_other = len(new_others) - len(new_usage)
            if new_usage:
                owners, cards = await self._state(conn)
                usages = [(e["subject"], d["meter"], d["quantity"], d["start"], d["end"])  # MeteredUsage's order
                          for e in new_usage for d in (e["data"],)]
                await apply_rollup_deltas(conn, rate_usage(usages, owners, cards))
            new_utilization = [i.event for i in new_others if i.event["type"] == UTILIZATION_TYPE]
            if new_utilization:  # never billed: kept as hourly utilisation for the reports, in this transaction
                await store_utilization(conn, new_utilization)
            outcome.dead_letters = dead + conflicts
            await insert_dead_letters(conn, outcome.dead_letters)
            await advance_watermarks(conn, new_lifecycle + new_others)  # last: its rows stay locked until commit
        outcome.duplicates = len(incoming) - outcome.new_lifecycle - len(new_others)
        return outcome

    async def _apply_lifecycle(self, conn, new_lifecycle: list[IncomingEvent]) -> None:
        from_hours = lifecycle_from_hours((i.event["subject"], i.event["data"]["effective_at"]) for i in new_lifecycle)
        await reproject_ownership(conn, from_hours)
        owners, cards = await self._state(conn)  # the version moved: this reloads the new ownership
        await rebuild_rollups(conn, from_hours, owners, cards)

    async def _state(self, conn) -> tuple[dict[str, list[Ownership]], list[RateCardPrices]]:
        versions = await projection_versions(conn)
        if self._versions is None or versions[0] != self._versions[0]:
            self._owners = await load_ownership(conn)
        if self._versions is None or versions[1] != self._versions[1]:
            self._cards = await load_rate_cards(conn)
        self._versions = versions
        return self._owners, self._cards
