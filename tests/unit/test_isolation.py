"""Per-event isolation: which failures are the events' fault, and bisecting a refused batch down to its culprits."""

from __future__ import annotations

import asyncio
from decimal import InvalidOperation

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.metering.isolation import apply_isolating, is_refusal
from services.metering.pipeline import BatchOutcome
from services.metering.event_store import IncomingEvent


@pytest.mark.parametrize("error", [
    asyncpg.exceptions.CharacterNotInRepertoireError("invalid byte sequence"),  # 22021
    asyncpg.exceptions.NumericValueOutOfRangeError("numeric field overflow"),  # 22003
    asyncpg.exceptions.CheckViolationError("check"),  # 23514
    asyncpg.exceptions.ProgramLimitExceededError("index row size exceeds maximum"),  # 54000
    InvalidOperation(), OverflowError(), ValueError("bad"),
])
def test_errors_about_the_data_are_refusals(error):
    assert is_refusal(error)


@pytest.mark.parametrize("error", [
    asyncpg.exceptions.SerializationError("could not serialize"),  # 40001
    asyncpg.exceptions.DeadlockDetectedError("deadlock"),  # 40P01
    asyncpg.exceptions.AdminShutdownError("terminating"),  # 57P01
    asyncpg.exceptions.CannotConnectNowError("starting up"),  # 57P03
    asyncpg.exceptions.QueryCanceledError("statement timeout"),  # 57014
    asyncpg.exceptions.TooManyConnectionsError("too many"),  # 53300
    asyncpg.exceptions.ConnectionDoesNotExistError("closed"),  # 08003
    asyncpg.exceptions.InterfaceError("connection is closed"),
    ConnectionRefusedError(), OSError("network unreachable"), TimeoutError(), KeyError("a bug"),
])
def test_errors_about_the_moment_are_retried(error):
    assert not is_refusal(error)


def item(n: int) -> IncomingEvent:
    return IncomingEvent({"type": "t", "n": n}, f'{{"n":{n}}}'.encode(), ("src", f"e{n}"), ("", None, None))


class FakeStore:
    """Commits a part unless it holds a poisoned event; fails transiently the first ``flaky`` times."""

    def __init__(self, poisoned: set[int], flaky: int = 0) -> None:
        self.poisoned, self.flaky = poisoned, flaky
        self.committed: list[int] = []
        self.letters: list[str] = []
        self.calls = 0

    async def apply(self, incoming, dead):
        self.calls += 1
        if self.flaky:
            self.flaky -= 1
            raise asyncpg.exceptions.SerializationError("could not serialize access")
        if any(i.event["n"] in self.poisoned for i in incoming):
            raise asyncpg.exceptions.UntranslatableCharacterError("unsupported Unicode escape sequence")
        self.committed += [i.event["n"] for i in incoming]
        self.letters += [d.event_id for d in dead]
        return BatchOutcome(events=len(incoming), new_usage=len(incoming), dead_letters=list(dead))


async def no_sleep(_):
    return None


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 300), data=st.data())
def test_a_refused_batch_commits_every_good_event_and_files_each_refused_one(size, data):
    poisoned = set(data.draw(st.sets(st.integers(0, size - 1), max_size=min(size, 8))))
    store = FakeStore(poisoned)
    outcome = asyncio.run(apply_isolating(store.apply, [item(n) for n in range(size)], [], BatchOutcome,
                                          sleep=no_sleep))
    assert sorted(store.committed) == sorted(set(range(size)) - poisoned)
    assert sorted(store.letters) == sorted(f"e{n}" for n in poisoned)
    assert outcome.new_usage == size - len(poisoned)
    assert all(d.reason == "refused by the database" and "SQLSTATE 22P05" in d.errors[0]
               for d in outcome.dead_letters)
    # bisection: about 2·k·log2(n) transactions for k culprits, one when there are none
    assert store.calls <= 1 + 2 * len(poisoned) * (size.bit_length() + 1)


def test_transient_failures_are_retried_and_never_dead_lettered():
    store = FakeStore(poisoned=set(), flaky=3)
    delays = []

    async def sleep(seconds):
        delays.append(seconds)

    outcome = asyncio.run(apply_isolating(store.apply, [item(n) for n in range(10)], [], BatchOutcome, sleep=sleep))
    assert store.committed == list(range(10)) and outcome.dead_letters == []
    assert delays == [0.5, 1.0, 2.0]  # backoff


def test_the_batches_dead_letters_from_decoding_commit_with_the_first_part():
    store = FakeStore(poisoned={0})
    from services.metering.event_store import DeadLetterRow
    letter = DeadLetterRow("k", "src", "bad-json", "invalid JSON", ["body: x"], "{")
    asyncio.run(apply_isolating(store.apply, [item(0), item(1)], [letter], BatchOutcome, sleep=no_sleep))
    assert store.committed == [1] and sorted(store.letters) == ["bad-json", "e0"]
