// The govmeter console: a client of the three APIs through this origin's proxy (/api/<api>/...). Every figure on
// a page is an API answer for the signed-in user's own token; the APIs decide what that user may see (Art. 18).
"use strict";

const TZ = "Asia/Shanghai";
const FAMILIES = ["compute", "storage", "network", "bandwidth", "security"];
const state = { generation: 0, session: null, lang: localStorage.getItem("govmeter.lang") || "zh", charts: [], timers: [],
                meters: null, departments: null };

// ---------- helpers ----------
function t(key) { return (I18N[state.lang] || I18N.zh)[key] ?? I18N.zh[key] ?? key; }
function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
// Amounts stay decimal strings end to end; sums and projections are done in whole fen with BigInt, never floats.
function fen(amount) {
  const text = String(amount ?? "0").trim();
  const negative = text.startsWith("-");
  const [whole, part = ""] = text.replace(/^[-+]/, "").split(".");
  const cents = BigInt(whole || "0") * 100n + BigInt((part + "00").slice(0, 2));
  const rest = (part + "00").slice(2);
  const rounded = cents + (rest && Number(rest[0]) >= 5 ? 1n : 0n);  // half-up on a third decimal (never sent today)
  return negative ? -rounded : rounded;
}
function fromFen(value) {
  const negative = value < 0n;
  const abs = negative ? -value : value;
  return `${negative ? "-" : ""}${abs / 100n}.${String(abs % 100n).padStart(2, "0")}`;
}
function yuan(amount) {  // "1234567.8" -> "1,234,567.80"
  const text = fromFen(fen(amount));
  const [whole, part] = text.split(".");
  return `${whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",")}.${part}`;
}
function yuanLabel(amount) { return `${yuan(amount)} ${t("yuan")}`; }
function percentChange(now, before) {
  const b = fen(before);
  if (b === 0n) return null;
  return Number(fen(now) - b) / Number(b) * 100;
}
function changeHtml(now, before, label) {
  const change = percentChange(now, before);
  if (change === null) return `<span class="muted">${esc(label)} —</span>`;
  const cls = change >= 0 ? "up" : "down";
  return `${esc(label)} <span class="${cls}">${change >= 0 ? "▲" : "▼"} ${Math.abs(change).toFixed(1)}%</span>`;
}
function localParts(date = new Date()) {
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-CA", { timeZone: TZ, year: "numeric", month: "2-digit",
    day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).formatToParts(date).map(p => [p.type, p.value]));
  return { year: +parts.year, month: +parts.month, day: +parts.day, hour: +parts.hour, minute: +parts.minute };
}
function monthKey(year, month) { return `${year}-${String(month).padStart(2, "0")}`; }
function addMonths(key, n) {
  const [y, m] = key.split("-").map(Number);
  const index = y * 12 + (m - 1) + n;
  return monthKey(Math.floor(index / 12), index % 12 + 1);
}
function currentMonth() { const p = localParts(); return monthKey(p.year, p.month); }
function daysIn(key) { const [y, m] = key.split("-").map(Number); return new Date(Date.UTC(y, m, 0)).getUTCDate(); }
function localTime(iso) {
  if (!iso) return "—";
  return new Intl.DateTimeFormat(state.lang === "zh" ? "zh-CN" : "en-GB", { timeZone: TZ, year: "numeric",
    month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).format(new Date(iso));
}
function duration(ms) {
  const minutes = Math.round(ms / 60000);
  if (Math.abs(minutes) < 120) return `${minutes} ${t("minutes")}`;
  if (Math.abs(minutes) < 72 * 60) return `${(minutes / 60).toFixed(1)} ${t("hours")}`;
  return `${(minutes / 1440).toFixed(1)} ${t("days")}`;
}

class ApiError extends Error {
  constructor(status, detail) { super(`${status} ${detail}`); this.status = status; this.detail = detail; }
}
async function api(service, path, params = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null));
  const response = await fetch(`/api/${service}${path}${query.size ? "?" + query : ""}`,
                               { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (response.status === 401) { showSignIn(); throw new ApiError(401, "signed out"); }
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = JSON.stringify((await response.json()).detail); } catch (e) { /* not JSON */ }
    throw new ApiError(response.status, detail);
  }
  return response.json();
}

// A POST through the console's write path (services/console/writes.py: applications, disputes, rate card decisions).
async function apiPost(service, path, body) {
  const response = await fetch(`/api/${service}${path}`, { method: "POST", credentials: "same-origin",
    headers: { Accept: "application/json", "Content-Type": "application/json", "X-Govmeter-Console": "1" }, body: JSON.stringify(body) });
  if (response.status === 401) { showSignIn(); throw new ApiError(401, "signed out"); }
  let answer = {};
  try { answer = await response.json(); } catch (e) { /* not JSON */ }
  if (!response.ok) {
    const detail = typeof answer.detail === "string" ? answer.detail : JSON.stringify(answer.detail ?? response.statusText);
    throw new ApiError(response.status, detail);
  }
  return answer;
}
async function maybe(promise) {  // a section whose API refuses this role shows so, the rest of the page still renders
  try { return await promise; } catch (e) { if (e.status === 401) throw e; return { error: e }; }
}
function failure(result) {
  if (!result || !result.error) return "";
  return `<p class="${result.error.status === 403 ? "muted" : "error"}">${esc(result.error.status === 403 ? t("noAccess") : t("failed") + ": " + result.error.message)}</p>`;
}

