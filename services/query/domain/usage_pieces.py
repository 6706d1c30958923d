"""``/v1/usage`` answers by the day or hour assembled from month pieces. Pure: the pieces come from
``services.query.views.usage_piece``.

A day or hour bucket never crosses a local month, so the answer over [from, to) is, in order, each touched month's
answer restricted to the buckets inside the window. A *piece* is one month's whole answer for a query's shape
(groups, granularity, scope, meter) with its buckets kept apart; cached per month and scoped department, it
survives ingestion (a worker commit touches today's month) and serves every window that touches that month. So a
finance officer's never-asked window over last year costs a few cached pieces, not a scan of the rollup.

Encoding (bytes, for the response cache): one line per bucket, ``<local bucket start YYYY-MM-DDTHH>\\t<rows>\\t
<the bucket's rows as comma-joined JSON objects>\\n``, buckets in time order. JSON text holds no raw tab or
newline (they are escaped), so the separators are unambiguous."""

from __future__ import annotations

from datetime import datetime, timedelta

from services.common.periods import LOCAL_TZ, Month, is_local_midnight

PIECE_GRANULARITIES = ("day", "hour")
BUCKET_KEY_FORMAT = 'YYYY-MM-DD"T"HH24'  # PostgreSQL's to_char of a local bucket start; bucket_key's twin


def piece_months(start: datetime, end: datetime, group_by: tuple[str, ...], granularity: str,
                 most: int = 120) -> list[Month] | None:
    """The months whose pieces answer [start, end), or None when pieces cannot: totals and months (a bucket may be
    cut by the window), a day window not on local midnights, resources (a piece would be as large as the fleet),
    or more than ``most`` months."""
    if granularity not in PIECE_GRANULARITIES or "resource" in group_by:
        return None
    if granularity == "day" and not (is_local_midnight(start) and is_local_midnight(end)):
        return None
    months = Month.of(start).through(Month.of(end - timedelta(microseconds=1)))  # end is exclusive
    return months if 0 < len(months) <= most else None


def bucket_key(instant: datetime) -> bytes:
    """The piece key of the bucket that starts at ``instant`` (a whole local hour)."""
    return instant.astimezone(LOCAL_TZ).strftime("%Y-%m-%dT%H").encode()


def encode_piece(buckets: list[tuple[str, int, str]]) -> bytes:
    """A piece from (bucket key, rows, rows' JSON) in time order."""
    return b"".join(f"{key}\t{count}\t{rows}\n".encode() for key, count, rows in buckets)


def slice_piece(piece: bytes, start: datetime, end: datetime) -> tuple[int, list[bytes]]:
    """The rows and the JSON texts of the buckets of ``piece`` that start in [start, end)."""
    low, high = bucket_key(start), bucket_key(end)
    count, texts = 0, []
    for line in piece.splitlines():
        key, rows, text = line.split(b"\t", 2)
        if low <= key < high:
            count += int(rows)
            texts.append(text)
    return count, texts


def assemble(slices: list[tuple[int, list[bytes]]]) -> tuple[int, bytes]:
    """The answer's row count and its ``rows`` JSON array from the pieces' slices, in month order."""
    texts = [text for _, month_texts in slices for text in month_texts]
    return sum(count for count, _ in slices), b"[" + b",".join(texts) + b"]"

