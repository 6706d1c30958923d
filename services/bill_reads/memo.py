"""Reads remembered by what decides them, checked in the reader's own snapshot.

A bill list reads much that changes only when something is appended: closes, final bills, manual adjustments and
rate cards (append-only tables: the app role may only insert, and a trigger refuses UPDATE, DELETE and TRUNCATE to
the owner too, migrations 0002 and 0019), and a department-month's usage, whose version counts every write
(``usage_versions``). A read that is a function of such stamps alone is remembered under them; a request reads the
stamps in its snapshot (a count, a version) and reuses the result only when they are equal, so the answer is the
one its snapshot would compute. Nothing is invalidated: entries for stamps no longer current are simply never asked
for again, and the oldest go."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

_ABSENT = object()


class SnapshotMemo:
    """The ``kept`` most recently used results, by key."""

    def __init__(self, kept: int) -> None:
        self.kept = kept
        self._results: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, default: Any = None) -> Any:
        found = self._results.get(key, _ABSENT)
        if found is _ABSENT:
            return default
        self._results.move_to_end(key)
        return found

    def put(self, key: Hashable, result: Any) -> Any:
        self._results[key] = result
        self._results.move_to_end(key)
        while len(self._results) > self.kept:
            self._results.popitem(last=False)
        return result

    async def read_through(self, key: Hashable | None, read: Callable[[], Awaitable[Any]]) -> Any:
        """The result remembered under ``key``, else ``read()``'s, remembered (``key`` None: read, not remembered)."""
        if key is None:
            return await read()
        found = self.get(key, _ABSENT)
        return self.put(key, await read()) if found is _ABSENT else found

    def clear(self) -> None:
        self._results.clear()