async function meters() {
  if (!state.meters) state.meters = (await api("billing", "/v1/meters")).meters;
  return state.meters;
}
function meterName(key) {
  const meter = (state.meters || []).find(m => m.key === key);
  return meter ? (state.lang === "zh" ? meter.name_zh : meter.name_en) : key;
}
async function departmentNames() {
  if (!state.departments) {
    const list = await api("billing", "/v1/departments");
    state.departments = Object.fromEntries(list.map(d => [d.id, d.name]));
    state.parents = Object.fromEntries(list.map(d => [d.id, d.parent_id || null]));
  }
  return state.departments;
}
function departmentName(id) {
  if (id === null || id === undefined) return t("unattributed");
  return (state.departments && state.departments[id]) || id;
}

function chart(id, option) {
  const element = document.getElementById(id);
  if (!element || !window.echarts) return;
  const instance = echarts.init(element, null, { renderer: "canvas" });
  instance.setOption({ animation: false, textStyle: { fontFamily: "inherit" }, ...option });
  state.charts.push(instance);
  return instance;
}
const money2 = v => yuan(fromFen(BigInt(Math.round(v * 100))));
function stacked(months, series) {  // series: [{name, values: {month: float}}]
  return {
    tooltip: { trigger: "axis", valueFormatter: money2 },
    legend: { type: "scroll", top: 0 }, grid: { left: 70, right: 20, top: 40, bottom: 30 },
    xAxis: { type: "category", data: months }, yAxis: { type: "value", name: t("yuan") },
    series: series.map(s => ({ name: s.name, type: "bar", stack: "all", emphasis: { focus: "series" },
                               data: months.map(m => Number(fromFen(s.values[m] || 0n))) })),
  };
}
function table(headers, rows, attrs = () => "") {
  const head = headers.map(h => `<th class="${h.num ? "num" : ""}">${esc(h.label)}</th>`).join("");
  const body = rows.length ? rows.map((row, i) => `<tr ${attrs(i)}>${row.map((cell, j) =>
    `<td class="${headers[j].num ? "num" : ""}">${cell}</td>`).join("")}</tr>`).join("")
    : `<tr><td colspan="${headers.length}" class="muted">${esc(t("none"))}</td></tr>`;
  return `<table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}
function usageByMonth(rows, key) {  // {group: {month: fen}}
  const out = {};
  for (const row of rows) {
    const month = row.period_start.slice(0, 7);
    const group = key ? row[key] : "all";
    out[group] = out[group] || {};
    out[group][month] = (out[group][month] || 0n) + fen(row.amount);
  }
  return out;
}
function monthsBack(count, last = currentMonth()) {
  return Array.from({ length: count }, (_, i) => addMonths(last, i - count + 1));
}
function range(months) { return { from: `${months[0]}-01`, to: `${addMonths(months[months.length - 1], 1)}-01` }; }

// ---------- session ----------
async function loadSession() {
  const response = await fetch("/session", { credentials: "same-origin" });
  state.session = response.ok ? await response.json() : null;
  return state.session;
}
function showSignIn() {
  state.session = null;
  renderHeader();
  const main = document.getElementById("main");
  main.innerHTML = document.getElementById("signin").innerHTML;
  translateStatic();
  document.getElementById("signin-form").addEventListener("submit", async event => {
    event.preventDefault();
    const token = document.getElementById("token").value.trim();
    const response = await fetch("/session", { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token }) });
    if (!response.ok) {
      document.getElementById("signin-error").textContent = t("badToken");
      return;
    }
    state.session = await response.json();
    state.departments = null;
    location.hash = homeRoute();
    route();
  });
}
async function signOut() {
  await fetch("/session", { method: "DELETE", credentials: "same-origin" });
  state.departments = null;
  location.hash = "";
  showSignIn();
}

// ---------- navigation ----------
function pagesFor(session) {
  const role = session.role;
  const pages = [];
  if (role === "finance" && session.department) {  // a district finance office: its subtree, no city-wide page
    return [["department", `#/department/${encodeURIComponent(session.department)}`], ["departments", "#/departments"],
            ["bills", "#/bills"]];
  }
  if (role === "finance" || role === "admin") pages.push(["overview", "#/overview"], ["departments", "#/departments"]);
  if (role === "department") pages.push(["department", `#/department/${encodeURIComponent(session.department)}`]);
  if (role !== "provider" && role !== "egov") pages.push(["bills", "#/bills"], ["disputes", "#/disputes"]);  // disputes.js
  if (role === "finance" || role === "admin") pages.push(["basis", "#/basis"], ["rateCards", "#/rate-cards"]);
  if (role === "provider" || role === "admin") pages.push(["ops", "#/ops"]);
  if (role !== "finance") pages.push(["applications", "#/applications"]);  // applications.js
  return pages;
}
function homeRoute() { return pagesFor(state.session)[0][1]; }
function renderHeader() {
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  document.getElementById("signout").hidden = !state.session;
  if (!state.session) { nav.innerHTML = ""; who.textContent = ""; return; }
  const current = location.hash.split("?")[0];
  nav.innerHTML = pagesFor(state.session).map(([key, href]) =>
    `<a href="${href}" data-page="${key}" class="${current.startsWith(href.split("/").slice(0, 2).join("/")) ? "active" : ""}">${esc(t(key))}</a>`).join("");
  const role = t("roles")[state.session.role] || state.session.role;
  who.textContent = state.session.department ? `${role} · ${departmentName(state.session.department)}` : role;
}
function translateStatic() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  document.title = `${t("title")} · govmeter`;
  document.querySelectorAll("[data-i18n]").forEach(el => { el.textContent = t(el.dataset.i18n); });
  document.getElementById("lang").textContent = state.lang === "zh" ? "English" : "中文";
}

