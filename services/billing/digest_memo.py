"""Usage fingerprints of closed months remembered between bill-list reads while ``usage_daily`` is unchanged.

A department's draft checks each closed month before it against the fingerprint recorded when that month was
settled (``bills.usage_digests``, a year of the department's daily rows): most of a bill list (docs/benchmark.md).
The fingerprint reads ``usage_daily`` alone, so it stays right until that table changes, whatever else does (a
close, an adjustment, a new department). The response cache's notifications count the changes per table.

Exactness, as for cached answers: a fingerprint is stored under ``usage_daily``'s generation read *before* the
snapshot it was computed in, and used by a later read only if, after that read's snapshot began and its round
trip caught up with every committed write, the generation is still the same: then no change to ``usage_daily``
committed between the two snapshots, so both see the same rows. (A remembered fingerprint newer than the read's
snapshot could only differ from the recorded one and so make the month be re-priced from the read's own
snapshot: never a wrong figure.)"""

from __future__ import annotations

from collections import OrderedDict

from services.bill_reads.bills import usage_digests
from services.common.response_cache import ResponseCache

TABLE = "usage_daily"


class DigestMemo:
    def __init__(self, cache: ResponseCache, max_entries: int = 4096) -> None:
        self.cache, self.max_entries = cache, max_entries
        self.hits = 0
        self._entries: OrderedDict[tuple, tuple[tuple[int, int], dict[tuple[str, str], str]]] = OrderedDict()

    def source(self):
        """A ``usage_digests`` for one read; call before the read's snapshot begins."""
        return _Source(self, self.cache.table_generation(TABLE))


class _Source:
    def __init__(self, memo: DigestMemo, before: tuple[int, int] | None) -> None:
        self.memo, self.before = memo, before

    async def __call__(self, conn, periods: list[str], departments: list[str] | None) -> dict[tuple[str, str], str]:
        memo = self.memo
        if self.before is None or not await memo.cache.caught_up():
            return await usage_digests(conn, periods, departments)
        key = (tuple(periods), None if departments is None else tuple(departments))
        found = memo._entries.get(key)
        if found is not None and found[0] == memo.cache.table_generation(TABLE):
            memo._entries.move_to_end(key)
            memo.hits += 1
            return dict(found[1])
        digests = await usage_digests(conn, periods, departments)
        memo._entries[key] = (self.before, dict(digests))
        memo._entries.move_to_end(key)
        while len(memo._entries) > memo.max_entries:
            memo._entries.popitem(last=False)
        return digests
