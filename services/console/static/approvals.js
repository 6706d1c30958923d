// 价目审批 Rate card approval (maker/checker): the finance bureau and admins see proposed rate cards and approve
// or reject them. The billing API decides who may (never the proposer); a refusal is shown as it answers.
"use strict";

async function decide(id, decision, body) {  // the outcome, shown as the billing API answers (refusals included)
  try {
    return { ok: true, answer: await apiPost("billing", `/v1/rate-cards/proposals/${encodeURIComponent(id)}/${decision}`, body || {}) };
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
    return { ok: false, status: e.status, answer: { detail: e.detail } };
  }
}

function priceText(prices) {
  return Object.entries(prices).map(([meter, price]) => typeof price === "object" && price !== null
    ? `${meterName(meter)}: ${price.tiers.map(tier => `${tier.up_to ?? "∞"} @ ${tier.unit_price}`).join(", ")}`
    : `${meterName(meter)}: ${price}`).join("; ");
}

async function rateCardsPage(main) {
  const generation = state.generation;
  const proposals = await api("billing", "/v1/rate-cards/proposals");
  if (generation !== state.generation) return;
  const pending = proposals.filter(p => p.status === "pending");
  const decided = proposals.filter(p => p.status !== "pending").reverse().slice(0, 20);
  const me = state.session.subject;
  main.innerHTML = `<h1>${esc(t("rateCards"))}</h1>
    <p class="muted">${esc(t("rateCardRule"))}</p>
    <p id="decision-result" data-testid="decision-result" role="status"></p>
    <div class="card"><h2>${esc(t("pendingCards"))}</h2>${table([{ label: t("version") }, { label: t("effectiveFrom") },
        { label: t("prices") }, { label: t("proposedBy") }, { label: t("proposedAt") }, { label: t("decision") }],
      pending.map(p => [esc(p.version), esc(localTime(p.effective_from)), esc(priceText(p.prices)), esc(p.proposed_by),
        esc(localTime(p.proposed_at)),
        `<button type="button" data-approve="${esc(p.id)}" ${p.proposed_by === me ? `title="${esc(t("ownProposal"))}"` : ""}>${esc(t("approve"))}</button>
         <input data-reason="${esc(p.id)}" placeholder="${esc(t("reason"))}" maxlength="500">
         <button type="button" data-reject="${esc(p.id)}">${esc(t("reject"))}</button>`]),
      i => `data-testid="proposal-row" data-proposal="${esc(pending[i].id)}"`)}</div>
    <div class="card"><h2>${esc(t("decidedCards"))}</h2>${table([{ label: t("version") }, { label: t("status") },
        { label: t("proposedBy") }, { label: t("decidedBy") }, { label: t("decidedAt") }, { label: t("reason") }],
      decided.map(p => [esc(p.version), `<span class="badge ${p.status === "approved" ? "final" : "bad"}">${esc(t(p.status))}</span>`,
        esc(p.proposed_by), esc(p.decided_by), esc(localTime(p.decided_at)), esc(p.reason ?? "")]),
      i => `data-testid="decided-row" data-proposal="${esc(decided[i].id)}"`)}</div>`;
  const result = document.getElementById("decision-result");
  const show = (outcome) => {
    result.className = outcome.ok ? "" : "error";
    result.textContent = outcome.ok ? t("decided") : `${outcome.status} ${outcome.answer.detail ?? ""}`;
    if (outcome.ok) setTimeout(route, 0);
  };
  main.querySelectorAll("[data-approve]").forEach(button => button.addEventListener("click", async () => {
    show(await decide(button.dataset.approve, "approve"));
  }));
  main.querySelectorAll("[data-reject]").forEach(button => button.addEventListener("click", async () => {
    const reason = main.querySelector(`[data-reason="${button.dataset.reject}"]`).value.trim();
    show(await decide(button.dataset.reject, "reject", { reason }));
  }));
}