async function route() {
  state.charts.forEach(c => c.dispose());
  state.charts = [];
  state.timers.forEach(clearInterval);
  state.timers = [];
  translateStatic();
  const main = document.getElementById("main");
  delete main.dataset.ready;  // set again once this route has rendered
  const generation = ++state.generation;  // a slower earlier route must not draw over this one
  if (!state.session && !(await loadSession())) { showSignIn(); return; }
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query);
  const allowed = pagesFor(state.session).map(([key]) => key);
  try {
    await departmentNames().catch(() => null);
    await meters();
    renderHeader();
    if (generation !== state.generation) return;
  main.innerHTML = `<p class="muted">${esc(t("loading"))}</p>`;
    const page = parts[0] || "";
    if (page === "overview" && allowed.includes("overview")) await overview(main, params.get("month"));
    else if (page === "departments" && allowed.includes("departments")) await departmentList(main);
    else if (page === "department" && parts[1]) await departmentPage(main, parts[1]);
    else if (page === "bills" && allowed.includes("bills")) await billsPage(main, params.get("month"));
    else if (page === "bill" && parts[1]) await billPage(main, parts[1]);
    else if (page === "disputes" && allowed.includes("disputes")) await disputesPage(main, params.get("status"));
    else if (page === "basis" && allowed.includes("basis")) await basisPage(main, params.get("year"), params.get("by"));
    else if (page === "rate-cards" && allowed.includes("rateCards")) await rateCardsPage(main);
    else if (page === "ops" && allowed.includes("ops")) await opsPage(main);
    else if (page === "applications" && allowed.includes("applications")) await applicationsPage(main, params.has("overdue"));
    else { location.hash = homeRoute(); return; }
    if (generation === state.generation) main.dataset.ready = location.hash;  // for tests and the benchmark
  } catch (e) {
    if (generation !== state.generation) return;
    if (e.status === 403) main.innerHTML = `<p class="muted">${esc(t("noAccess"))}</p>`;
    else if (e.status !== 401) main.innerHTML = `<p class="error">${esc(t("failed"))}: ${esc(e.message)}</p>`;
    main.dataset.ready = location.hash;
  }
}

// ---------- 总览 Overview ----------
async function overview(main, month) {  // month: YYYY-MM (a past month's overview), default this month
  const generation = state.generation;
  month = /^\d{4}-\d{2}$/.test(month || "") ? month : currentMonth();
  const thirteen = monthsBack(13, month);  // same month last year .. this month
  const twelve = thirteen.slice(1);
  const [totals, byMeter, byDepartment, alerts, warnings] = await Promise.all([
    api("query", "/v1/usage", { ...range(thirteen), granularity: "month" }),
    api("query", "/v1/usage", { ...range(twelve), granularity: "month", group_by: "meter" }),
    api("query", "/v1/usage", { ...range([month]), granularity: "total", group_by: "department" }),
    maybe(api("billing", "/v1/alerts")),
    maybe(api("query", "/v1/warnings", { from: `${addMonths(month, -1)}-01` })),
  ]);
  const monthly = Object.fromEntries(totals.rows.map(r => [r.period_start.slice(0, 7), r.amount]));
  const now = monthly[month] || "0.00", last = monthly[addMonths(month, -1)] || "0.00";
  const lastYear = monthly[addMonths(month, -12)] || "0.00";
  // Run rate: this month so far × hours in the month ÷ hours elapsed (local time), rounded half-up to the fen; a
  // past month is complete (its projection is what it came to).
  const p = localParts();
  const hours = BigInt(daysIn(month) * 24);
  const elapsed = month === currentMonth() ? BigInt(Math.max(1, (p.day - 1) * 24 + p.hour)) : hours;
  const projected = (fen(now) * hours * 2n + elapsed) / (elapsed * 2n);
  const kpi = (id, label, amount, sub = "") => `<div class="card kpi"><div class="label">${esc(label)}</div>
    <div class="value" data-testid="${id}" data-amount="${esc(amount)}">${esc(yuanLabel(amount))}</div><div class="sub">${sub}</div></div>`;
  const top = byDepartment.rows.slice().sort((a, b) => (fen(b.amount) > fen(a.amount) ? 1 : fen(b.amount) < fen(a.amount) ? -1 : 0)).slice(0, 10);
  const openAlerts = alerts.error ? [] : alerts.filter(a => a.year === Number(month.slice(0, 4))).slice(-10).reverse();
  const recentWarnings = warnings.error ? [] : warnings.warnings.slice(-10).reverse();
  if (generation !== state.generation) return;
  main.innerHTML = `<h1>${esc(t("overview"))} · ${esc(month)}</h1>
    <div class="grid">
      ${kpi("kpi-this-month", t("thisMonth"), now, `${changeHtml(now, last, t("vsLastMonth"))} · ${changeHtml(now, lastYear, t("vsLastYear"))}`)}
      ${kpi("kpi-projection", t("projection"), fromFen(projected), `${changeHtml(fromFen(projected), last, t("vsLastMonth"))}`)}
      ${kpi("kpi-last-month", `${t("lastMonth")} ${addMonths(month, -1)}`, last)}
      ${kpi("kpi-last-year", `${t("sameMonthLastYear")} ${addMonths(month, -12)}`, lastYear)}
    </div>
    <div class="row">
      <div class="card"><h2>${esc(t("trend"))}</h2><div id="trend" class="chart"></div></div>
      <div class="card"><h2>${esc(t("topDepartments"))}</h2>
        ${table([{ label: t("department") }, { label: t("amount"), num: true }],
                top.map(r => [esc(departmentName(r.department_id)), esc(yuan(r.amount))]),
                i => top[i].department_id ? `class="link" data-testid="top-department" data-department="${esc(top[i].department_id)}" data-amount="${esc(top[i].amount)}"` : "")}
      </div>
    </div>
    <div class="row even">
      <div class="card"><h2>${esc(t("alerts"))}</h2>${failure(alerts)}
        ${table([{ label: t("department") }, { label: t("kind") }, { label: t("spend"), num: true }, { label: t("budgetAmount"), num: true }],
                openAlerts.map(a => [esc(departmentName(a.department_id)), esc(t("alertKinds")[a.kind] || a.kind), esc(yuan(a.projected || a.spend)), esc(yuan(a.budget))]))}</div>
      <div class="card"><h2>${esc(t("warnings"))}</h2>${failure(warnings)}
        ${table([{ label: t("at") }, { label: t("department") }, { label: t("meter") }, { label: t("amount"), num: true }],
                recentWarnings.map(w => [esc(w.day), esc(departmentName(w.department_id)), esc(meterName(w.meter)), esc(yuan(w.spend))]))}</div>
    </div>`;
  main.querySelectorAll("tr[data-department]").forEach(tr =>
    tr.addEventListener("click", () => { location.hash = `#/department/${encodeURIComponent(tr.dataset.department)}`; }));
  const family = {};
  for (const row of byMeter.rows) {
    const name = (state.meters.find(m => m.key === row.meter) || {}).family || "other";
    const m = row.period_start.slice(0, 7);
    family[name] = family[name] || {};
    family[name][m] = (family[name][m] || 0n) + fen(row.amount);
  }
  chart("trend", stacked(twelve, FAMILIES.filter(f => family[f]).map(f => ({ name: t("families")[f], values: family[f] }))));
}

