// The console's labels: Chinese by default, English by the switch in the header (kept in localStorage). One table:
// each message once, [zh, en] side by side, so that neither language can miss a key.
(() => {
  const MESSAGES = {
    title: ["政务云计量计费控制台", "Government Cloud Metering Console"], signIn: ["登录", "Sign in"],
    signInTitle: ["登录", "Sign in"], signOut: ["退出", "Sign out"],
    signInHelp: [
      "粘贴 govmeter token 打印的令牌（govmeter dev 启动时也会打印各角色的令牌）。令牌只保存在本站的 HttpOnly Cookie 中。",
      "Paste a token printed by `govmeter token` (govmeter dev prints one per role). It is kept only in an HttpOnly cookie of this site.",
    ],
    badToken: ["令牌无效", "Invalid token"], overview: ["总览", "Overview"], department: ["部门", "Department"],
    departments: ["部门", "Departments"], bills: ["账单", "Bills"], basis: ["预算依据", "Budget basis"],
    ops: ["运行", "Operations"], yuan: ["元", "yuan"],
    roles: {
      finance: ["财政局", "Finance bureau"], admin: ["管理员", "Administrator"], provider: ["云服务商", "Provider"],
      department: ["部门", "Department"],
    },
    thisMonth: ["本月至今城市支出", "City spend this month so far"], projection: ["本月预计", "Projected this month"],
    lastMonth: ["上月", "Last month"], sameMonthLastYear: ["去年同月", "Same month last year"],
    vsLastMonth: ["较上月", "vs last month"], vsLastYear: ["较去年同月", "vs same month last year"],
    trend: ["近 12 个月支出趋势（按服务类别）", "12-month spend by service family"],
    topDepartments: ["本月支出前列部门", "Top departments this month"], alerts: ["预算告警", "Budget alerts"],
    warnings: ["支出异常预警", "Spend warnings"], none: ["无", "None"], unattributed: ["未归属", "Unattributed"],
    amount: ["金额（元）", "Amount (yuan)"], name: ["名称", "Name"], month: ["月份", "Month"], status: ["状态", "Status"],
    families: {
      compute: ["计算", "Compute"], storage: ["存储", "Storage"], network: ["网络", "Network"],
      bandwidth: ["带宽", "Bandwidth"], security: ["安全", "Security"],
    },
    byMeter: ["按计量项的月度支出", "Monthly spend by meter"], bySystem: ["按信息系统的月度支出", "Monthly spend by information system"],
    budget: ["预算与支出", "Budget and spend"], budgetAmount: ["年度预算", "Budget"], spend: ["年度支出", "Spend this year"],
    projected: ["全年预计", "Projected year"], noBudget: ["尚未设定本年度预算", "No budget set for this year"],
    deptBills: ["本部门账单", "Bills"], waste: ["浪费识别（每月可节省）", "Waste findings (monthly saving)"],
    utilisation: ["资源利用率（上月，P95 对比分配）", "Utilisation (last month, p95 vs allocation)"], system: ["信息系统", "System"],
    resource: ["资源", "Resource"], kind: ["类型", "Kind"], saving: ["每月可节省（元）", "Monthly saving (yuan)"],
    allocated: ["分配", "Allocated"], cpuP95: ["CPU P95 %", "CPU p95 %"], memP95: ["内存 P95 %", "Memory p95 %"],
    cost: ["费用（元）", "Cost (yuan)"], draft: ["草稿", "Draft"], final: ["已出账", "Final"], bill: ["账单", "Bill"],
    total: ["合计（元）", "Total (yuan)"], meter: ["计量项", "Meter"], quantity: ["用量", "Quantity"], unit: ["单位", "Unit"],
    unitPrice: ["单价（元）", "Unit price (yuan)"], lines: ["账单明细", "Lines"],
    systems: ["按信息系统拆分", "By information system"], adjustments: ["调整", "Adjustments"],
    originalPeriod: ["原账期", "Original period"], reason: ["原因", "Reason"],
    contentHash: ["内容哈希（SHA-256）", "Content hash (SHA-256)"], downloads: ["下载", "Downloads"],
    csv: ["CSV（存档原件）", "CSV (stored original)"], xlsx: ["Excel（XLSX）", "Excel (XLSX)"],
    pdf: ["PDF（可打印）", "PDF (printable)"], usageTotal: ["用量合计", "Usage total"],
    adjustmentsTotal: ["调整合计", "Adjustments total"], period: ["账期", "Period"], year: ["预算年度", "Budget year"],
    actual12: ["近 12 个月支出", "Trailing 12 months"], monthlyMean: ["月均", "Monthly mean"],
    trendPerMonth: ["趋势（元/月）", "Trend (yuan/month)"], proposedBasis: ["建议预算基数", "Proposed basis"],
    annualWaste: ["年度浪费", "Annual waste"], totalProposed: ["建议预算基数合计", "Total proposed basis"],
    basisDownload: ["下载 XLSX", "Download XLSX"], formula: ["计算方法", "Method"],
    eventsPerSecond: ["事件速率（条/秒）", "Events per second"], workerLag: ["处理延迟", "Worker lag"],
    notAvailable: ["暂无（接口未提供）", "n/a (not exposed by the APIs)"], sources: ["数据源新鲜度", "Freshness per source"],
    source: ["数据源", "Source"], completeUpTo: ["数据完整至", "Complete up to"], lastSeen: ["最近收到", "Last seen"],
    events: ["事件数", "Events"], freshness: ["滞后", "Behind"], active: ["活跃", "Active"], holds: ["阻止结账", "Holds closes"],
    deadLetters: ["死信", "Dead letters"], errors: ["错误", "Errors"], at: ["时间", "At"], closes: ["结账记录", "Closes"],
    closedAt: ["结账时间", "Closed at"], closedBy: ["结账人", "Closed by"], afterMonthEnd: ["月末后", "After month end"],
    billsCount: ["账单数", "Bills"], noAccess: ["当前角色无权查看", "Not available to this role"], loading: ["加载中…", "Loading…"],
    failed: ["加载失败", "Failed to load"], open: ["未结账", "Open"], closed: ["已结账", "Closed"], minutes: ["分钟", "min"],
    hours: ["小时", "h"], days: ["天", "d"], percentOfBudget: ["占预算", "of budget"],
    lines50: ["50% / 80% / 100% 预算线", "50% / 80% / 100% of budget"], cumulative: ["累计支出", "Cumulative spend"],
    pick: ["选择部门", "Pick a department"], back: ["返回", "Back"],
    alertKinds: {
      spend_50: ["支出达 50%", "Spend at 50%"], spend_80: ["支出达 80%", "Spend at 80%"],
      spend_100: ["支出达 100%", "Spend at 100%"], projected_overrun: ["预计超支", "Projected overrun"],
    },
  };

  // { zh: {...}, en: {...} }: what console.js reads (I18N[lang][key]); nested tables keep their shape.
  function language(table, index) {
    return Object.fromEntries(Object.entries(table).map(([key, value]) =>
      [key, Array.isArray(value) ? value[index] : language(value, index)]));
  }
  window.I18N = { zh: language(MESSAGES, 0), en: language(MESSAGES, 1) };
})();
