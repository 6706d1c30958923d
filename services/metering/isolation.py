"""One refused event costs one dead letter, never the batch: failure classes and the bisecting applier.

A batch's transaction can fail for two kinds of reasons. *Transient* ones (the database or the network away, a
serialization failure, a deadlock, a cancelled statement) say nothing about the events: the same batch is retried
with backoff, forever, and never dead-lettered. *Refusals* are about the data (a value PostgreSQL will not store,
a constraint, a number too large to rate): the batch is bisected until the refused events stand alone, and each of
those is filed as a dead letter with the database's own reason while every other event commits.

Which is which is decided by the error's class: the SQLSTATE class for PostgreSQL errors, the exception type for
errors raised in this process. Anything not known to be a refusal is treated as transient: a wedge that logs
loudly is recoverable, an event wrongly dead-lettered is usage missing from a bill."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from decimal import DecimalException

from services.metering.event_store import DeadLetterRow, IncomingEvent

log = logging.getLogger(__name__)

# SQLSTATE classes that judge the data: 22 data exception, 23 integrity constraint violation, 54 program limit
# exceeded (an index row too large, too many columns). Every other class (08 connection, 40 transaction rollback:
# serialization and deadlock, 53 insufficient resources, 57 operator intervention: shutdown or cancel, 58 system,
# XX internal) is retried.
REFUSAL_SQLSTATE_CLASSES = frozenset({"22", "23", "54"})
# Raised by rating on values that passed validation but cannot be computed (a Decimal context overflow, say).
REFUSAL_EXCEPTIONS: tuple[type[BaseException], ...] = (DecimalException, OverflowError, ValueError)

RETRY_FIRST_DELAY = 0.5
RETRY_MAX_DELAY = 5.0  # an outage's end is noticed within this


def is_refusal(exc: BaseException) -> bool:
    """True if ``exc`` is about the events of the transaction, False if retrying the same events may succeed."""
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and len(sqlstate) == 5:
        return sqlstate[:2] in REFUSAL_SQLSTATE_CLASSES
    return isinstance(exc, REFUSAL_EXCEPTIONS)


def refusal_reason(exc: BaseException) -> str:
    sqlstate = getattr(exc, "sqlstate", None)
    detail = getattr(exc, "detail", None)
    text = f"{type(exc).__name__}: {exc}" if not sqlstate else f"SQLSTATE {sqlstate} {type(exc).__name__}: {exc}"
    return f"{text} ({detail})" if detail else text


def refused_letter(item: IncomingEvent, exc: BaseException) -> DeadLetterRow:
    source, event_id = item.key
    digest = hashlib.sha256(item.payload).hexdigest()
    return DeadLetterRow(
        dedupe_key=f"refused:{source}:{event_id}:{digest}", source=source, event_id=event_id,
        reason="refused by the database" if getattr(exc, "sqlstate", None) else "could not be rated",
        errors=[refusal_reason(exc)], payload=item.payload.decode("utf-8", "backslashreplace"),
    )


Apply = Callable[[list[IncomingEvent], list[DeadLetterRow]], Awaitable]


async def retry_transient(apply: Apply, incoming: list[IncomingEvent], dead: list[DeadLetterRow],
                          on_failure: Callable[[], None] = lambda: None, sleep=asyncio.sleep):
    """Apply until the transaction commits or the database refuses the events (then the refusal is raised)."""
    delay = RETRY_FIRST_DELAY
    while True:
        try:
            return await apply(incoming, dead)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            on_failure()
            if is_refusal(exc):
                raise
            log.warning("batch of %d events failed (%s); retrying in %.1fs", len(incoming), refusal_reason(exc), delay)
            await sleep(delay)
            delay = min(delay * 2, RETRY_MAX_DELAY)


async def apply_isolating(apply: Apply, incoming: list[IncomingEvent], dead: list[DeadLetterRow], new_outcome,
                          on_failure: Callable[[], None] = lambda: None, sleep=asyncio.sleep):
    """Apply a batch; if the database refuses it, bisect until each refused event stands alone and file it as a
    dead letter, committing every other event. The happy path is one call of ``apply``, as before.

    Parts are applied one after another, each in its own transaction, and the caller releases the batch's offsets
    only after this returns: a crash part-way redelivers the batch, and the parts already committed dedupe."""
    outcome = new_outcome()
    parts: list[tuple[list[IncomingEvent], list[DeadLetterRow]]] = [(incoming, dead)]
    while parts:
        part, letters = parts.pop()
        try:
            outcome.absorb(await retry_transient(apply, part, letters, on_failure, sleep))
        except Exception as exc:  # a refusal: retry_transient raises nothing else
            if len(part) > 1:
                middle = len(part) // 2
                parts.append((part[middle:], []))
                parts.append((part[:middle], letters))  # popped first: the batch's order is kept
            elif len(part) == 1:
                log.warning("event %s refused, filed as a dead letter: %s", part[0].key, refusal_reason(exc))
                parts.append(([], [*letters, refused_letter(part[0], exc)]))
            else:  # the dead letters alone were refused; they are made storable, so this is a defect: keep trying
                log.error("dead letters refused (%s); retrying", refusal_reason(exc))
                await sleep(RETRY_MAX_DELAY)
                parts.append((part, letters))
    return outcome