// ---------- 部门 Departments ----------
async function departmentList(main) {
  const generation = state.generation;
  const month = currentMonth();
  const usage = await api("query", "/v1/usage", { ...range([month]), granularity: "total", group_by: "department" });
  const amounts = Object.fromEntries(usage.rows.map(r => [r.department_id, r.amount]));
  const ids = Object.keys(state.departments || {}).sort();
  if (generation !== state.generation) return;
  main.innerHTML = `<h1>${esc(t("departments"))}</h1><div class="card">
    ${table([{ label: "ID" }, { label: t("name") }, { label: `${t("amount")} ${month}`, num: true }],
            ids.map(id => [esc(id), esc(state.departments[id]), esc(yuan(amounts[id] || "0"))]),
            i => `class="link" data-department="${esc(ids[i])}"`)}</div>`;
  main.querySelectorAll("tr[data-department]").forEach(tr =>
    tr.addEventListener("click", () => { location.hash = `#/department/${encodeURIComponent(tr.dataset.department)}`; }));
}

async function departmentPage(main, id) {
  const generation = state.generation;
  const month = currentMonth();
  const months = monthsBack(12);
  const year = localParts().year;
  const yearMonths = months.filter(m => m.startsWith(String(year)));
  const [byMeter, bySystem, budgets, bills, waste, utilisation] = await Promise.all([
    api("query", "/v1/usage", { ...range(months), granularity: "month", group_by: "meter", department: id }),
    api("query", "/v1/usage", { ...range(months), granularity: "month", group_by: "system", department: id }),
    maybe(api("billing", "/v1/budgets", { department: id, year })),
    maybe(api("billing", "/v1/bills", { department: id })),
    maybe(api("query", "/v1/reports/waste", { department: id, lang: state.lang })),
    maybe(api("query", "/v1/reports/utilization", { period: "month", start: `${addMonths(month, -1)}-01`, department: id, lang: state.lang })),
  ]);
  const meterSeries = usageByMonth(byMeter.rows, "meter");
  const systemSeries = usageByMonth(bySystem.rows, "system");
  const budget = budgets.error ? null : budgets.find(b => b.department_id === id && b.year === year);
  const billRows = bills.error ? [] : bills.filter(b => b.department_id === id).sort((a, b) => b.period.localeCompare(a.period));
  const findings = waste.error ? [] : waste.findings.filter(f => f.department_id === id)
    .sort((a, b) => (fen(b.monthly_saving) > fen(a.monthly_saving) ? 1 : fen(b.monthly_saving) < fen(a.monthly_saving) ? -1 : 0));
  const savings = findings.reduce((sum, f) => sum + fen(f.monthly_saving), 0n);
  const utilRows = utilisation.error ? [] : utilisation.rows.filter(r => r.department_id === id);
  const subtreeHtml = await subtreeRollup(id, months, month);
  let budgetHtml = `<p class="muted">${esc(t("noBudget"))}</p>`;
  let projectedYear = null;
  if (budget) {
    // The year's spend is the API's (bills: final and drafts); the projection is its run-rate rule: the earlier
    // months as billed + this month's draft × (hours in the month ÷ hours elapsed) × (1 + months left in the year).
    const draft = billRows.find(b => b.period === month);
    const p = localParts();
    const elapsed = BigInt(Math.max(1, (p.day - 1) * 24 + p.hour));
    const hours = BigInt(daysIn(month) * 24);
    const current = draft ? fen(draft.total) : 0n;
    const earlier = fen(budget.spend) - current;
    const runRate = (current * hours * 2n + elapsed) / (elapsed * 2n);
    projectedYear = earlier + runRate * BigInt(1 + 12 - p.month);
    const share = Number(fen(budget.spend) * 1000n / (fen(budget.amount) || 1n)) / 10;
    budgetHtml = `<div class="grid">
      <div class="kpi"><div class="label">${esc(t("budgetAmount"))} ${year}</div><div class="value">${esc(yuanLabel(budget.amount))}</div></div>
      <div class="kpi"><div class="label">${esc(t("spend"))}</div><div class="value" data-testid="budget-spend">${esc(yuanLabel(budget.spend))}</div>
        <div class="sub">${share.toFixed(1)}% ${esc(t("percentOfBudget"))}</div></div>
      <div class="kpi"><div class="label">${esc(t("projected"))}</div><div class="value">${esc(yuanLabel(fromFen(projectedYear)))}</div></div>
    </div><div id="budget-chart" class="chart"></div>`;
  }
  const allocation = a => Object.entries(a || {}).map(([k, v]) => `${esc(k)} ${esc(v)}`).join(", ") || "—";
  if (generation !== state.generation) return;
  main.innerHTML = `<h1>${esc(t("department"))} · ${esc(departmentName(id))} <span class="muted">${esc(id)}</span></h1>
    <div class="row even">
      <div class="card"><h2>${esc(t("byMeter"))}</h2><div id="by-meter" class="chart"></div></div>
      <div class="card"><h2>${esc(t("bySystem"))}</h2><div id="by-system" class="chart"></div></div>
    </div>
    ${subtreeHtml}
    <div class="card"><h2>${esc(t("budget"))}</h2>${failure(budgets)}${budgetHtml}</div>
    <div class="row even">
      <div class="card"><h2>${esc(t("deptBills"))}</h2>${failure(bills)}
        ${table([{ label: t("bill") }, { label: t("period") }, { label: t("status") }, { label: t("total"), num: true }],
                billRows.map(b => [`<a href="#/bill/${encodeURIComponent(b.bill_id)}">${esc(b.bill_id)}</a>`, esc(b.period),
                                   `<span class="badge ${esc(b.status)}">${esc(t(b.status))}</span>`, esc(yuan(b.total))]))}</div>
      <div class="card"><h2>${esc(t("waste"))}${waste.error ? "" : ` · <span data-testid="waste-saving">${esc(yuanLabel(fromFen(savings)))}</span>`}</h2>${failure(waste)}
        ${table([{ label: t("resource") }, { label: t("kind") }, { label: t("system") }, { label: t("saving"), num: true }],
                findings.slice(0, 15).map(f => [esc(f.resource_id), esc(f.kind_name), esc(f.system), esc(yuan(f.monthly_saving))]))}
        ${findings.length > 15 ? `<p class="muted">… ${findings.length - 15}</p>` : ""}</div>
    </div>
    <div class="card"><h2>${esc(t("utilisation"))}</h2>${failure(utilisation)}
      ${table([{ label: t("system") }, { label: t("allocated") }, { label: t("cpuP95"), num: true }, { label: t("memP95"), num: true }, { label: t("cost"), num: true }],
              utilRows.map(r => [esc(r.system), allocation(r.allocated), esc(r.cpu_p95 ?? "—"), esc(r.memory_p95 ?? "—"), esc(yuan(r.cost))]))}</div>`;
  chart("by-meter", stacked(months, Object.keys(meterSeries).map(m => ({ name: meterName(m), values: meterSeries[m] }))));
  chart("by-system", stacked(months, Object.keys(systemSeries).map(s => ({ name: s === "null" ? "—" : s, values: systemSeries[s] }))));
  if (budget) {
    let running = 0n;
    const all = usageByMonth(byMeter.rows, null).all || {};
    const cumulative = yearMonths.map(m => { running += all[m] || 0n; return Number(fromFen(running)); });
    const amount = Number(budget.amount);
    const full = Array.from({ length: 12 }, (_, i) => monthKey(year, i + 1));
    chart("budget-chart", {
      tooltip: { trigger: "axis", valueFormatter: money2 }, legend: { top: 0 },
      grid: { left: 80, right: 90, top: 40, bottom: 30 }, xAxis: { type: "category", data: full },
      yAxis: { type: "value", name: t("yuan"),
               max: v => Math.ceil(Math.max(v.max, amount * 1.1, Number(fromFen(projectedYear))) / 1000) * 1000 },
      series: [
        { name: t("cumulative"), type: "line", data: cumulative, markLine: { symbol: "none", label: { formatter: "{b}" },
          data: [0.5, 0.8, 1].map(r => ({ name: `${r * 100}%`, yAxis: amount * r, lineStyle: { color: r === 1 ? "#c0392b" : r === 0.8 ? "#e67e22" : "#f1c40f" } })) } },
        { name: t("projected"), type: "line", lineStyle: { type: "dashed" },
          data: full.map((m, i) => (m === yearMonths[yearMonths.length - 1] ? cumulative[cumulative.length - 1] : i === 11 ? Number(fromFen(projectedYear)) : null)),
          connectNulls: true },
      ],
    });
  }
}

