"""Putting a rate card into effect from a client: propose it as one admin and approve it as a second person (the
maker/checker workflow of services.billing.rate_card_approvals). The demo, the benchmark and the tests all use
this one helper."""

from __future__ import annotations

import httpx

from services.common.auth import issue_token

PROPOSER, CHECKER = "rate-card-proposer", "rate-card-checker"


def proposer_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token('admin', subject=PROPOSER)}"}


def checker_headers() -> dict[str, str]:
    """The finance bureau approves (a second admin could as well; never the proposer)."""
    return {"Authorization": f"Bearer {issue_token('finance', subject=CHECKER)}"}


async def propose_and_approve(client: httpx.AsyncClient, card: dict, base_url: str = "") -> httpx.Response:
    """Propose ``card`` (a ``POST /v1/rate-cards`` body) and approve it: the approval's answer (201, the stored
    card), or the proposal's answer when it was refused (422 for a bad card, 409 for a taken version; a pending
    proposal of this helper with the same version is approved instead, so a demo stopped midway can start again)."""
    proposed = await client.post(f"{base_url}/v1/rate-cards", json=card, headers=proposer_headers())
    if proposed.status_code == 202:
        return await _approve(client, base_url, proposed.json()["id"])
    if proposed.status_code == 409:  # a run stopped between the two steps left it pending: approve it now
        pending = await client.get(f"{base_url}/v1/rate-cards/proposals", params={"status": "pending"},
                                   headers=checker_headers())
        for proposal in pending.json() if pending.status_code == 200 else []:
            if proposal["version"] == card["version"] and proposal["proposed_by"] == PROPOSER:
                return await _approve(client, base_url, proposal["id"])
    return proposed


async def _approve(client: httpx.AsyncClient, base_url: str, proposal_id: int) -> httpx.Response:
    return await client.post(f"{base_url}/v1/rate-cards/proposals/{proposal_id}/approve", headers=checker_headers())
