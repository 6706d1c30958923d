"""Bills from the rollups (PostgreSQL → pure domain): drafts when read, final bills at close.

Everything here reads; ``closing`` writes. Every function takes an asyncpg connection whose transaction the
caller owns (a REPEATABLE READ one for reads, so usage and billing history are seen at one instant).

A bill "as of" close k (``before_close`` = k) sees only the closes before it: replay recomputes each final bill
that way, from the usage that existed when it closed."""

from __future__ import annotations

from collections import defaultdict
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping
from datetime import datetime

from services.billing.domain.bills import (
    Bill,
    LateAdjustment,
    ManualAdjustment,
    UsageSlice,
    bill_number,
    late_adjustments,
    price_usage,
    settled_figures,
)
from services.bill_reads.memo import SnapshotMemo
from services.billing.domain.periods import closed_run_before, open_periods_after_closed
from services.common.db import raw_connection
from services.common.periods import month_bounds
from services.metering.domain.rating import RateCardPrices, card_prices

NO_USAGE = "none"  # the digest of a department-period without usage rows


@asynccontextmanager
async def snapshot(engine):
    """A read-only REPEATABLE READ transaction: usage and billing history as of one instant."""
    async with raw_connection(engine) as conn:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            yield conn


@dataclass(frozen=True, slots=True)
class ClosedPeriod:
    period: str
    close_seq: int
    closed_at: datetime
    closed_by: str
    # Transactions open at the close that had not written yet (their start instants = the received_at /
    # created_at of what they wrote): what they wrote counts after the close although it is stamped before.
    open_at_close: tuple[datetime, ...] = ()

    def saw(self, stamped_at: datetime) -> bool:
        """Whether an event or rate card stamped ``stamped_at`` existed when this period closed."""
        return stamped_at <= self.closed_at and stamped_at not in self.open_at_close


@dataclass(frozen=True, slots=True)
class StoredCard:
    prices: RateCardPrices
    created_at: datetime


async def closed_periods(conn, before_close: int | None = None) -> dict[str, ClosedPeriod]:
    rows = await conn.fetch(
        "SELECT period, close_seq, closed_at, closed_by, open_at_close FROM billing_periods"
        " WHERE $1::bigint IS NULL OR close_seq < $1 ORDER BY close_seq",
        before_close,
    )
    return {r["period"]: ClosedPeriod(r["period"], r["close_seq"], r["closed_at"], r["closed_by"],
                                      tuple(r["open_at_close"] or ())) for r in rows}


async def stored_cards(conn) -> dict[int, StoredCard]:
    rows = await conn.fetch("SELECT id, version, effective_from, prices, created_at FROM rate_cards")
    return {r["id"]: StoredCard(card_prices(r["id"], r["version"], r["effective_from"], r["prices"]), r["created_at"])
            for r in rows}


async def department_names(conn) -> dict[str, str]:
    return {r["id"]: r["name"] for r in await conn.fetch("SELECT id, name FROM departments")}


def _bounds_days(period: str):
    start, end = month_bounds(period)
    return start, end, start.date(), end.date()


# The rate of the trial (试运行) window an hourly rollup row lies in, if any: an hour overlapping the window counts.
TRIAL_RATE = """(SELECT min(t.rate) FROM resource_trials t
    WHERE t.resource_id = u.resource_id AND t.department_id = u.department_id AND t.ends_at > t.starts_at
      AND u.hour >= date_trunc('hour', t.starts_at) AND u.hour < t.ends_at)"""


