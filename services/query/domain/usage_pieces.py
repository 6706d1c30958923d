"""``/v1/usage`` answers by the day assembled from month pieces. Pure: the pieces come from
``services.query.views.usage_piece``.

A day never crosses a local month, so the answer by the day over [from, to) is, in order, each touched month's
answer restricted to the days inside the window. A *piece* is one month's whole answer for a query's shape
(groups, granularity, scope, meter) with its buckets kept apart; cached per month and scoped department, it
survives ingestion (a worker commit touches today's month) and serves every window that touches that month. So a
finance officer's never-asked window over last year costs a few cached pieces, not a scan of the rollup.

Encoding (bytes, for the response cache): the number of buckets (6 digits) and a newline; one index line per
bucket in time order, of fixed width (``<local bucket start YYYY-MM-DDTHH><rows up to and including this bucket: 10
digits><where its JSON ends in the body: 10 digits>\\n``, so a window's edges are found by binary search); then the
body, every bucket's rows as JSON objects joined by commas. A window's buckets in a month are consecutive, so its
rows are one range of the body: assembling a year copies its bytes once."""

from __future__ import annotations

from datetime import datetime

from services.common.periods import LOCAL_TZ, Month, is_local_midnight, months_spanning

BUCKET_KEY_FORMAT = 'YYYY-MM-DD"T"HH24'  # PostgreSQL's to_char of a local bucket start; bucket_key's twin


def piece_months(start: datetime, end: datetime, group_by: tuple[str, ...], granularity: str,
                 most: int = 60) -> list[Month] | None:
    """The months whose pieces answer [start, end), or None when pieces cannot or should not: not by the day (a
    month, a total or the window may cut a bucket; a month of hours is 24 times a month of days, mostly for a window
    of a few days), a window not on local midnights, resources (a piece would be as large as the fleet), or more
    than ``most`` months (one request would compute that many pieces at once)."""
    if granularity != "day" or "resource" in group_by or not (is_local_midnight(start) and is_local_midnight(end)):
        return None
    return months_spanning(start, end, most) if start < end else None


def bucket_key(instant: datetime) -> bytes:
    """The piece key of the bucket that starts at ``instant`` (a whole local hour)."""
    local = instant.astimezone(LOCAL_TZ)
    return b"%04d-%02d-%02dT%02d" % (local.year, local.month, local.day, local.hour)  # 13 bytes, as to_char's


OVER_LIMIT = b"over the row limit"  # a month too large to be a piece (a piece starts with its 6-digit bucket count)
_HEADER = 7  # b"%06d\n": the number of buckets
_RECORD = 34  # b"%13s%010d%010d\n": the bucket's key, the rows up to and including it, where its JSON ends


def encode_piece(buckets: list[tuple[str, int, str]]) -> bytes:
    """A piece from (bucket key, rows, rows' JSON) in time order."""
    texts = [rows.encode() for _, _, rows in buckets]
    index, rows, end = [b"%06d\n" % len(buckets)], 0, -1
    for (key, count, _), text in zip(buckets, texts):
        rows, end = rows + count, end + 1 + len(text)  # the texts are joined by commas
        index.append(b"%s%010d%010d\n" % (key.encode(), rows, end))
    return b"".join(index) + b",".join(texts)


def _first_at_or_after(piece: bytes, buckets: int, key: bytes) -> int:
    """The first bucket whose key is at least ``key`` (``buckets`` if none): a binary search of the index."""
    low, high = 0, buckets
    while low < high:
        middle = (low + high) // 2
        at = _HEADER + middle * _RECORD
        if piece[at:at + 13] < key:
            low = middle + 1
        else:
            high = middle
    return low


def slice_piece(piece: bytes, low: bytes, high: bytes) -> tuple[int, memoryview | None]:
    """The rows and the JSON of the buckets of ``piece`` whose keys are in [low, high): one view into the piece,
    as a month's buckets inside a window are consecutive (None when no bucket is)."""
    buckets = int(piece[:_HEADER])
    first, last = _first_at_or_after(piece, buckets, low), _first_at_or_after(piece, buckets, high)
    if first >= last:
        return 0, None

    def record(i: int) -> tuple[int, int]:  # (rows up to and including bucket i, where its JSON ends); i = -1: none
        if i < 0:
            return 0, -1
        at = _HEADER + i * _RECORD + 13
        return int(piece[at:at + 10]), int(piece[at + 10:at + 20])

    (rows_before, end_before), (rows_through, end) = record(first - 1), record(last - 1)
    body = _HEADER + buckets * _RECORD
    return rows_through - rows_before, memoryview(piece)[body + end_before + 1:body + end]


def assemble(slices: list[tuple[int, memoryview | None]], before: bytes = b"", after: bytes = b"") -> tuple[int, bytes]:
    """The answer's row count and its ``rows`` JSON array from the pieces' slices, in month order, between
    ``before`` and ``after`` (copied once)."""
    parts: list[bytes | memoryview] = [before, b"["]
    for _, text in slices:
        if text is not None:
            parts += (text, b",")
    parts[-1:] = [b"]", after] if len(parts) > 2 else [b"[]", after]
    return sum(count for count, _ in slices), b"".join(parts)
