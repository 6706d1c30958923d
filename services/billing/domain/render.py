"""A bill as people and machines read it: its JSON document, its CSV, and the content hash of a final bill (pure).

The JSON is canonical (keys sorted, no whitespace, UTF-8), so the same bill always gives the same bytes.
``content_hash`` is the sha256 of the canonical JSON of the document without ``content_hash`` itself; the
document carries ``csv_sha256``, so the hash covers the CSV too. Anyone can check a final bill: drop
``content_hash``, serialise canonically, hash."""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from schemas.catalogue import meters
from schemas.money import CURRENCY, quantity_text, yuan_text
from services.billing.domain.bills import Bill, BillLine, LateAdjustment, ManualAdjustment, PriceApplied
from services.common.periods import LOCAL_TZ, month_bounds
from services.common.spreadsheet import InertCsvWriter

STATUS_ZH = {"draft": "草稿", "final": "正式"}


def local_text(instant: datetime | None) -> str | None:
    return None if instant is None else instant.astimezone(LOCAL_TZ).isoformat()


def canonical_json(document: Any) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _price(price: PriceApplied) -> dict:
    out: dict[str, Any] = {
        "rate_card": price.rate_card,
        "effective_from": local_text(price.effective_from),
        "quantity": quantity_text(price.quantity),
    }
    if price.tiers is None:
        out["unit_price"] = format(price.unit_price, "f")
    else:
        out["tiers"] = [
            {"up_to": None if t.up_to is None else quantity_text(t.up_to), "unit_price": format(t.unit_price, "f"),
             "quantity": quantity_text(t.quantity)}
            for t in price.tiers
        ]
    return out


def _line(line: BillLine) -> dict:
    meter = meters().get(line.meter)
    # Only a trial line carries trial_rate: every other line's JSON is as bills have always had it.
    trial = {} if line.trial_rate is None else {"trial_rate": format(line.trial_rate.normalize(), "f")}
    return {
        "meter": line.meter,
        "name": meter.name_zh if meter else line.meter,
        "unit": meter.unit if meter else None,
        "quantity": quantity_text(line.quantity),
        "unpriced_quantity": quantity_text(line.unpriced_quantity),
        "amount": yuan_text(line.amount),
        "prices": [_price(p) for p in line.prices],
        "systems": [{"system": s.system, "quantity": quantity_text(s.quantity), "amount": yuan_text(s.amount)}
                    for s in line.systems],
        **trial,
    }


def _late(adjustment: LateAdjustment) -> dict:
    meter = meters().get(adjustment.meter)
    return {
        "kind": "late",
        "original_period": adjustment.original_period,
        "meter": adjustment.meter,
        "name": meter.name_zh if meter else adjustment.meter,
        "quantity": quantity_text(adjustment.quantity),
        "amount": yuan_text(adjustment.amount),
        "reason": adjustment.reason,
    }


def _manual(adjustment: ManualAdjustment) -> dict:
    return {
        "kind": "manual",
        "id": adjustment.id,
        "amount": yuan_text(adjustment.amount),
        "reason": adjustment.reason,
        "reference": adjustment.reference,
        "created_by": adjustment.created_by,
        "created_at": local_text(adjustment.created_at),
    }


def bill_document(bill: Bill) -> dict:
    """The bill's JSON document (money and quantities as decimal strings), without hashes."""
    start, end = month_bounds(bill.period)
    return {
        "bill_id": bill.bill_id,
        "department_id": bill.department_id,
        "department_name": bill.department_name,
        "period": bill.period,
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
        "status": bill.status,
        "currency": CURRENCY,
        "lines": [_line(line) for line in bill.lines],
        "adjustments": [_late(a) for a in bill.late_adjustments] + [_manual(a) for a in bill.manual_adjustments],
        "usage_total": yuan_text(bill.usage_total),
        "adjustments_total": yuan_text(bill.adjustments_total),
        "total": yuan_text(bill.total),
        "as_of": local_text(bill.as_of),
        "closed_at": local_text(bill.closed_at),
        "csv_sha256": None,
        "content_hash": None,
    }