// A parent's roll-up (issue 17): its subtree's spend per department, this month and over 12 months, as the usage
// API sums it with rollup=true (the same scope the token has: a bureau's token never gets here with children).
async function subtreeRollup(id, months, month) {
  const children = Object.entries(state.parents || {}).filter(([, parent]) => parent === id);
  if (!children.length) return "";
  const [year, now] = await Promise.all([
    api("query", "/v1/usage", { ...range(months), granularity: "total", group_by: "department", department: id, rollup: true }),
    api("query", "/v1/usage", { ...range([month]), granularity: "total", group_by: "department", department: id, rollup: true }),
  ]);
  const nowBy = Object.fromEntries(now.rows.map(r => [r.department_id, r.amount]));
  const yearBy = Object.fromEntries(year.rows.map(r => [r.department_id, r.amount]));
  const ids = Object.keys({ ...yearBy, ...nowBy }).sort();
  const sum = rows => fromFen(rows.reduce((s, r) => s + fen(r.amount), 0n));
  return `<div class="card" data-testid="subtree"><h2>${esc(t("subtree"))}</h2>
    ${table([{ label: t("department") }, { label: `${t("amount")} ${month}`, num: true }, { label: t("amount12"), num: true }],
            ids.map(d => [esc(departmentName(d)), esc(yuan(nowBy[d] || "0")), esc(yuan(yearBy[d] || "0"))])
              .concat([[`<b>${esc(t("total"))}</b>`, `<b data-testid="subtree-month">${esc(yuan(sum(now.rows)))}</b>`,
                        `<b data-testid="subtree-year">${esc(yuan(sum(year.rows)))}</b>`]]),
            i => (i < ids.length ? `data-testid="subtree-row" data-department="${esc(ids[i])}"` : ""))}</div>`;
}

