// 申请 Applications (Art. 8–10): a department applies and sees the monthly estimate first; the e-government centre
// accepts, approves or rejects; the provider fulfils. Uses console.js's helpers (loaded after this file, called
// only once the page is routed). The billing API decides who may do what; the buttons only follow its rules.
"use strict";


const APPLICATION_ITEMS = 3;  // rows of the form; the API takes up to 12 meters

function applicationForm() {
  const options = (state.meters || []).map(m => `<option value="${esc(m.key)}">${esc(meterName(m.key))} (${esc(m.unit)})</option>`).join("");
  const rows = Array.from({ length: APPLICATION_ITEMS }, (_, i) => `<div class="item">
      <select name="meter${i}"><option value=""></option>${options}</select>
      <input name="quantity${i}" inputmode="decimal" size="8"></div>`).join("");
  return `<form id="application-form" class="card"><h2>${esc(t("newApplication"))}</h2>
    <label>${esc(t("system"))} <input name="system" required maxlength="256"></label>
    <label>${esc(t("kindLabel"))} <input name="kind" required maxlength="64" value="vm"></label>
    <fieldset><legend>${esc(t("itemsLabel"))}</legend>${rows}</fieldset>
    <label>${esc(t("reason"))} <textarea name="reason" rows="2" required maxlength="2000"></textarea></label>
    <label>${esc(t("wantedBy"))} <input name="wanted_by" type="date"></label>
    <div class="toolbar"><button type="button" id="estimate-button">${esc(t("estimate"))}</button>
      <button type="submit">${esc(t("apply"))}</button></div>
    <div id="estimate"></div><p id="application-error" class="error" role="alert"></p></form>`;
}

function formBody(form) {
  const data = new FormData(form);
  const items = [];
  for (let i = 0; i < APPLICATION_ITEMS; i++) {
    if (data.get(`meter${i}`)) items.push({ meter: data.get(`meter${i}`), quantity: String(data.get(`quantity${i}`) || "").trim() });
  }
  const body = { system: data.get("system"), kind: data.get("kind"), items, reason: data.get("reason"), spec: {} };
  if (data.get("wanted_by")) body.wanted_by = data.get("wanted_by");
  return body;
}

function estimateHtml(estimate) {
  return `${table([{ label: t("meter") }, { label: t("monthlyQuantity"), num: true }, { label: t("unit") },
                   { label: t("unitPrice"), num: true }, { label: t("amount"), num: true }],
    estimate.lines.map(l => [esc(meterName(l.meter)), esc(l.monthly_quantity), esc(l.unit), esc(l.unit_price ?? "—"), esc(yuan(l.amount))]))}
    <p>${esc(t("estimateTotal"))} (${esc(estimate.month)}, ${esc(estimate.rate_card ?? "—")}):
      <b data-testid="estimate-total">${esc(yuanLabel(estimate.total))}</b></p>`;
}

function actionsFor(application, role) {
  const buttons = [];
  const s = application.state;
  if (role === "egov" && s === "submitted") buttons.push("accept");
  if (role === "egov" && s === "accepted") buttons.push("approve");
  if (role === "egov" && (s === "submitted" || s === "accepted")) buttons.push("reject");
  if ((role === "provider" || role === "admin") && s === "approved") buttons.push("fulfil");
  if (role === "department" && (s === "submitted" || s === "accepted")) buttons.push("withdraw");
  const extra = buttons.includes("reject") ? `<input class="reject-reason" placeholder="${esc(t("rejectReason"))}" size="12">` : "";
  const fulfil = buttons.includes("fulfil") ? `<input class="resource-id" placeholder="${esc(t("resourceId"))}" size="10">
    <input class="event-source" placeholder="${esc(t("eventSource"))}" size="14">` : "";
  return extra + fulfil + buttons.map(b => `<button type="button" data-action="${b}">${esc(t(b))}</button>`).join(" ");
}

function dueHtml(clock) {
  if (!clock.due_at) return "—";
  const provisional = clock.calendar === "weekdays" ? esc(t("calendarWeekdays")) : "";
  return `${esc(localTime(clock.due_at))}${provisional}${clock.late ? ` <span class="badge bad">${esc(t("overdue"))}</span>` : ""}`;
}

async function applicationsPage(main, overdueOnly) {
  const generation = state.generation;
  const role = state.session.role;
  const list = await api("billing", "/v1/applications", overdueOnly ? { overdue: "true" } : {});
  if (generation !== state.generation) return;
  const rows = list.map(a => [esc(a.id), esc(departmentName(a.department_id)), esc(a.system),
    esc(a.items.map(i => `${meterName(i.meter)} × ${i.quantity}`).join("、")), esc(yuan(a.estimate)),
    `<span class="badge">${esc(t("states")[a.state] || a.state)}</span>${a.overdue ? ` <span class="badge bad" data-testid="overdue">${esc(t("overdue"))}</span>` : ""}`,
    dueHtml(a.approval), dueHtml(a.fulfilment), actionsFor(a, role)]);
  main.innerHTML = `<h1>${esc(t("applications"))}</h1>
    ${role === "department" ? applicationForm() : ""}
    <div class="card"><div class="toolbar"><label><input type="checkbox" id="only-overdue" ${overdueOnly ? "checked" : ""}> ${esc(t("onlyOverdue"))}</label></div>
      <p id="action-error" class="error" role="alert"></p>
      ${table([{ label: "#" }, { label: t("department") }, { label: t("system") }, { label: t("itemsLabel") },
               { label: t("estimated"), num: true }, { label: t("applicationState") }, { label: t("dueAt") },
               { label: t("fulfilDue") }, { label: "" }], rows,
        i => `data-testid="application" data-id="${esc(list[i].id)}" data-state="${esc(list[i].state)}"`)}</div>`;
  document.getElementById("only-overdue").addEventListener("change", e => {
    location.hash = e.target.checked ? "#/applications?overdue=1" : "#/applications";
  });
  wireApplicationForm();
  main.querySelectorAll('tr[data-testid="application"] button[data-action]').forEach(button =>
    button.addEventListener("click", () => applicationStep(button)));
}

function wireApplicationForm() {
  const form = document.getElementById("application-form");
  if (!form) return;
  const error = document.getElementById("application-error");
  document.getElementById("estimate-button").addEventListener("click", async () => {
    error.textContent = "";
    try { document.getElementById("estimate").innerHTML = estimateHtml(await apiPost("billing", "/v1/applications/estimate", formBody(form))); }
    catch (e) { error.textContent = e.message; }
  });
  form.addEventListener("submit", async event => {
    event.preventDefault();
    error.textContent = "";
    try { await apiPost("billing", "/v1/applications", formBody(form)); route(); }
    catch (e) { error.textContent = e.message; }
  });
}

async function applicationStep(button) {
  const row = button.closest("tr");
  const action = button.dataset.action;
  let body = {};
  if (action === "reject") body = { reason: row.querySelector(".reject-reason").value.trim() || null };
  if (action === "fulfil") body = { resource_id: row.querySelector(".resource-id").value.trim(),
                                    source: row.querySelector(".event-source").value.trim() };
  try { await apiPost("billing", `/v1/applications/${row.dataset.id}/${action}`, body); route(); }
  catch (e) { document.getElementById("action-error").textContent = e.message; }
}
