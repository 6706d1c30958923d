"""Resource applications on the read side: how many working-day clocks of a month ran out before their step was
done, for the platform report (an input to Art. 20's assessment of the provider and of the e-government centre)."""

from __future__ import annotations

from datetime import UTC, datetime


async def late_applications(conn, start: datetime, end: datetime, now: datetime | None = None) -> dict[str, int]:
    """Approval and fulfilment clocks that ran out in [start, end) before their step was done, or that are still
    running past it at ``now`` (a rejected or withdrawn application stops its clock)."""
    row = await conn.fetchrow(
        """
        WITH clocks AS (
            SELECT approval_due_at, fulfilment_due_at,
                   coalesce(decided_at, CASE WHEN state IN ('submitted', 'accepted') THEN $3::timestamptz END)
                       AS approval_stop,
                   coalesce(fulfilled_at, CASE WHEN state = 'approved' THEN $3::timestamptz END) AS fulfilment_stop
            FROM applications
            WHERE approval_due_at >= $1 AND approval_due_at < $2 OR fulfilment_due_at >= $1 AND fulfilment_due_at < $2
        )
        SELECT count(*) FILTER (WHERE approval_due_at >= $1 AND approval_due_at < $2
                                  AND approval_due_at < approval_stop) AS approvals,
               count(*) FILTER (WHERE fulfilment_due_at >= $1 AND fulfilment_due_at < $2
                                  AND fulfilment_due_at < fulfilment_stop) AS fulfilments
        FROM clocks
        """,
        start, end, now or datetime.now(UTC),
    )
    return {"late_approvals": row["approvals"], "late_fulfilments": row["fulfilments"]}