def _unit_price_text(line: BillLine) -> str:
    parts = []
    for price in line.prices:
        if price.tiers is None:
            parts.append(format(price.unit_price, "f"))
        else:
            lower = "0"
            tiers = []
            for tier in price.tiers:
                upper = "∞" if tier.up_to is None else quantity_text(tier.up_to)
                tiers.append(f"{lower}–{upper}: {format(tier.unit_price, 'f')}")
                lower = upper
            parts.append("; ".join(tiers))
    return " / ".join(parts)


TRIAL_KIND = "试运行用量"


def trial_note(rate: Decimal) -> str:
    factor = format(rate.normalize(), "f")
    return f"试运行, 按正常价格的 {factor} 倍计费 (trial, billed at {factor} × the normal price)"


CSV_HEADER = ["账单编号", "部门编号", "部门名称", "账期", "状态", "类型", "计量项", "计量项名称", "信息系统",
              "数量", "单位", "单价(元)", "金额(元)", "原账期", "说明"]


def bill_csv(bill: Bill, inert: bool = True) -> bytes:
    """The bill as CSV for spreadsheets: UTF-8 with a BOM, Chinese headers and names, one row per line, per
    system of a line, per adjustment, and a total row. No text cell is a formula (``services.common.spreadsheet``);
    ``inert=False`` renders as bills closed before that rule were (replay checks those byte for byte)."""
    out = io.StringIO()
    writer = InertCsvWriter(out) if inert else csv.writer(out)
    writer.writerow(CSV_HEADER)
    head = [bill.bill_id, bill.department_id, bill.department_name, bill.period, STATUS_ZH[bill.status]]
    for line in bill.lines:
        meter = meters().get(line.meter)
        name, unit = (meter.name_zh, meter.unit) if meter else (line.meter, "")
        note = f"未定价数量 {quantity_text(line.unpriced_quantity)}" if line.unpriced_quantity else ""
        if line.trial_rate is not None:
            note = "; ".join(filter(None, [trial_note(line.trial_rate), note]))
        kind = "用量" if line.trial_rate is None else TRIAL_KIND
        writer.writerow([*head, kind, line.meter, name, "", quantity_text(line.quantity), unit,
                         _unit_price_text(line), yuan_text(line.amount), "", note])
        for system in line.systems:
            writer.writerow([*head, "信息系统分项", line.meter, name, system.system, quantity_text(system.quantity),
                             unit, "", yuan_text(system.amount), "", ""])
    for late in bill.late_adjustments:
        meter = meters().get(late.meter)
        writer.writerow([*head, "结账后调整", late.meter, meter.name_zh if meter else late.meter, "",
                         quantity_text(late.quantity), meter.unit if meter else "", "", yuan_text(late.amount),
                         late.original_period, late.reason])
    for manual in bill.manual_adjustments:
        note = manual.reason + (f" (参考: {manual.reference})" if manual.reference else "")
        writer.writerow([*head, "手工调整" if manual.amount >= 0 else "减免", "", "", "", "", "", "",
                         yuan_text(manual.amount), "", f"{note}; {manual.created_by}"])
    writer.writerow([*head, "合计", "", "", "", "", "", "", yuan_text(bill.total), "", ""])
    return "\ufeff".encode() + out.getvalue().encode("utf-8")


@dataclass(frozen=True, slots=True)
class IssuedBill:
    document: bytes  # canonical JSON, with csv_sha256 and content_hash
    csv: bytes
    content_hash: str


def issue(bill: Bill, inert_csv: bool = True) -> IssuedBill:
    """The bytes of a final bill and its content hash."""
    csv_bytes = bill_csv(bill, inert_csv)
    document = bill_document(bill)
    document["csv_sha256"] = sha256_hex(csv_bytes)
    content_hash = content_hash_of(document)
    document["content_hash"] = content_hash
    return IssuedBill(canonical_json(document), csv_bytes, content_hash)


def content_hash_of(document: dict) -> str:
    """sha256 of the canonical JSON of ``document`` without its ``content_hash``."""
    return sha256_hex(canonical_json({k: v for k, v in document.items() if k != "content_hash"}))


def draft_bytes(bill: Bill) -> bytes:
    return canonical_json(bill_document(bill))