// ---------- 账单 Bills ----------
async function billsPage(main, month) {
  const generation = state.generation;
  const session = state.session;
  const own = session.role === "department";
  month = month || (own ? null : currentMonth());
  const bills = await api("billing", "/v1/bills", own ? { department: session.department, month: month || undefined } : { month });
  const choices = monthsBack(13).reverse();
  if (generation !== state.generation) return;
  main.innerHTML = `<h1>${esc(t("bills"))}</h1>
    <div class="toolbar"><label>${esc(t("period"))} <select id="month">
      ${own ? `<option value="">—</option>` : ""}${choices.map(m => `<option ${m === month ? "selected" : ""}>${m}</option>`).join("")}
    </select></label></div>
    <div class="card">${table([{ label: t("bill") }, { label: t("department") }, { label: t("period") }, { label: t("status") }, { label: t("total"), num: true }],
      bills.map(b => [`<a href="#/bill/${encodeURIComponent(b.bill_id)}">${esc(b.bill_id)}</a>`, esc(b.department_name || departmentName(b.department_id)),
                      esc(b.period), `<span class="badge ${esc(b.status)}">${esc(t(b.status))}</span>`, esc(yuan(b.total))]),
      i => `data-testid="bill-row" data-bill="${esc(bills[i].bill_id)}"`)}</div>`;
  document.getElementById("month").addEventListener("change", e => { location.hash = `#/bills?month=${e.target.value}`; });
}

// A trial (试运行) line: the usage in resources' trial windows, billed at its rate times the normal price.
function trialBadge(line) {
  if (line.trial_rate == null) return "";
  const title = t("trialRate").replace("{rate}", line.trial_rate);
  return ` <span class="badge draft" data-testid="trial-line" title="${esc(title)}">${esc(t("trialLine"))} ×${esc(line.trial_rate)}</span>`;
}

