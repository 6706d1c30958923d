"""A response cache for read endpoints whose answers are a pure function of the database (and the request).

Invalidation is driven by PostgreSQL itself: statement-level triggers (migration 0004) ``NOTIFY`` the channel
``govmeter_changes`` (payload: the table) whenever a table that a cached answer reads changes. One connection
per process ``LISTEN``s; every notification for a table the cache depends on bumps the *generation* and drops
the entries that read what changed. An answer is stored only if nothing it read changed between the generation
read before it was computed and its landing, so an answer computed from data that changed meanwhile is never
served.

Exactness: before a request looks in the cache it makes one round trip on the listening connection.
PostgreSQL signals the listeners while the writer commits, before the writer hears its COMMIT succeed, and a
listening backend sends pending notifications ahead of its next ReadyForQuery; so every write whose COMMIT
had returned when the request arrived has bumped the generation before the request reads it. Concurrent
requests share one round trip (a request waits for the next trip that starts after it arrived).

While the listener is not connected (not yet, or lost), nothing is cached or served from the cache; each
(re)connection bumps the generation, as changes made while deaf are unknown.

Scoped invalidation (migration 0014): a change to the usage rollups is notified as the months and departments it
touched, and drops only the answers that read those (``Reads``): ingesting today's usage keeps every answer about
last year. An answer computed while a change it read was notified is not stored (``_log``: the changes since the
oldest computation still running)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

log = logging.getLogger(__name__)

CHANNEL = "govmeter_changes"
USAGE_TABLES = frozenset(("usage_hourly", "usage_daily", "usage_department_daily", "usage_monthly",
                          "usage_department_totals_daily"))
# Every write to a finer rollup writes usage_monthly in the same statement: its scoped notification says what
# changed, so the finer tables' bare names are only counted (``table_generation``).
FINER_ROLLUPS = USAGE_TABLES - {"usage_monthly"}


@dataclass(frozen=True, slots=True)
class Reads:
    """What a cached answer read: a change to any of ``tables`` drops it; a change to the usage rollups drops it
    if ``usage`` and the change touched one of ``months`` ("YYYY-MM"; None: any) for one of ``departments`` (None:
    any, unattributed usage included)."""

    tables: frozenset[str] = frozenset()
    usage: bool = False
    months: frozenset[str] | None = None
    departments: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """One notification: ``table`` changed (None: anything may have); for the usage rollups, ``months`` maps each
    month touched to its departments (None: any department), and is None when any month may have changed."""

    table: str | None
    months: dict[str, frozenset[str | None] | None] | None = None


EVERYTHING = Change(None)


def parse_change(payload: str) -> Change:
    """A notification's payload: a bare table name (migration 0004) or a scoped usage change (migration 0014)."""
    if not payload.startswith("{"):
        return Change(payload)
    try:
        found = orjson.loads(payload)
        months = found["m"]
        if months == "*":
            return Change(found["t"])
        return Change(found["t"], {m: None if ds == "*" else frozenset(ds) for m, ds in months.items()})
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return EVERYTHING  # unreadable: assume the worst


def affects(change: Change, reads: Reads) -> bool:
    """Whether ``change`` may change an answer that read ``reads``. Pure."""
    if change.table is None:
        return True
    if change.table not in USAGE_TABLES:
        return change.table in reads.tables
    if not reads.usage:
        return False
    if change.months is None:
        return True
    for month, departments in change.months.items():
        if reads.months is not None and month not in reads.months:
            continue
        if departments is None or reads.departments is None or not departments.isdisjoint(reads.departments):
            return True
    return False


@dataclass(frozen=True, slots=True)
class _Entry:
    body: Any  # an answer's bytes, or a part kept as objects that says its size (``nbytes``)
    reads: Reads
    size: int


def _size_of(body: Any) -> int:
    return len(body) if isinstance(body, (bytes, bytearray)) else body.nbytes


@dataclass(frozen=True, slots=True)
class _Flight:
    start: int  # the generation when it began
    reads: Reads
    future: asyncio.Future[bytes]