async def usage_slices(conn, period: str, departments: list[str] | None, cards: dict[int, RateCardPrices],
                       totals_only: bool = False) -> dict[str, list[UsageSlice]]:
    """The department's rated usage in ``period`` from usage_hourly, per hour only for meters that some rate
    card prices in tiers (the others are summed in SQL: their order cannot change their charge), apart where it
    lies in a resource's trial window (with the trial's rate).

    ``totals_only``: slices that give every line's amount and quantity, not its prices: where no trial window
    overlaps the period, the meters no card prices in tiers are read from usage_monthly (one row a department and
    meter, the sum of its daily and hourly rows by construction; a flat-priced line's amount is the sum of its
    rollup amounts whatever the card), without their rate card (0) or system."""
    start, end, first_day, _ = _bounds_days(period)
    tiered = sorted({meter for card in cards.values() for meter in card.tiered})
    trials = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM resource_trials WHERE date_trunc('hour', starts_at) < $2 AND ends_at > $1"
        " AND ends_at > starts_at)", start, end)
    slices: dict[str, list[UsageSlice]] = defaultdict(list)
    monthly = totals_only and not trials
    if monthly:
        for r in await conn.fetch(_MONTHLY_SLICES, first_day, departments, tiered):
            slices[r["department_id"]].append(UsageSlice(None, r["meter"], 0, r["system"] or "", r["quantity"],
                                                         r["amount"], r["unpriced"]))
        if not tiered:
            return slices
    rows = await conn.fetch(
        f"""
        SELECT department_id, meter, rate_card_id, system,
               CASE WHEN meter = ANY($3::text[]) THEN hour END AS hour,
               {TRIAL_RATE if trials else 'NULL::numeric'} AS trial_rate,
               sum(quantity) AS quantity, sum(amount) AS amount, sum(unpriced_quantity) AS unpriced
        FROM usage_hourly u
        WHERE hour >= $1 AND hour < $2 AND department_id IS NOT NULL
          AND ($4::text[] IS NULL OR department_id = ANY($4::text[])) AND (NOT $5 OR meter = ANY($3::text[]))
        GROUP BY 1, 2, 3, 4, 5, 6
        """,
        start, end, tiered, departments, monthly,
    )
    for r in rows:
        slices[r["department_id"]].append(UsageSlice(r["hour"], r["meter"], r["rate_card_id"], r["system"] or "",
                                                     r["quantity"], r["amount"], r["unpriced"], r["trial_rate"]))
    return slices


_MONTHLY_SLICES = """
    SELECT department_id, meter, NULL AS system, quantity, amount, unpriced_quantity AS unpriced
    FROM usage_monthly
    WHERE month = $1 AND department_id IS NOT NULL
      AND ($2::text[] IS NULL OR department_id = ANY($2::text[])) AND meter <> ALL($3::text[])"""


async def departments_to_bill(conn, period: str, among: list[str] | None = None) -> set[str]:
    """Departments with usage in the period, with resources active in it (a bill even at zero usage), or
    with manual adjustments on it (``among``: of these only; a statement of its own, so that its usage_daily
    probe goes down the department's index, not the whole month's rows)."""
    start, end, first_day, end_day = _bounds_days(period)
    who = "true" if among is None else "department_id = ANY($6::text[])"
    rows = await conn.fetch(
        f"""
        SELECT department_id FROM usage_daily WHERE day >= $3 AND day < $4 AND department_id IS NOT NULL AND {who}
        UNION SELECT department_id FROM resource_intervals WHERE valid_from < $2 AND (valid_to IS NULL OR valid_to > $1)
            AND {who}
        UNION SELECT department_id FROM adjustments WHERE period = $5 AND {who}
        """,
        start, end, first_day, end_day, period, *(() if among is None else (among,)),
    )
    return {r["department_id"] for r in rows}


async def manual_adjustments(conn, period: str, departments: list[str] | None) -> dict[str, list[ManualAdjustment]]:
    rows = await conn.fetch(
        """
        SELECT id, department_id, amount, reason, reference, created_by, created_at FROM adjustments
        WHERE period = $1 AND ($2::text[] IS NULL OR department_id = ANY($2::text[])) ORDER BY id
        """,
        period, departments,
    )
    found: dict[str, list[ManualAdjustment]] = defaultdict(list)
    for r in rows:
        found[r["department_id"]].append(ManualAdjustment(r["id"], r["amount"], r["reason"], r["reference"],
                                                          r["created_by"], r["created_at"]))
    return found


