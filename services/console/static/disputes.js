// Disputes of final bill lines (Art. 13): a department disputes a line of its own final bill from the bill page;
// finance or admin rejects it with a reply or upholds it with an amount on the 争议 page. The console's only writes,
// sent through the proxy's POST routes for /v1/disputes; the billing API decides who may do what (and Art. 18).
// Uses console.js's helpers (api, t, esc, table, yuan, state); loaded before it, called only once it has run.
"use strict";


function disputeBadge(status) {
  const cls = { open: "draft", rejected: "bad", upheld: "final" }[status] || "";
  return `<span class="badge ${cls}" data-testid="dispute-status">${esc(t("disputeStatus")[status] || status)}</span>`;
}
function step(by, at) { return by ? `<div class="muted">${esc(by)} · ${esc(localTime(at))}</div>` : ""; }
function answerHtml(d) {
  if (d.status === "open") return `<span class="muted">—</span>`;
  const credit = d.credit ? `<div>${esc(t("credit"))} <b data-testid="dispute-credit">${esc(yuan(d.credit))}</b> · ${esc(t("creditPeriod"))} ${esc(d.credit_period)}</div>` : "";
  return `<div data-testid="dispute-reply">${esc(d.reply ?? "")}</div>${credit}${step(d.answered_by, d.answered_at)}`;
}

// On a bill page: the bill's disputes, and for the department's own final bill a "dispute this line" per line.
async function billDisputes(main, bill) {
  const session = state.session;
  const own = session.role === "department" && bill.department_id === session.department;
  if (bill.status !== "final" || !(own || session.role === "finance" || session.role === "admin")) return;
  const disputes = await api("billing", "/v1/disputes", { bill_id: bill.bill_id });
  const card = document.createElement("div");
  card.className = "card";
  card.dataset.testid = "bill-disputes";
  const lines = own ? table([{ label: t("meter") }, { label: t("lineAmount"), num: true }, { label: t("actions") }],
    bill.lines.filter(l => l.trial_rate == null).map(l => [esc(meterName(l.meter)), esc(yuan(l.amount)),
      `<button type="button" data-testid="dispute-line" data-meter="${esc(l.meter)}">${esc(t("disputeLine"))}</button>`])) : "";
  card.innerHTML = `<h2>${esc(t("billDisputes"))}</h2>${own ? `<p class="muted">${esc(t("disputeHelp"))}</p>${lines}` : ""}
    <form id="dispute-form" data-testid="dispute-form" hidden>
      <p><b id="dispute-meter"></b></p>
      <label>${esc(t("disputeReason"))}<br><textarea id="dispute-reason" rows="3" cols="60" maxlength="1000" required></textarea></label>
      <p><button type="submit" data-testid="dispute-submit">${esc(t("submit"))}</button>
         <button type="button" id="dispute-cancel">${esc(t("cancel"))}</button></p>
      <p class="error" data-testid="dispute-error" role="alert"></p>
    </form>
    ${disputeTable(disputes, false)}`;
  main.appendChild(card);
  const form = card.querySelector("#dispute-form");
  card.querySelectorAll('[data-testid="dispute-line"]').forEach(button => button.addEventListener("click", () => {
    form.hidden = false;
    form.dataset.meter = button.dataset.meter;
    form.querySelector("#dispute-meter").textContent = `${t("disputeLine")}: ${meterName(button.dataset.meter)}`;
    form.querySelector("#dispute-reason").focus();
  }));
  card.querySelector("#dispute-cancel").addEventListener("click", () => { form.hidden = true; });
  form.addEventListener("submit", async event => {
    event.preventDefault();
    try {
      await apiPost("billing", "/v1/disputes", { bill_id: bill.bill_id, meter: form.dataset.meter,
                                                 reason: form.querySelector("#dispute-reason").value.trim() });
      location.hash = "#/disputes";
    } catch (e) {
      form.querySelector('[data-testid="dispute-error"]').textContent = e.message;
    }
  });
}

function disputeTable(disputes, answering) {
  const headers = [{ label: "#" }, { label: t("department") }, { label: t("bill") }, { label: t("meter") },
    { label: t("lineAmount"), num: true }, { label: t("reason") }, { label: t("status") }, { label: t("answer") }];
  if (answering) headers.push({ label: t("actions") });
  return table(headers, disputes.map(d => {
    const row = [esc(d.id), esc(departmentName(d.department_id)),
      `<a href="#/bill/${encodeURIComponent(d.bill_id)}">${esc(d.bill_id)}</a>`, esc(meterName(d.meter)),
      esc(yuan(d.line_amount)), `<div>${esc(d.reason)}</div>${step(d.opened_by, d.opened_at)}`, disputeBadge(d.status),
      answerHtml(d)];
    if (answering) row.push(d.status !== "open" ? "" : `<div class="answer-form" data-dispute="${esc(d.id)}">
      <input data-testid="reply" placeholder="${esc(t("reply"))}" maxlength="1000">
      <input data-testid="amount" placeholder="${esc(t("creditAmount"))}" inputmode="decimal" size="10">
      <button type="button" data-testid="reject">${esc(t("reject"))}</button>
      <button type="button" data-testid="uphold">${esc(t("uphold"))}</button></div>`);
    return row;
  }), i => `data-testid="dispute-row" data-dispute="${esc(disputes[i].id)}" data-status="${esc(disputes[i].status)}"`);
}

// 争议 Disputes: a department's own (with the answers); finance and admin: every department's, answered here.
async function disputesPage(main, status) {
  const generation = state.generation;
  status = ["open", "rejected", "upheld"].includes(status) ? status : null;
  const disputes = await api("billing", "/v1/disputes", { status });
  const answering = state.session.role === "finance" || state.session.role === "admin";
  if (generation !== state.generation) return;
  main.innerHTML = `<h1>${esc(t("disputes"))}</h1>
    <div class="toolbar"><label>${esc(t("status"))} <select id="dispute-status">
      <option value="">${esc(t("allStatuses"))}</option>${["open", "rejected", "upheld"].map(s =>
        `<option value="${s}" ${s === status ? "selected" : ""}>${esc(t("disputeStatus")[s])}</option>`).join("")}
    </select></label></div>
    <p class="error" data-testid="dispute-error" role="alert"></p>
    <div class="card">${disputeTable(disputes.slice().reverse(), answering)}</div>`;
  main.querySelector("#dispute-status").addEventListener("change", e => {
    location.hash = e.target.value ? `#/disputes?status=${e.target.value}` : "#/disputes";
  });
  main.querySelectorAll(".answer-form").forEach(form => {
    const send = async (verb, body) => {
      try {
        await apiPost("billing", `/v1/disputes/${form.dataset.dispute}/${verb}`, body);
        route();
      } catch (e) {
        main.querySelector('[data-testid="dispute-error"]').textContent = e.message;
      }
    };
    const reply = () => form.querySelector('[data-testid="reply"]').value.trim();
    form.querySelector('[data-testid="reject"]').addEventListener("click", () => send("reject", { reply: reply() }));
    form.querySelector('[data-testid="uphold"]').addEventListener("click", () => send("uphold",
      { amount: form.querySelector('[data-testid="amount"]').value.trim(), ...(reply() ? { reply: reply() } : {}) }));
  });
}
