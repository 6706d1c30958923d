"""``GET /v1/exports/focus?month=YYYY-MM``: a month's charges as FinOps FOCUS 1.2 (CSV).

One row per charge (one resource's use of one meter on one local day at one unit price; see ``charges``), on the
invoice of its department: SubAccountId/Name is the department, InvoiceId the bill number ``GM-YYYY-MM-<dept>``.
Usage rows cost exactly what was metered. The bill (the billing side's, final as issued or draft as it stands)
then decides the rest, so that BilledCost summed per InvoiceId is the bill's total:

* per bill line, an ``Adjustment`` row for the difference between the line and its rows: the rounding of the
  line to the fen (or, on a final bill, usage that arrived after the period closed, which a later bill corrects);
* the bill's late adjustments (a closed month's figures changed later) as ``Usage`` rows with ChargeClass
  ``Correction`` and the original month as their charge period;
* its manual adjustments as ``Adjustment`` rows, credits (negative) as ``Credit`` rows.

ChargeDescription is English (the validator holds FOCUS strings to ASCII); ``x_ChargeDescriptionLocal`` carries
it in ``lang``. govmeter has no discounts or commitments, so List = Contracted = Effective = Billed cost and
their unit prices are the rate card's. Instants are UTC; custom columns carry the ``x_`` prefix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends
from fastapi.responses import Response

from schemas.api import Role
from schemas.catalogue import meters
from services.common.auth import Principal, require_roles, scoped_department
from services.common.db import get_engine, raw_connection
from services.common.money import CURRENCY, exact, quantity_text
from services.common.http_guards import DepartmentParam
from services.common.http import MonthQuery
from services.common.periods import month_bounds
from services.metering.store import load_rate_cards
from services.query.reports.charges import ChargeRow, invoice_id, invoice_lines, local_day_start, month_charges
from services.query.reports.common import csv_response, department_names
from services.query.reports.labels import check_lang, meter_name

router = APIRouter(tags=["exports"])
Reader = Annotated[Principal, Depends(require_roles(Role.FINANCE, Role.ADMIN, Role.DEPARTMENT))]

PROVIDER = "Taizhou Government Cloud"  # the validator wants ASCII here (StringHandling)
BILLING_ACCOUNT = ("taizhou-gov-cloud", "Taizhou Municipal Government Cloud", "Municipal Government")
REGION = ("cn-taizhou", "Taizhou")
_DAY = timedelta(days=1)

COLUMNS = [
    "AvailabilityZone", "BilledCost", "BillingAccountId", "BillingAccountName", "BillingAccountType", "BillingCurrency",
    "BillingPeriodEnd", "BillingPeriodStart", "CapacityReservationId", "CapacityReservationStatus", "ChargeCategory",
    "ChargeClass", "ChargeDescription", "ChargeFrequency", "ChargePeriodEnd", "ChargePeriodStart",
    "CommitmentDiscountCategory", "CommitmentDiscountId", "CommitmentDiscountName", "CommitmentDiscountQuantity",
    "CommitmentDiscountStatus", "CommitmentDiscountType", "CommitmentDiscountUnit", "ConsumedQuantity", "ConsumedUnit",
    "ContractedCost", "ContractedUnitPrice", "EffectiveCost", "InvoiceId", "InvoiceIssuerName", "ListCost",
    "ListUnitPrice", "PricingCategory", "PricingCurrency", "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost", "PricingCurrencyListUnitPrice", "PricingQuantity", "PricingUnit", "ProviderName",
    "PublisherName", "RegionId", "RegionName", "ResourceId", "ResourceName", "ResourceType", "ServiceCategory",
    "ServiceName", "ServiceSubcategory", "SkuId", "SkuMeter", "SkuPriceDetails", "SkuPriceId", "SubAccountId",
    "SubAccountName", "SubAccountType", "Tags",
    "x_System", "x_ResourceKind", "x_RateCardVersion", "x_PriceTier", "x_LocalDay", "x_AdjustmentId",
    "x_ChargeDescriptionLocal", "x_CorrectedPeriod",
]

# meter family → (ServiceName, ServiceCategory, ServiceSubcategory) in FOCUS's fixed vocabulary
SERVICES = {
    "compute.vcpu": ("Cloud Server", "Compute", "Virtual Machines"),
    "compute.memory": ("Cloud Server", "Compute", "Virtual Machines"),
    "compute.gpu": ("GPU Cloud Server", "Compute", "Virtual Machines"),
    "storage.block": ("Cloud Disk", "Storage", "Block Storage"),
    "storage.object": ("Object Storage", "Storage", "Object Storage"),
    "storage.backup": ("Cloud Backup", "Storage", "Backup Storage"),
    "network.bandwidth": ("Internet Bandwidth", "Networking", "Network Connectivity"),
    "network.egress": ("Internet Bandwidth", "Networking", "Network Connectivity"),
    "network.public_ip": ("Elastic Public IP", "Networking", "Network Connectivity"),
    "network.load_balancer": ("Load Balancer", "Networking", "Application Networking"),
    "security.waf": ("Web Application Firewall", "Networking", "Network Security"),
    "security.host_protection": ("Host Security", "Security", "Threat Detection and Response"),
}
RESOURCE_TYPES = {
    "vm": "Virtual Machine", "volume": "Block Storage Volume", "bucket": "Object Storage Bucket",
    "ip": "Public IP Address", "bandwidth": "Bandwidth Package", "lb": "Load Balancer",
    "security": "Security Service",
}


def focus_unit(unit: str) -> str:
    """The catalogue's units in FOCUS's unit format: ``vCPU-hour`` → ``vCPU-Hours``, ``GB`` stays."""
    if unit.endswith("-hour"):
        head = unit[: -len("-hour")]
        return f"{head.capitalize() if head.islower() else head}-Hours"  # instance-hour → Instance-Hours
    return unit


def utc_text(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _decimal(value: Decimal | None) -> str:
    # Always with a decimal point: the validator infers a column's type from its text, and a column of whole
    # numbers ("5", "2") would be read as integers and fail FOCUS's DECIMAL type rules.
    if value is None:
        return ""
    text = quantity_text(value)
    return text if "." in text else text + ".0"


@exact
def focus_rows(month: str, charges: list[ChargeRow], names: dict[str, str], kinds: dict[str, str],
               versions: dict[int, str], lang: str = "zh", bills: dict[str, dict] | None = None) -> list[dict]:
    """The export's rows (pure): usage rows; per bill line, an ``Adjustment`` for what the bill's line differs
    from the rows (the rounding to the fen); the bill's late adjustments as ``Correction`` rows and its manual
    adjustments and credits as ``Adjustment`` / ``Credit`` rows. ``bills``: department → the bill's document."""
    period_start, period_end = (utc_text(t) for t in month_bounds(month))
    catalogue = meters()
    common = {
        "BillingAccountId": BILLING_ACCOUNT[0], "BillingAccountName": BILLING_ACCOUNT[1],
        "BillingAccountType": BILLING_ACCOUNT[2], "BillingCurrency": CURRENCY, "BillingPeriodStart": period_start,
        "BillingPeriodEnd": period_end, "InvoiceIssuerName": PROVIDER, "ProviderName": PROVIDER,
        "PublisherName": PROVIDER, "RegionId": REGION[0], "RegionName": REGION[1], "PricingCurrency": CURRENCY,
        "SubAccountType": "Department",
    }
    rows: list[dict] = []
    for c in charges:
        service = SERVICES.get(c.meter, ("Government Cloud", "Other", "Other (Other)"))
        unit = focus_unit(catalogue[c.meter].unit) if c.meter in catalogue else c.meter
        price = c.unit_price if c.unit_price is not None else Decimal(0)
        day_start = local_day_start(c.day)
        version = versions.get(c.rate_card_id)
        kind = kinds.get(c.resource_id, "")
        cost = _decimal(c.cost)
        tags = {"govmeter/system": c.system, "govmeter/kind": kind}
        rows.append({
            **common,
            "BilledCost": cost, "EffectiveCost": cost, "ListCost": cost, "ContractedCost": cost,
            "PricingCurrencyEffectiveCost": cost,
            "ListUnitPrice": _decimal(price), "ContractedUnitPrice": _decimal(price),
            "PricingCurrencyListUnitPrice": _decimal(price), "PricingCurrencyContractedUnitPrice": _decimal(price),
            "ChargeCategory": "Usage", "ChargeClass": "", "ChargeFrequency": "Usage-Based",
            "ChargeDescription": f"{meter_name(c.meter, 'en')} {c.resource_id}",
            "x_ChargeDescriptionLocal": f"{meter_name(c.meter, lang)} {c.resource_id}",
            "ChargePeriodStart": utc_text(day_start), "ChargePeriodEnd": utc_text(local_day_start(c.day) + _DAY),
            "ConsumedQuantity": _decimal(c.quantity), "ConsumedUnit": unit,
            "PricingQuantity": _decimal(c.quantity), "PricingUnit": unit, "PricingCategory": "Standard",
            "InvoiceId": invoice_id(month, c.department_id),
            "ResourceId": c.resource_id, "ResourceName": c.resource_id,
            "ResourceType": RESOURCE_TYPES.get(kind, "Cloud Resource"),
            "ServiceName": service[0], "ServiceCategory": service[1], "ServiceSubcategory": service[2],
            "SkuId": c.meter, "SkuMeter": catalogue[c.meter].name_en if c.meter in catalogue else c.meter,
            "SkuPriceId": f"{version or c.rate_card_id}:{c.meter}" + (f":{c.tier}" if c.tier else ""),
            "SkuPriceDetails": orjson.dumps({"x_RateCardVersion": version, "x_Tier": c.tier}).decode(),
            "SubAccountId": c.department_id, "SubAccountName": names.get(c.department_id, c.department_id),
            "Tags": orjson.dumps(tags).decode(),
            "x_System": c.system, "x_ResourceKind": kind, "x_RateCardVersion": version or "",
            "x_PriceTier": c.tier or "", "x_LocalDay": c.day.isoformat(),
        })
    exact = invoice_lines(charges)
    if bills is None:  # no billing module: the bill's rule applied here (lines rounded once, no adjustments)
        bills = {d: {"lines": [{"meter": m, "amount": format(line.amount, "f")} for m, line in lines.items()],
                     "adjustments": []} for d, lines in exact.items()}
    for department in sorted(set(exact) | set(bills)):
        document = bills.get(department, {"lines": [], "adjustments": []})
        name = names.get(department, document.get("department_name", department))
        invoice = invoice_id(month, department)
        billed = {line["meter"]: Decimal(line["amount"]) for line in document["lines"]}
        listed = {m: line.exact for m, line in exact.get(department, {}).items()}
        for meter in sorted(set(billed) | set(listed)):
            difference = billed.get(meter, Decimal(0)) - listed.get(meter, Decimal(0))
            if difference == 0:
                continue
            service = SERVICES.get(meter, ("Government Cloud", "Other", "Other (Other)"))
            text = _decimal(difference)
            # Below a fen this is the line's rounding; more means the issued (final) bill was settled before
            # usage that arrived later, which a later bill carries as a correction.
            rounding = abs(difference) < Decimal("0.01")
            english = (f"Rounding to the fen: {meter_name(meter, 'en')}" if rounding
                       else f"Difference to the issued bill line: {meter_name(meter, 'en')}")
            local = english if lang == "en" else (
                f"{'按分四舍五入' if rounding else '与已出账单行的差额'}：{meter_name(meter, 'zh')}")
            rows.append({
                **common,
                "BilledCost": text, "EffectiveCost": text, "ListCost": text, "ContractedCost": text,
                "PricingCurrencyEffectiveCost": text,
                "ChargeCategory": "Adjustment", "ChargeClass": "", "ChargeFrequency": "One-Time",
                "ChargeDescription": english, "x_ChargeDescriptionLocal": local,
                "ChargePeriodStart": period_start, "ChargePeriodEnd": period_end, "InvoiceId": invoice,
                "ServiceName": service[0], "ServiceCategory": service[1], "ServiceSubcategory": service[2],
                "SubAccountId": department, "SubAccountName": name, "Tags": "{}",
            })
        for a in document["adjustments"]:
            amount = Decimal(a["amount"])
            text = _decimal(amount)
            row = {
                **common,
                "BilledCost": text, "EffectiveCost": text, "ListCost": text, "ContractedCost": text,
                "PricingCurrencyEffectiveCost": text, "ChargeFrequency": "One-Time", "InvoiceId": invoice,
                "SubAccountId": department, "SubAccountName": name, "Tags": "{}",
                "x_ChargeDescriptionLocal": a.get("reason") or "",
            }
            if a.get("kind") == "late":  # a closed month's figures corrected on this bill
                service = SERVICES.get(a["meter"], ("Government Cloud", "Other", "Other (Other)"))
                original_start, original_end = (utc_text(t) for t in month_bounds(a["original_period"]))
                row.update({
                    "ChargeCategory": "Usage", "ChargeClass": "Correction", "ChargeFrequency": "Usage-Based",
                    "ChargeDescription": f"Correction of {a['original_period']}: {meter_name(a['meter'], 'en')}",
                    "ChargePeriodStart": original_start, "ChargePeriodEnd": original_end,
                    "ServiceName": service[0], "ServiceCategory": service[1], "ServiceSubcategory": service[2],
                    "SkuId": a["meter"], "x_CorrectedPeriod": a["original_period"],
                })
            else:
                kind = "Credit" if amount < 0 else "Adjustment"
                row.update({
                    "ChargeCategory": kind, "ChargeClass": "",
                    "ChargeDescription": f"{kind} {a.get('id', '')} on the bill".replace("  ", " "),
                    "ChargePeriodStart": period_start, "ChargePeriodEnd": period_end,
                    "ServiceName": "Government Cloud", "ServiceCategory": "Other",
                    "ServiceSubcategory": "Other (Other)", "x_AdjustmentId": a.get("id", ""),
                })
            rows.append(row)
    return rows