_ADJUSTMENTS = SnapshotMemo(1024)


async def _manual_adjustments(conn, period: str, departments: list[str] | None, stamp: Stamp | None
                              ) -> Mapping[str, list[ManualAdjustment]]:
    """``manual_adjustments``, remembered by the adjustments' count when ``stamp`` is known (append-only)."""
    async def read():
        return MappingProxyType(dict(await manual_adjustments(conn, period, departments)))

    key = stamp and (stamp.where, stamp.adjustments, period, None if departments is None else tuple(departments))
    return await _ADJUSTMENTS.read_through(key, read)


# A fingerprint of one department's daily usage rows in one month (the rows' text in key order); migration 0017
# backfills with the same expression.
_DIGEST = """encode(sha256(convert_to(string_agg(
                   concat_ws('|', day, system, meter, trim_scale(quantity), trim_scale(amount),
                             trim_scale(unpriced_quantity)), ';' ORDER BY day, system, meter), 'UTF8')), 'hex')"""


async def usage_digests(conn, periods: list[str], departments: list[str] | None) -> dict[tuple[str, str], str]:
    """A fingerprint of each department's daily usage rows in each period: any change to its usage, owners or
    flat prices changes it (graduated prices are not in the rollups: rate cards are checked separately)."""
    if not periods:
        return {}
    first = month_bounds(min(periods))[0].date()
    end = month_bounds(max(periods))[1].date()
    rows = await conn.fetch(
        f"""
        SELECT department_id, to_char(day, 'YYYY-MM') AS period, {_DIGEST} AS digest
        FROM usage_daily
        WHERE day >= $1 AND day < $2 AND department_id IS NOT NULL
          AND ($3::text[] IS NULL OR department_id = ANY($3::text[]))
          AND NOT (quantity = 0 AND amount = 0 AND unpriced_quantity = 0)
        GROUP BY 1, 2
        """,
        first, end, departments,
    )
    return {(r["department_id"], r["period"]): r["digest"] for r in rows if r["period"] in periods}