class ResponseCache:
    """``tables``: what the cached answers read (the payloads of the notifications that invalidate them)."""

    def __init__(self, tables: Collection[str], max_entries: int = 1024, max_bytes: int = 64 * 2**20,
                 retry_seconds: float = 1.0) -> None:
        self.tables = frozenset(tables)
        self.everything = Reads(self.tables - USAGE_TABLES, bool(self.tables & USAGE_TABLES))
        self.max_entries, self.max_bytes, self.retry_seconds = max_entries, max_bytes, retry_seconds
        self.generation = 0
        self.hits = self.misses = 0
        self._epoch = 0  # bumped whenever notifications may have been missed
        self._changes: dict[str, int] = {}  # notifications seen per table in this epoch
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._bytes = 0
        self._flights: dict[Hashable, _Flight] = {}
        self._log: list[tuple[int, Change]] = []  # changes applied while computations were running
        self._log_floor = 0  # changes up to this generation are no longer in the log
        self._conn: asyncpg.Connection | None = None
        self._listening = False
        self._next_trip: asyncio.Future[None] | None = None
        self._trips: asyncio.Task | None = None
        self._keeper: asyncio.Task | None = None
        self._lost = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self._listening and self._conn is not None and not self._conn.is_closed()

    # --- the listener -------------------------------------------------------------------------------------------

    async def start(self, dsn: str) -> None:
        """Listen in the background (reconnecting as needed); the first connection is tried before returning."""
        self._keeper = asyncio.create_task(self._keep_listening(dsn))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wait_connected(), timeout=5)

    async def _wait_connected(self) -> None:
        while not self.connected:
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        for task in (self._keeper, self._trips):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._next_trip is not None:  # nobody will make it: its waiters compute uncached
            self._next_trip.cancel()
            self._next_trip = None
        await self._drop_connection()

    async def _keep_listening(self, dsn: str) -> None:
        warned = False
        while True:
            try:
                self._conn = conn = await asyncpg.connect(dsn)
                if not await conn.fetchval("SELECT to_regproc('govmeter_notify_change') IS NOT NULL"):
                    raise LookupError("no change notifications: run `govmeter migrate` (migration 0004)")
                self._lost.clear()
                conn.add_termination_listener(lambda _conn: self._deaf())
                await conn.add_listener(CHANNEL, self._changed)
                self._epoch += 1  # what changed while nobody listened is unknown
                self.invalidate()
                self._listening = True
                await self._lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not warned:  # once per outage, not every retry
                    log.warning("response cache listener unavailable (%s); not caching", exc)
                warned = True
            else:
                warned = False
            await self._drop_connection()
            await asyncio.sleep(self.retry_seconds)

    def _changed(self, _conn, _pid, _channel, payload: str) -> None:
        change = parse_change(payload)
        if change.table is not None:
            self._changes[change.table] = self._changes.get(change.table, 0) + 1
        if change.table is not None and change.table not in self.tables:
            return
        if change.table in FINER_ROLLUPS and not payload.startswith("{"):
            return  # counted only: usage_monthly's scoped notification of the same statement says what changed
        self.apply(change)

    def _deaf(self) -> None:
        self._listening = False
        self._epoch += 1
        self.invalidate()
        self._lost.set()

    def table_generation(self, table: str) -> tuple[int, int] | None:
        """Changes to one table so far, for values derived from that table alone; None: unknown (not listening).
        Read it before the snapshot a value is computed in; compare it after ``caught_up()``."""
        return (self._epoch, self._changes.get(table, 0)) if self.connected else None

    async def caught_up(self) -> bool:
        """True once every write committed before this call is counted (see the module's docstring)."""
        return self.connected and await self._caught_up()

    def stored(self, key: Hashable) -> Any:
        """The answer stored under ``key`` (a hit), or None. Only after ``caught_up()``: an entry is present while
        nothing it read has changed."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry.body

    async def _drop_connection(self) -> None:
        self._listening = False
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)

    def invalidate(self) -> None:
        self.apply(EVERYTHING)

    def apply(self, change: Change) -> None:
        """Drop the answers ``change`` may change, and remember it for the computations still running."""
        self.generation += 1
        if self._flights:
            self._log.append((self.generation, change))
        else:
            self._log_floor = self.generation
        if change.table is None:
            self._entries.clear()
            self._bytes = 0
            return
        for key in [k for k, entry in self._entries.items() if affects(change, entry.reads)]:
            self._bytes -= self._entries.pop(key).size

    def _changed_since(self, start: int, reads: Reads) -> bool:
        if start < self._log_floor:
            return True
        for generation, change in reversed(self._log):
            if generation <= start:
                break
            if affects(change, reads):
                return True
        return False

    # --- catching up with committed writes ----------------------------------------------------------------------

    async def _caught_up(self) -> bool:
        """True once every notification of a write committed before this call has been counted."""
        if self._next_trip is None:
            self._next_trip = asyncio.get_running_loop().create_future()
            if self._trips is None or self._trips.done():
                self._trips = asyncio.create_task(self._run_trips())
        trip = self._next_trip
        try:
            await asyncio.shield(trip)
        except Exception:
            return False
        except asyncio.CancelledError:
            if trip.cancelled():  # the cache is stopping
                return False
            raise
        return self.connected

    async def _run_trips(self) -> None:
        while self._next_trip is not None:
            trip, self._next_trip = self._next_trip, None
            try:
                if not self.connected:
                    raise ConnectionError("response cache listener is not connected")
                await self._conn.execute("SELECT 1")  # type: ignore[union-attr]
                await asyncio.sleep(0)  # let the notification callbacks that arrived with it run first
            except asyncio.CancelledError:
                trip.cancel()
                raise
            except Exception as exc:
                if self.connected:
                    self._deaf()
                trip.set_exception(exc)
                trip.exception()  # retrieved: the waiters treat it as "not connected"
            else:
                trip.set_result(None)

    # --- serving ------------------------------------------------------------------------------------------------

    async def serve(self, key: Hashable, compute: Callable[[], Awaitable[bytes]], reads: Reads | None = None
                    ) -> bytes:
        """The cached answer for ``key``, else ``compute()``'s (one computation for concurrent identical misses).

        ``key`` must hold everything the answer depends on besides the database, the caller's scope included;
        ``reads``: what the answer reads of the database (default: everything this cache listens to)."""
        if not self.connected or not await self._caught_up():
            return await compute()
        return await self._serve_caught_up(key, compute, reads or self.everything)

    async def serve_all(self, wanted: Sequence[tuple[Hashable, Callable[[], Awaitable[bytes]], Reads]]
                        ) -> list[bytes]:
        """``serve`` for each (key, compute, reads) of ``wanted``, concurrently, after one catching-up trip for all
        (an answer assembled from many cached parts waits for one round trip, not one per part)."""
        if not self.connected or not await self._caught_up():
            return list(await asyncio.gather(*(compute() for _, compute, _ in wanted)))
        found = [self.stored(key) for key, _, _ in wanted]  # the stored ones without a future each
        missing = [i for i, body in enumerate(found) if body is None]
        if missing:
            for i, body in zip(missing, await asyncio.gather(*(self._serve_caught_up(*wanted[i]) for i in missing))):
                found[i] = body
        return found

    def _serve_caught_up(self, key: Hashable, compute: Callable[[], Awaitable[bytes]], reads: Reads
                         ) -> Awaitable[bytes]:
        body = self.stored(key)
        if body is not None:  # present: nothing it read has changed (``apply`` drops it at once)
            done = asyncio.get_running_loop().create_future()
            done.set_result(body)
            return done
        flight = self._flights.get(key)
        if flight is not None and not self._changed_since(flight.start, flight.reads):
            self.hits += 1
            return asyncio.shield(flight.future)
        self.misses += 1
        # A task of its own: a caller that goes away does not cancel the answer the others are waiting for.
        flight = _Flight(self.generation, reads, asyncio.ensure_future(compute()))
        self._flights[key] = flight
        flight.future.add_done_callback(lambda done: self._landed(key, flight))
        return asyncio.shield(flight.future)

    def _landed(self, key: Hashable, flight: _Flight) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        done = flight.future
        if (not done.cancelled() and done.exception() is None and self.connected
                and not self._changed_since(flight.start, flight.reads)):
            result = done.result()
            self._store(key, _Entry(result, flight.reads, _size_of(result)))
        self._forget_logged()

    def _forget_logged(self) -> None:
        """Drop the logged changes no running computation can have missed (under steady traffic some computation
        is always running, so the log is trimmed to the oldest one's start rather than only emptied)."""
        if not self._flights:
            self._log.clear()
            self._log_floor = self.generation
            return
        oldest = min(flight.start for flight in self._flights.values())
        if self._log and self._log[0][0] <= oldest:
            self._log = [(generation, change) for generation, change in self._log if generation > oldest]
            self._log_floor = max(self._log_floor, oldest)

    def _store(self, key: Hashable, entry: _Entry) -> None:
        size = entry.size
        if size > self.max_bytes // 4:
            return  # one huge answer must not evict everything else
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old.size
        self._entries[key] = entry
        self._bytes += size
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.size


def with_response_cache(lifespan, cache: ResponseCache):
    """Wrap an app's lifespan: ``cache`` listens (when GOVMETER_RESPONSE_CACHE is on) while the app runs."""
    from contextlib import asynccontextmanager

    from services.common.config import get_settings
    from services.common.db import asyncpg_dsn

    @asynccontextmanager
    async def wrapped(app):
        settings = get_settings()
        cache.max_entries, cache.max_bytes = settings.response_cache_entries, settings.response_cache_bytes
        if settings.response_cache:
            await cache.start(asyncpg_dsn(settings.database_url))
        try:
            async with lifespan(app):
                yield
        finally:
            await cache.stop()

    return wrapped
