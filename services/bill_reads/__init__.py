"""Bills as billing issues and computes them, read-only: closed periods, final bills as stored, drafts as they stand.

A shared floor like services/reference: billing closes and serves bills with it, and the query service's FOCUS
export and billed budget basis reconcile with the very same bills."""