async function billPage(main, id) {
  const generation = state.generation;
  const bill = await api("billing", `/v1/bills/${encodeURIComponent(id)}`);
  const base = `/api/billing/v1/bills/${encodeURIComponent(id)}`;
  const systems = [];
  for (const line of bill.lines) for (const s of line.systems || []) systems.push([esc(s.system ?? "—"), esc(meterName(line.meter)), esc(s.quantity), esc(yuan(s.amount))]);
  if (generation !== state.generation) return;
  main.innerHTML = `<h1>${esc(t("bill"))} ${esc(bill.bill_id)} <span class="badge ${esc(bill.status)}">${esc(t(bill.status))}</span></h1>
    <div class="card"><div class="grid">
      <div class="kpi"><div class="label">${esc(t("department"))}</div><div class="value">${esc(bill.department_name || bill.department_id)}</div></div>
      <div class="kpi"><div class="label">${esc(t("period"))}</div><div class="value">${esc(bill.period)}</div></div>
      <div class="kpi"><div class="label">${esc(t("total"))}</div><div class="value" data-testid="bill-total">${esc(yuanLabel(bill.total))}</div>
        <div class="sub">${esc(t("usageTotal"))} ${esc(yuan(bill.usage_total))} · ${esc(t("adjustmentsTotal"))} ${esc(yuan(bill.adjustments_total))}</div></div>
    </div>
    ${bill.content_hash ? `<p>${esc(t("contentHash"))}: <span class="hash" data-testid="content-hash">${esc(bill.content_hash)}</span></p>` : ""}
    <p class="downloads">${esc(t("downloads"))}:
      <a href="${base}.csv" download data-testid="download-csv">${esc(t("csv"))}</a>
      <a href="${base}/document.xlsx" download data-testid="download-xlsx">${esc(t("xlsx"))}</a>
      <a href="${base}/document.pdf" target="_blank" rel="noopener" data-testid="download-pdf">${esc(t("pdf"))}</a></p></div>
    <div class="card"><h2>${esc(t("lines"))}</h2>
      ${table([{ label: t("meter") }, { label: t("quantity"), num: true }, { label: t("unit") }, { label: t("unitPrice"), num: true }, { label: t("amount"), num: true }],
              bill.lines.map(l => [esc(meterName(l.meter)) + trialBadge(l), esc(l.quantity), esc(l.unit),
                                   esc((l.prices || []).map(p => p.unit_price ?? "tiers").join(" / ")), esc(yuan(l.amount))]))}</div>
    <div class="card"><h2>${esc(t("systems"))}</h2>
      ${table([{ label: t("system") }, { label: t("meter") }, { label: t("quantity"), num: true }, { label: t("amount"), num: true }], systems)}</div>
    <div class="card"><h2>${esc(t("adjustments"))}</h2>
      ${table([{ label: t("originalPeriod") }, { label: t("meter") }, { label: t("reason") }, { label: t("amount"), num: true }],
              bill.adjustments.map(a => [esc(a.original_period ?? a.period ?? a.month ?? "—"), esc(a.meter ? meterName(a.meter) : "—"),
                                         esc(a.reason ?? ""), esc(yuan(a.amount))]))}</div>`;
  await billDisputes(main, bill);  // disputes.js: the bill's disputes, "dispute this line" on a department's own
}

// ---------- 预算依据 Budget basis ----------
async function basisPage(main, year, by) {
  const generation = state.generation;
  year = year || String(localParts().year + 1);
  by = by === "system" ? "system" : "family";
  const basis = await api("query", "/v1/reports/budget-basis", { year, lang: state.lang, by });
  const family = {};
  for (const d of basis.departments) for (const m of d.months) for (const [f, amount] of Object.entries(m.by_family)) {
    family[f] = family[f] || {};
    family[f][m.month] = (family[f][m.month] || 0n) + fen(amount);
  }
  const years = [0, 1, 2].map(i => String(localParts().year + 1 - i));
  if (generation !== state.generation) return;
  main.innerHTML = `<h1>${esc(t("basis"))} ${esc(basis.year)}</h1>
    <div class="toolbar"><label>${esc(t("year"))} <select id="year">${years.map(y => `<option ${y === year ? "selected" : ""}>${y}</option>`).join("")}</select></label>
      <label>${esc(t("byView"))} <select id="by" data-testid="basis-by">${[["family", "byFamily"], ["system", "bySystemView"]].map(([v, k]) => `<option value="${v}" ${v === by ? "selected" : ""}>${esc(t(k))}</option>`).join("")}</select></label>
      <a href="/api/query/v1/reports/budget-basis?year=${encodeURIComponent(year)}&format=xlsx&lang=${state.lang}&by=${by}" download data-testid="basis-xlsx">${esc(t("basisDownload"))}</a>
      <span>${esc(t("totalProposed"))}: <b data-testid="basis-total">${esc(yuanLabel(basis.total_proposed_basis))}</b></span></div>
    <div class="card"><h2>${esc(t("trend"))}</h2><div id="basis-trend" class="chart"></div></div>
    <div class="card">${table([{ label: t("department") }, { label: t("actual12"), num: true }, { label: t("monthlyMean"), num: true },
        { label: t("trendPerMonth"), num: true }, { label: t("annualWaste"), num: true }, { label: t("proposedBasis"), num: true }],
      basis.departments.map(d => [`<a href="#/department/${encodeURIComponent(d.department_id)}">${esc(d.department_name)}</a>`, esc(yuan(d.actual_12_months)),
        esc(yuan(d.monthly_mean)), esc(yuan(d.trend_per_month)), esc(yuan(d.annual_waste)), esc(yuan(d.proposed_basis))]))}
      <p class="muted">${esc(t("formula"))}: ${esc(basis.formula)}</p></div>${by === "system" ? basisBySystem(basis) : ""}`;
  document.getElementById("year").addEventListener("change", e => { location.hash = `#/basis?year=${e.target.value}&by=${by}`; });
  document.getElementById("by").addEventListener("change", e => { location.hash = `#/basis?year=${year}&by=${e.target.value}`; });
  chart("basis-trend", stacked(basis.months, FAMILIES.filter(f => family[f]).map(f => ({ name: t("families")[f], values: family[f] }))));
}

