// The 运行 (Operations) page's worker lag and closes: rendered from GET /api/metering/v1/worker-lag and
// GET /api/billing/v1/closes (the helpers esc, t, table, localTime, yuan, addMonths, duration come from console.js).
"use strict";


function lagKpi(lag) {  // the KPI card's value and line under it
  if (lag.error) return { value: "—", sub: lag.error.status === 503 ? t("brokerDown") : failure(lag) };
  return { value: String(lag.total), sub: `${esc(t("lagUnit"))} · ${esc(t("measuredAt"))} ${esc(localTime(lag.measured_at))}` };
}

function lagTable(lag) {
  if (lag.error) return failure(lag);
  return table([{ label: t("topic") }, { label: t("partition"), num: true }, { label: t("endOffset"), num: true },
                { label: t("committedOffset"), num: true }, { label: t("lag"), num: true }],
    lag.partitions.map(p => [esc(p.topic), esc(p.partition), esc(p.end_offset),
      p.committed_offset === null ? `<span class="muted">${esc(t("noCommit"))}</span>` : esc(p.committed_offset),
      `<span data-testid="lag-${esc(p.topic)}-${esc(p.partition)}">${esc(p.lag)}</span>`]));
}

function closeSeconds(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  return seconds < 120 ? `${seconds.toFixed(seconds < 10 ? 2 : 1)} ${t("seconds")}` : duration(seconds * 1000);
}

function closesTable(closes) {
  if (closes.error) return failure(closes);
  return table([{ label: t("period") }, { label: t("closeStarted") }, { label: t("closeFinished") },
                { label: t("closeDuration"), num: true }, { label: t("afterMonthEnd"), num: true },
                { label: t("closedBy") }, { label: t("closeInstance") }, { label: t("billsCount"), num: true },
                { label: t("total"), num: true }],
    closes.map(c => [esc(c.period) + (c.watermark_override ? ` <span class="badge bad">${esc(t("overridden"))}</span>` : ""),
      esc(localTime(c.started_at)), esc(localTime(c.finished_at || c.closed_at)),
      `<span data-testid="close-duration-${esc(c.period)}">${esc(closeSeconds(c.duration_seconds))}</span>`,
      esc(duration(Date.parse(c.closed_at) - Date.parse(`${addMonths(c.period, 1)}-01T00:00:00+08:00`))),
      esc(c.closed_by), esc(c.instance ?? "—"), esc(c.bills), esc(yuan(c.total))]));
}

function showLag(lag) {  // refresh the KPI card and the partition table in place (the page's 5 s poll)
  const kpi = lagKpi(lag);
  const value = document.querySelector('[data-testid="worker-lag"]');
  if (value) value.textContent = kpi.value;
  const sub = document.getElementById("worker-lag-sub");
  if (sub) sub.innerHTML = kpi.sub;
  const partitions = document.getElementById("worker-lag-partitions");
  if (partitions) partitions.innerHTML = lagTable(lag);
}
