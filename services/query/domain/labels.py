"""Report labels in Chinese and English (``lang=zh|en``, default zh): column headers, service families, finding
kinds, meter names (from the catalogue). ``formats.check_lang`` refuses any other ``lang``."""

from __future__ import annotations

from schemas.catalogue import meters

LANGS = ("zh", "en")

FAMILIES = {
    "compute": ("计算", "Compute"),
    "storage": ("存储", "Storage"),
    "network": ("网络", "Network"),
    "bandwidth": ("带宽", "Bandwidth"),
    "security": ("安全", "Security"),
}

FINDINGS = {
    "idle": ("闲置资源", "Idle resource"),
    "oversized": ("配置过高的云主机", "Oversized VM"),
    "unattached_volume": ("未挂载的云硬盘", "Unattached volume"),
    "unattached_ip": ("未绑定的公网IP", "Unattached public IP"),
}

COLUMNS: dict[str, tuple[str, str]] = {
    "department_id": ("部门编码", "Department ID"),
    "department_name": ("部门名称", "Department"),
    "system": ("信息系统", "Information system"),
    "resources": ("资源数", "Resources"),
    "allocated_vcpu": ("平均分配vCPU", "Allocated vCPU (avg)"),
    "allocated_memory_gib": ("平均分配内存(GiB)", "Allocated memory GiB (avg)"),
    "allocated_storage_gib": ("平均分配存储(GiB)", "Allocated storage GiB (avg)"),
    "meter": ("计量项", "Meter"),
    "meter_name": ("计量项名称", "Meter name"),
    "unit": ("单位", "Unit"),
    "quantity": ("用量", "Quantity"),
    "previous_quantity": ("上期用量", "Previous quantity"),
    "quantity_change_percent": ("用量变化(%)", "Quantity change (%)"),
    "amount": ("金额(元)", "Amount (CNY)"),
    "cost": ("费用合计(元)", "Total cost (CNY)"),
    "previous_cost": ("上期费用(元)", "Previous cost (CNY)"),
    "cost_change_percent": ("费用变化(%)", "Cost change (%)"),
    "cpu_average": ("CPU平均利用率(%)", "CPU average (%)"),
    "cpu_p95": ("CPU P95利用率(%)", "CPU p95 (%)"),
    "memory_average": ("内存平均利用率(%)", "Memory average (%)"),
    "memory_p95": ("内存P95利用率(%)", "Memory p95 (%)"),
    "previous_cpu_average": ("上期CPU平均利用率(%)", "Previous CPU average (%)"),
    "previous_memory_average": ("上期内存平均利用率(%)", "Previous memory average (%)"),
    "month": ("月份", "Month"),
    "family": ("服务类别", "Service family"),
    "family_name": ("服务类别名称", "Service family name"),
    "actual_12_months": ("近12个月支出(元)", "Spend, trailing 12 months (CNY)"),
    "monthly_mean": ("月均支出(元)", "Monthly mean (CNY)"),
    "trend_per_month": ("趋势(元/月)", "Trend (CNY/month)"),
    "projected": ("趋势外推(元)", "Trend projection (CNY)"),
    "bounded": ("限幅后(元)", "Bounded projection (CNY)"),
    "annual_waste": ("已识别浪费(元/年)", "Identified waste (CNY/year)"),
    "proposed_basis": ("建议预算基数(元)", "Proposed basis (CNY)"),
    "kind": ("类型", "Kind"),
    "kind_name": ("类型名称", "Kind name"),
    "resource_id": ("资源编号", "Resource"),
    "monthly_saving": ("每月可节省(元)", "Monthly saving (CNY)"),
}


def pick(pair: tuple[str, str], lang: str) -> str:
    return pair[0] if lang == "zh" else pair[1]


def column(key: str, lang: str) -> str:
    return pick(COLUMNS[key], lang) if key in COLUMNS else key


def family_name(family: str, lang: str) -> str:
    return pick(FAMILIES.get(family, (family, family)), lang)


def meter_name(meter: str, lang: str) -> str:
    found = meters().get(meter)
    if found is None:
        return meter
    return found.name_zh if lang == "zh" else found.name_en


def finding_name(kind: str, lang: str) -> str:
    return pick(FINDINGS.get(kind, (kind, kind)), lang)