async def bill_documents(engine, month: str, department: str | None) -> dict[str, dict] | None:
    """The month's bills as issued (final) or as they stand (draft), by department, from the billing side;
    None where the billing side is not installed."""
    try:
        from services.billing.domain.render import bill_document
        from services.billing.queries import FinalBill, bill_summaries, read_bill
    except ImportError:
        return None
    now = datetime.now(UTC)
    documents = {}
    for summary in await bill_summaries(engine, month, department, now):
        found = await read_bill(engine, summary["bill_id"], now)
        if found is not None:
            documents[summary["department_id"]] = (orjson.loads(found.document) if isinstance(found, FinalBill)
                                                   else bill_document(found))
    return documents


@router.get("/v1/exports/focus", response_class=Response,
            responses={200: {"content": {"text/csv": {}}, "description": "FOCUS 1.2 CSV"}})
async def export_focus(principal: Reader, period: MonthQuery, department: DepartmentParam = None, lang: str = "zh"):
    """A month's charges in FinOps FOCUS 1.2 (CSV). Finance and admin: every department; a department token:
    its own. BilledCost summed per InvoiceId equals that department's bill total for the month."""
    check_lang(lang)
    month = str(period)
    scope = scoped_department(principal, department)
    async with raw_connection(get_engine()) as conn:
        cards = await load_rate_cards(conn)
        charges = await month_charges(conn, month, scope, cards)
        ids = {c.department_id for c in charges}
        names = await department_names(conn, ids)
        kinds = {r["resource_id"]: r["kind"] for r in await conn.fetch(
            """
            SELECT DISTINCT ON (resource_id) resource_id, kind FROM resource_intervals
            WHERE resource_id = ANY($1::text[]) ORDER BY resource_id, valid_from DESC
            """,
            list({c.resource_id for c in charges}),
        )}
    bills = await bill_documents(get_engine(), month, scope)

    def lines():  # built while streaming, in the thread pool
        for row in focus_rows(month, charges, names, kinds, {c.id: c.version for c in cards}, lang, bills):
            yield [row.get(name, "") for name in COLUMNS]

    return csv_response(COLUMNS, lines(), f"govmeter-focus-{month}{'-' + scope if scope else ''}.csv", bom=False)

