"""Rate cards as rating reads them: every service prices with these."""

from __future__ import annotations

from schemas.catalogue import meters
from services.metering.domain.rating import RateCardPrices, card_prices


async def load_rate_cards(conn) -> list[RateCardPrices]:
    """Every rate card as rating reads it, in the order they take effect (asyncpg connection)."""
    rows = await conn.fetch("SELECT id, version, effective_from, prices FROM rate_cards ORDER BY effective_from, id")
    return [card_prices(r["id"], r["version"], r["effective_from"], r["prices"]) for r in rows]


def with_unpriced(card: dict) -> dict:
    """A stored or proposed card with the meters it leaves unpriced (the answer's ``unpriced_meters``)."""
    return {**card, "unpriced_meters": sorted(set(meters()) - set(card["prices"]))}