function basisBySystem(basis) {  // each department's information systems over the 12 months, then its adjustments
  const rows = [];
  for (const d of basis.departments) {
    for (const [system, amount] of Object.entries(d.by_system || {})) rows.push([esc(d.department_name), esc(system), esc(yuan(amount)), "data-testid=\"basis-system\""]);
    rows.push([esc(d.department_name), esc(t("lateAdjustments")), esc(yuan(d.late_adjustments)), ""]);
    rows.push([esc(d.department_name), esc(t("manualAdjustments")), esc(yuan(d.manual_adjustments)), ""]);
  }
  return `<div class="card"><h2>${esc(t("systemSpend"))}</h2>${table([{ label: t("department") }, { label: t("system") },
    { label: t("amount"), num: true }], rows.map(r => r.slice(0, 3)), i => rows[i][3])}</div>`;
}

// ---------- 运行 Operations ----------
async function opsPage(main) {
  const generation = state.generation;
  const [sources, deadLetters, closes, lag] = await Promise.all([
    maybe(api("billing", "/v1/sources")),
    maybe(api("metering", "/v1/dead-letters", { limit: 100 })),
    maybe(api("billing", "/v1/closes", { limit: 24 })),
    maybe(api("metering", "/v1/worker-lag")),  // ops.js renders the lag and the closes
  ]);
  const now = Date.now();
  const letters = deadLetters.error ? [] : deadLetters.dead_letters.slice().reverse();
  if (generation !== state.generation) return;
  main.innerHTML = `<h1>${esc(t("ops"))}</h1>
    <div class="grid">
      <div class="card kpi"><div class="label">${esc(t("eventsPerSecond"))}</div><div class="value" data-testid="events-per-second">—</div>
        <div class="sub">${esc(t("events"))}: <span id="events-total">${sources.error ? "—" : sources.reduce((s, x) => s + x.events, 0)}</span></div></div>
      <div class="card kpi"><div class="label">${esc(t("workerLag"))}</div><div class="value" data-testid="worker-lag">${esc(lagKpi(lag).value)}</div>
        <div class="sub" id="worker-lag-sub">${lagKpi(lag).sub}</div></div>
      <div class="card kpi"><div class="label">${esc(t("deadLetters"))}</div><div class="value">${deadLetters.error ? "—" : letters.length}</div></div>
    </div>
    <div class="card"><h2>${esc(t("eventsPerSecond"))}</h2><div id="rate" class="chart" style="height:200px"></div></div>
    <div class="card"><h2>${esc(t("lagByPartition"))}</h2><div id="worker-lag-partitions">${lagTable(lag)}</div></div>
    <div class="card"><h2>${esc(t("sources"))}</h2>${failure(sources)}
      ${table([{ label: t("source") }, { label: t("completeUpTo") }, { label: t("freshness"), num: true }, { label: t("lastSeen") },
               { label: t("events"), num: true }, { label: t("active") }, { label: t("holds") }],
        (sources.error ? [] : sources).map(s => [esc(s.source), esc(localTime(s.complete_up_to)),
          esc(s.complete_up_to ? duration(now - Date.parse(s.complete_up_to)) : "—"), esc(localTime(s.last_seen_at)), esc(s.events),
          s.active ? "✓" : "—", (s.holds || []).map(h => `<span class="badge bad">${esc(h)}</span>`).join(" ")]))}</div>
    <div class="card"><h2>${esc(t("deadLetters"))}</h2>${failure(deadLetters)}
      ${table([{ label: "#" }, { label: t("source") }, { label: t("reason") }, { label: t("errors") }, { label: t("at") }],
        letters.map(d => [esc(d.id), esc(d.source ?? "—"), esc(d.reason), esc((d.errors || []).join("; ")), esc(localTime(d.created_at || d.received_at))]))}</div>
    <div class="card"><h2>${esc(t("closes"))}</h2>${closesTable(closes)}</div>`;
  if (sources.error) return;
  // Events per second: the growth of the sources' stored event counts between two polls (every 5 s).
  const samples = [];
  let previous = { at: now, events: sources.reduce((s, x) => s + x.events, 0) };
  const rate = chart("rate", { grid: { left: 50, right: 20, top: 20, bottom: 30 }, xAxis: { type: "time" },
                               yAxis: { type: "value" }, series: [{ type: "line", showSymbol: false, data: samples }] });
  const poll = async () => {
    try {
      const fresh = await api("billing", "/v1/sources");
      const at = Date.now(), events = fresh.reduce((s, x) => s + x.events, 0);
      const perSecond = (events - previous.events) / ((at - previous.at) / 1000);
      previous = { at, events };
      samples.push([at, Number(perSecond.toFixed(1))]);
      if (samples.length > 120) samples.shift();
      const el = document.querySelector('[data-testid="events-per-second"]');
      if (el) el.textContent = perSecond.toFixed(1);
      const total = document.getElementById("events-total");
      if (total) total.textContent = events;
      if (rate) rate.setOption({ series: [{ data: samples }] });
      showLag(await maybe(api("metering", "/v1/worker-lag")));
    } catch (e) { /* the next poll tries again */ }
  };
  state.timers.push(setTimeout(poll, 1000), setInterval(poll, 5000));
}

// ---------- start, once the labels are loaded (i18n.js) ----------
I18N_READY.then(() => {
  document.getElementById("lang").addEventListener("click", () => {
    state.lang = state.lang === "zh" ? "en" : "zh";
    localStorage.setItem("govmeter.lang", state.lang);
    route();
  });
  document.getElementById("signout").addEventListener("click", signOut);
  window.addEventListener("hashchange", route);
  window.addEventListener("resize", () => state.charts.forEach(c => c.resize()));
  route();
});