async def _digests_of(conn, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """``usage_digests`` of some (department, period) pairs only: one index range of usage_daily each."""
    if not keys:
        return {}
    bounds = [_bounds_days(period)[2:] for _, period in keys]
    rows = await conn.fetch(
        f"""
        SELECT k.department_id, k.period, {_DIGEST} AS digest
        FROM unnest($1::text[], $2::text[], $3::date[], $4::date[]) AS k(department_id, period, first_day, end_day)
        JOIN usage_daily u ON u.department_id = k.department_id AND u.day >= k.first_day AND u.day < k.end_day
        WHERE NOT (u.quantity = 0 AND u.amount = 0 AND u.unpriced_quantity = 0)
        GROUP BY 1, 2
        """,
        [d for d, _ in keys], [p for _, p in keys], [b[0] for b in bounds], [b[1] for b in bounds],
    )
    return {(r["department_id"], r["period"]): r["digest"] for r in rows}


async def usage_versions(conn, periods: list[str], departments: list[str] | None) -> dict[tuple[str, str], int]:
    """How often each department's daily usage of each period was written (bumped by every rollup write in its
    transaction, services/projection/rollups.py); absent: 0."""
    rows = await conn.fetch(
        "SELECT department_id, period, version FROM usage_versions WHERE period = ANY($1::text[])"
        " AND ($2::text[] IS NULL OR department_id = ANY($2::text[]))",
        periods, departments,
    )
    return {(r["department_id"], r["period"]): r["version"] for r in rows}


@dataclass(frozen=True, slots=True)
class Settled:
    """The latest usage baseline of a (department, closed period): its digest, the close that recorded it, and
    the usage version the digest was taken at (0 for baselines older than migration 0017, which it made so)."""

    digest: str
    close_seq: int
    usage_version: int


def unchanged_digests(versions: Mapping[tuple[str, str], int], baselines: Mapping[tuple[str, str], Settled]
                      ) -> tuple[dict[tuple[str, str], str], list[tuple[str, str]]]:
    """The fingerprints known without reading usage (those whose version is the one their latest baseline was
    taken at: the same rows, so the same fingerprint; "no usage" ones left out, as ``usage_digests`` leaves them),
    and the keys whose usage was written since (to fingerprint anew). A key with neither a version nor a baseline
    never had usage."""
    known: dict[tuple[str, str], str] = {}
    stale: list[tuple[str, str]] = []
    for key in sorted(set(versions) | set(baselines)):
        settled = baselines.get(key, Settled(NO_USAGE, 0, 0))
        if versions.get(key, 0) != settled.usage_version:
            stale.append(key)
        elif settled.digest != NO_USAGE:
            known[key] = settled.digest
    return known, stale


@dataclass(frozen=True, slots=True)
class Baseline:
    department_id: str
    period: str
    digest: str
    usage_version: int = 0  # of usage_versions, read with the digest


async def _latest_baselines(conn, periods: list[str], departments: list[str] | None,
                            before_close: int | None) -> dict[tuple[str, str], Settled]:
    rows = await conn.fetch(
        """
        SELECT DISTINCT ON (department_id, period) department_id, period, digest, close_seq, usage_version
        FROM usage_baselines
        WHERE period = ANY($1::text[]) AND ($2::text[] IS NULL OR department_id = ANY($2::text[]))
          AND ($3::bigint IS NULL OR close_seq < $3)
        ORDER BY department_id, period, id DESC
        """,
        periods, departments, before_close,
    )
    return {(r["department_id"], r["period"]): Settled(r["digest"], r["close_seq"], r["usage_version"] or 0)
            for r in rows}


async def _settled(conn, keys: set[tuple[str, str]], before_close: int | None):
    """Per (department, closed period): (meter, quantity, amount) of its final bill and of the late adjustments
    for it frozen into later final bills."""
    if not keys:
        return {}, {}
    rows = await conn.fetch(
        """
        SELECT l.kind, l.department_id, coalesce(l.original_period, l.period) AS settled_period,
               l.meter, l.quantity, l.amount
        FROM ledger_entries l JOIN billing_periods p ON p.period = l.period
        WHERE l.kind IN ('bill_line', 'late_adjustment')
          AND l.department_id = ANY($1::text[]) AND coalesce(l.original_period, l.period) = ANY($2::text[])
          AND ($3::bigint IS NULL OR p.close_seq < $3)
        """,
        sorted({d for d, _ in keys}), sorted({p for _, p in keys}), before_close,
    )
    final: dict[tuple[str, str], list] = defaultdict(list)
    frozen: dict[tuple[str, str], list] = defaultdict(list)
    for r in rows:
        key = (r["department_id"], r["settled_period"])
        (final if r["kind"] == "bill_line" else frozen)[key].append((r["meter"], r["quantity"], r["amount"]))
    return final, frozen


async def _usage_now(conn, run: list[str], departments: list[str] | None
                     ) -> tuple[dict[tuple[str, str], str], dict[tuple[str, str], int]]:
    """The closed months' usage fingerprints now, every pair fingerprinted (closes as of an earlier close, and
    replay's scratch schema, which keeps no versions; the live reads: ``_reprice_decision``), and their usage
    versions."""
    versions = await usage_versions(conn, run, departments)
    return await usage_digests(conn, run, departments), versions


def _to_reprice(run: list[str], now: dict[tuple[str, str], str], baselines: dict[tuple[str, str], Settled],
                closed: dict[str, ClosedPeriod], cards: dict[int, StoredCard]):
    """Which (department, closed month) pairs to re-price (period → departments), and the rate card versions
    added since each pair was settled. A pair whose fingerprint equals its latest baseline's, and that no rate
    card added since touches, cannot have changed."""
    by_seq = {c.close_seq: c for c in closed.values()}
    candidates: dict[str, list[str]] = defaultdict(list)
    repriced_by: dict[tuple[str, str], list[str]] = {}
    for key in sorted(set(now) | set(baselines)):
        department, month = key
        settled = baselines.get(key, Settled(NO_USAGE, closed[month].close_seq, 0))
        settled_at = by_seq.get(settled.close_seq, closed[month])
        month_end = month_bounds(month)[1]
        newer = sorted((c.prices for c in cards.values()
                        if not settled_at.saw(c.created_at) and c.prices.effective_from < month_end),
                       key=lambda p: p.effective_from)
        repriced_by[key] = [p.version for p in newer]
        if newer or now.get(key, NO_USAGE) != settled.digest:
            candidates[month].append(department)
    return candidates, repriced_by


# Which closed months to re-price, per (open period, departments, closes, cards, usage versions of the closed
# run): those inputs decide it (baselines and ledger entries are written by closes only, rate cards are never
# changed, and a version counts every write to a department-month's usage), so a decision is reused only when they
# are read again, in the request's own snapshot, unchanged (services.bill_reads.memo). A bill list while usage of
# the open month is ingested re-reads the versions instead of the baselines, fingerprints and the comparison.
_REPRICE_DECISIONS = SnapshotMemo(512)


async def _reprice_decision(conn, period: str, run: list[str], closed: Mapping[str, ClosedPeriod],
                            cards: Mapping[int, StoredCard], departments: list[str] | None,
                            stamp: Stamp | None) -> tuple:
    """``_to_reprice``'s decision for the live reads (versioned, as of now), with the fingerprints and versions
    it was taken at. ``stamp``: read already in this snapshot (None: not remembered)."""
    versions = await usage_versions(conn, run, departments)

    async def decide() -> tuple:
        baselines = await _latest_baselines(conn, run, departments, None)
        # only the (department, month) pairs whose version moved since their latest baseline are fingerprinted
        known, stale = unchanged_digests(versions, baselines)
        known.update(await _digests_of(conn, stale))
        return (*_to_reprice(run, known, baselines, closed, cards), known, versions)

    key = stamp and (stamp.closes_and_cards, period, None if departments is None else tuple(departments),
                     frozenset(versions.items()))
    return await _REPRICE_DECISIONS.read_through(key, decide)


async def pending_late_adjustments(
    conn, period: str, closed: Mapping[str, ClosedPeriod], cards: Mapping[int, StoredCard],
    departments: list[str] | None, before_close: int | None = None, versioned: bool = False,
    stamp: Stamp | None = None,
) -> tuple[dict[str, list[LateAdjustment]], list[Baseline]]:
    """The late adjustments the bills of open ``period`` carry, for the closed periods just before it, and the
    usage baselines to record if they are frozen now.

    For each such closed period M and department D: what M comes to today (re-priced from the rollups) minus
    its final bill minus the adjustments for M already frozen into later final bills. A (D, M) whose daily
    usage fingerprint equals the one recorded when M's figures were last settled, and for which no rate card
    has been added since, cannot have changed and is not re-priced. ``versioned``: see ``_reprice_decision`` (only
    as of now: ``before_close`` None)."""
    run = closed_run_before(period, closed)
    if not run:
        return {}, []
    if versioned and before_close is None:
        candidates, repriced_by, now, versions = await _reprice_decision(conn, period, run, closed, cards,
                                                                         departments, stamp)
    else:
        baselines = await _latest_baselines(conn, run, departments, before_close)
        now, versions = await _usage_now(conn, run, departments)
        candidates, repriced_by = _to_reprice(run, now, baselines, closed, cards)
    prices = {card_id: card.prices for card_id, card in cards.items()}
    keys = {(d, m) for m, ds in candidates.items() for d in ds}
    final, frozen = await _settled(conn, keys, before_close)
    result: dict[str, list[LateAdjustment]] = defaultdict(list)
    settle: list[Baseline] = []
    for month in run:
        if not candidates.get(month):
            continue
        slices = await usage_slices(conn, month, sorted(candidates[month]), prices)
        for department in sorted(candidates[month]):
            key = (department, month)
            lines = price_usage(slices.get(department, []), prices)
            settled = settled_figures(final.get(key, []), frozen.get(key, []))
            result[department].extend(late_adjustments(month, lines, settled, repriced_by.get(key, ())))
            # Re-priced now: if these adjustments are frozen, this is the usage they settle.
            settle.append(Baseline(department, month, now.get(key, NO_USAGE), versions.get(key, 0)))
    return result, settle


@dataclass(frozen=True, slots=True)
class PeriodBills:
    bills: list[Bill]
    baselines: list[Baseline]  # to record when these bills are final


@dataclass(frozen=True, slots=True)
class Stamp:
    """Rows of the append-only tables a bill reads, in one snapshot: closed periods (and so final bills, usage
    baselines and ledger entries, which only a close writes), rate cards and manual adjustments (append-only
    by trigger and grants). A new row is a new count (none is ever removed), so equal stamps mean equal tables."""

    where: str  # the database and schemas read (replay reads its own schema): counts of other tables mean nothing
    closes: int
    cards: int
    adjustments: int

    @property
    def closes_and_cards(self) -> tuple[str, int, int]:
        return self.where, self.closes, self.cards


_STAMP = ("SELECT current_database() || ':' || current_schemas(false)::text, (SELECT count(*) FROM billing_periods),"
          " (SELECT count(*) FROM rate_cards), (SELECT count(*) FROM adjustments)")


@dataclass(frozen=True, slots=True)
class Reference:
    """What every period's bills read alike: closes, rate cards, department names (read once per request), and,
    as of now, the stamp they were read at."""

    closed: Mapping[str, ClosedPeriod]
    cards: Mapping[int, StoredCard]
    names: dict[str, str]
    stamp: Stamp | None = None


_CLOSES_AND_CARDS = SnapshotMemo(8)


async def reference(conn, before_close: int | None = None) -> Reference:
    """Closes, cards and names; as of now, closes and cards are remembered by their stamp (read-only views)."""
    if before_close is not None:
        return Reference(await closed_periods(conn, before_close), await stored_cards(conn),
                         await department_names(conn))
    stamp = Stamp(*await conn.fetchrow(_STAMP))

    async def read() -> tuple:
        return MappingProxyType(await closed_periods(conn)), MappingProxyType(await stored_cards(conn))

    closed_and_cards = await _CLOSES_AND_CARDS.read_through(stamp.closes_and_cards, read)
    return Reference(*closed_and_cards, await department_names(conn), stamp)


async def period_bills(
    conn, period: str, *, status: str, as_of: datetime, departments: list[str] | None = None,
    before_close: int | None = None, closed_at: datetime | None = None, versioned: bool = False,
    known: Reference | None = None, totals_only: bool = False,
) -> PeriodBills:
    """The bills of an open period: for ``departments``, or for every department it bills (usage, active
    resources, manual adjustments, or late adjustments from closed periods before it). ``versioned``: closed
    months' fingerprints by their usage versions (``_reprice_decision``); ``known``: ``reference`` read already in
    this snapshot (with this ``before_close``); ``totals_only``: bills for their totals alone (a list), their
    own usage read as ``usage_slices`` does for totals: the lines' prices and systems are not the bill's."""
    known = known or await reference(conn, before_close)
    cards = known.cards
    prices = {card_id: card.prices for card_id, card in cards.items()}
    slices = await usage_slices(conn, period, departments, prices, totals_only)
    manual = await _manual_adjustments(conn, period, departments, known.stamp)
    late, baselines = await pending_late_adjustments(conn, period, known.closed, cards, departments, before_close,
                                                     versioned, known.stamp)
    if departments is None:
        chosen = (await departments_to_bill(conn, period)) | set(slices) | set(manual) | {
            d for d, found in late.items() if found}
    else:
        chosen = set(departments)
    bills = [
        Bill(
            bill_id=bill_number(period, d), period=period, department_id=d, department_name=known.names.get(d, d),
            status=status, lines=tuple(price_usage(slices.get(d, []), prices)),
            late_adjustments=tuple(late.get(d, [])), manual_adjustments=tuple(manual.get(d, [])),
            as_of=as_of, closed_at=closed_at,
        )
        for d in sorted(chosen)
    ]
    own = await _own_baselines(conn, period, sorted(chosen)) if status == "final" else []
    return PeriodBills(bills, own + baselines)


async def _own_baselines(conn, period: str, departments: list[str]) -> list[Baseline]:
    """The usage a final period's bills settle: each department's fingerprint of it, and its usage version."""
    digests = await usage_digests(conn, [period], departments)
    versions = await usage_versions(conn, [period], departments)
    return [Baseline(d, period, digests.get((d, period), NO_USAGE), versions.get((d, period), 0))
            for d in departments]


async def has_presence(conn, department_id: str, period: str) -> bool:
    """Whether a department is known at all for a period (registered, or owning resources in it)."""
    start, end = month_bounds(period)
    return bool(await conn.fetchval(
        """
        SELECT EXISTS (SELECT 1 FROM departments WHERE id = $1)
            OR EXISTS (SELECT 1 FROM resource_intervals WHERE department_id = $1 AND valid_from < $3
                       AND (valid_to IS NULL OR valid_to > $2))
        """,
        department_id, start, end,
    ))


async def open_periods(conn) -> list[str]:
    """Open periods that bill something: with usage or manual adjustments, or the first open period after a
    closed one (it carries the closed one's late adjustments, and is the next to close)."""
    closed = await closed_periods(conn)
    following = open_periods_after_closed(closed)
    return sorted(set(await open_periods_with_usage(conn)) | following)


# The months with usage that are not closed: the department's first and last day with usage (two probes of its
# index), the months between them that are not closed (at five years, 72 months of which 71 are closed), and one
# EXISTS probe for each of those. A loose index scan of every month with usage had cost one probe a month kept.
_OPEN_USAGE_MONTHS = """
    WITH span AS (SELECT (SELECT min(day) FROM usage_daily WHERE {who}) AS first,
                         (SELECT max(day) FROM usage_daily WHERE {who}) AS last)
    SELECT to_char(m, 'YYYY-MM') AS period
    FROM span, generate_series(date_trunc('month', span.first), span.last, interval '1 month') AS m
    WHERE m::date <> ALL(ARRAY(SELECT to_date(c, 'YYYY-MM') FROM unnest($1::text[]) AS c))
      AND EXISTS (SELECT 1 FROM usage_daily WHERE {who} AND day >= m::date AND day < (m + interval '1 month')::date)
    UNION SELECT DISTINCT period FROM adjustments WHERE {adjusted}"""


async def open_periods_with_usage(conn, department_id: str | None = None,
                                  closed: Mapping[str, ClosedPeriod] | None = None) -> list[str]:
    """Open periods in which (a department) has usage or manual adjustments."""
    # One department's probes go down its own index (department_id, day): a generic plan for "this department or
    # every one" probed the day-first key and filtered, reading every later row for a department without usage.
    if closed is None:
        closed = await closed_periods(conn)
    rows = await conn.fetch(_OPEN_USAGE_MONTHS.format(
        who="department_id IS NOT NULL" if department_id is None else "department_id = $2::text",
        adjusted="true" if department_id is None else "department_id = $2::text"), list(closed), *(
        () if department_id is None else (department_id,)))
    return sorted(r["period"] for r in rows if r["period"] not in closed)

