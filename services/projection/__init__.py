"""The rated usage projection: ownership intervals (resource_intervals), hourly and coarse rollups, and their
re-rating. A shared floor like services/reference: metering's pipeline writes it, a new rate card
(services.reference.store) re-rates it in the transaction that stores the card, and replay rebuilds it."""
