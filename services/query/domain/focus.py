"""A month's charges as FinOps FOCUS 1.2 rows (pure; ``GET /v1/exports/focus`` writes them as CSV).

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
from typing import Any, Mapping

import orjson

from schemas.catalogue import meters
from schemas.money import CURRENCY, exact, quantity_text
from services.common.periods import Month
from services.query.domain.charges import ChargeRow, InvoiceLine, invoice_id, invoice_lines, local_day_start
from services.query.domain.labels import meter_name

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

# (ServiceName, ServiceCategory, ServiceSubcategory) in FOCUS's fixed vocabulary → the meters of that service
_SERVICE_METERS = {
    ("Cloud Server", "Compute", "Virtual Machines"): ("compute.vcpu", "compute.memory"),
    ("GPU Cloud Server", "Compute", "Virtual Machines"): ("compute.gpu",),
    ("Cloud Disk", "Storage", "Block Storage"): ("storage.block",),
    ("Object Storage", "Storage", "Object Storage"): ("storage.object",),
    ("Cloud Backup", "Storage", "Backup Storage"): ("storage.backup",),
    ("Internet Bandwidth", "Networking", "Network Connectivity"): ("network.bandwidth", "network.egress"),
    ("Elastic Public IP", "Networking", "Network Connectivity"): ("network.public_ip",),
    ("Load Balancer", "Networking", "Application Networking"): ("network.load_balancer",),
    ("Web Application Firewall", "Networking", "Network Security"): ("security.waf",),
    ("Host Security", "Security", "Threat Detection and Response"): ("security.host_protection",),
}
SERVICES = {meter: service for service, keys in _SERVICE_METERS.items() for meter in keys}
OTHER_SERVICE = ("Government Cloud", "Other", "Other (Other)")
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


def service_columns(meter: str | None) -> dict[str, str]:
    """FOCUS's service of a meter; None (an adjustment of the whole bill) and unknown meters: Other."""
    name, category, subcategory = SERVICES.get(meter, OTHER_SERVICE)
    return {"ServiceName": name, "ServiceCategory": category, "ServiceSubcategory": subcategory}


def cost_columns(text: str) -> dict[str, str]:
    """The one cost in every cost column: no discounts or commitments."""
    return {"BilledCost": text, "EffectiveCost": text, "ListCost": text, "ContractedCost": text,
            "PricingCurrencyEffectiveCost": text}


def common_columns(month: str) -> dict[str, str]:
    """What every row of ``month``'s export says alike."""
    period_start, period_end = (utc_text(t) for t in Month.parse(month).bounds)
    return {
        "BillingAccountId": BILLING_ACCOUNT[0], "BillingAccountName": BILLING_ACCOUNT[1],
        "BillingAccountType": BILLING_ACCOUNT[2], "BillingCurrency": CURRENCY, "BillingPeriodStart": period_start,
        "BillingPeriodEnd": period_end, "InvoiceIssuerName": PROVIDER, "ProviderName": PROVIDER,
        "PublisherName": PROVIDER, "RegionId": REGION[0], "RegionName": REGION[1], "PricingCurrency": CURRENCY,
        "SubAccountType": "Department",
    }


@exact
def focus_rows(month: str, charges: list[ChargeRow], names: dict[str, str], kinds: dict[str, str],
               versions: dict[int, str], lang: str = "zh", bills: dict[str, dict] | None = None) -> list[dict]:
    """The export's rows: usage rows; per bill line, an ``Adjustment`` for what the bill's line differs from the
    rows (the rounding to the fen); the bill's late adjustments as ``Correction`` rows and its manual adjustments
    and credits as ``Adjustment`` / ``Credit`` rows. ``bills``: department → the bill's document."""
    common = common_columns(month)
    rows = [usage_row(c, common, month, names, kinds, versions, lang) for c in charges]
    exact_lines = invoice_lines(charges)
    if bills is None:  # no billing module: the bill's rule applied here (lines rounded once, no adjustments)
        bills = {d: {"lines": [{"meter": m, "amount": format(line.amount, "f")} for m, line in lines.items()],
                     "adjustments": []} for d, lines in exact_lines.items()}
    for department in sorted(set(exact_lines) | set(bills)):
        document = bills.get(department, {"lines": [], "adjustments": []})
        invoice = {**common, "InvoiceId": invoice_id(month, department), "SubAccountId": department,
                   "SubAccountName": names.get(department, document.get("department_name", department)),
                   "Tags": "{}"}
        rows += line_differences(document, exact_lines.get(department, {}), invoice, lang)
        rows += [adjustment_row(a, invoice) for a in document["adjustments"]]
    return rows


def usage_row(c: ChargeRow, common: dict[str, str], month: str, names: Mapping[str, str], kinds: Mapping[str, str],
              versions: Mapping[int, str], lang: str) -> dict[str, Any]:
    catalogue = meters()
    unit = focus_unit(catalogue[c.meter].unit) if c.meter in catalogue else c.meter
    price = _decimal(c.unit_price if c.unit_price is not None else Decimal(0))
    version = versions.get(c.rate_card_id)
    kind = kinds.get(c.resource_id, "")
    tags = {"govmeter/system": c.system, "govmeter/kind": kind}
    return {
        **common, **cost_columns(_decimal(c.cost)),
        "ListUnitPrice": price, "ContractedUnitPrice": price,
        "PricingCurrencyListUnitPrice": price, "PricingCurrencyContractedUnitPrice": price,
        "ChargeCategory": "Usage", "ChargeClass": "", "ChargeFrequency": "Usage-Based",
        "ChargeDescription": f"{meter_name(c.meter, 'en')} {c.resource_id}",
        "x_ChargeDescriptionLocal": f"{meter_name(c.meter, lang)} {c.resource_id}",
        "ChargePeriodStart": utc_text(local_day_start(c.day)),
        "ChargePeriodEnd": utc_text(local_day_start(c.day) + _DAY),
        "ConsumedQuantity": _decimal(c.quantity), "ConsumedUnit": unit,
        "PricingQuantity": _decimal(c.quantity), "PricingUnit": unit, "PricingCategory": "Standard",
        "InvoiceId": invoice_id(month, c.department_id),
        "ResourceId": c.resource_id, "ResourceName": c.resource_id,
        "ResourceType": RESOURCE_TYPES.get(kind, "Cloud Resource"), **service_columns(c.meter),
        "SkuId": c.meter, "SkuMeter": catalogue[c.meter].name_en if c.meter in catalogue else c.meter,
        "SkuPriceId": f"{version or c.rate_card_id}:{c.meter}" + (f":{c.tier}" if c.tier else ""),
        "SkuPriceDetails": orjson.dumps({"x_RateCardVersion": version, "x_Tier": c.tier}).decode(),
        "SubAccountId": c.department_id, "SubAccountName": names.get(c.department_id, c.department_id),
        "Tags": orjson.dumps(tags).decode(),
        "x_System": c.system, "x_ResourceKind": kind, "x_RateCardVersion": version or "",
        "x_PriceTier": c.tier or "", "x_LocalDay": c.day.isoformat(),
    }


@exact
def line_differences(document: dict, lines: Mapping[str, InvoiceLine], invoice: dict[str, str],
                     lang: str) -> list[dict]:
    """Per meter, an ``Adjustment`` row for the bill's line minus the exact sum of its usage rows."""
    billed = {line["meter"]: Decimal(line["amount"]) for line in document["lines"]}
    listed = {m: line.exact for m, line in lines.items()}
    rows = []
    for meter in sorted(set(billed) | set(listed)):
        difference = billed.get(meter, Decimal(0)) - listed.get(meter, Decimal(0))
        if difference == 0:
            continue
        # Below a fen this is the line's rounding; more means the issued (final) bill was settled before
        # usage that arrived later, which a later bill carries as a correction.
        rounding = abs(difference) < Decimal("0.01")
        english = (f"Rounding to the fen: {meter_name(meter, 'en')}" if rounding
                   else f"Difference to the issued bill line: {meter_name(meter, 'en')}")
        local = english if lang == "en" else (
            f"{'按分四舍五入' if rounding else '与已出账单行的差额'}：{meter_name(meter, 'zh')}")
        rows.append({
            **invoice, **cost_columns(_decimal(difference)),
            "ChargeCategory": "Adjustment", "ChargeClass": "", "ChargeFrequency": "One-Time",
            "ChargeDescription": english, "x_ChargeDescriptionLocal": local,
            "ChargePeriodStart": invoice["BillingPeriodStart"], "ChargePeriodEnd": invoice["BillingPeriodEnd"],
            **service_columns(meter),
        })
    return rows


def adjustment_row(a: dict, invoice: dict[str, str]) -> dict:
    """A bill's adjustment: a late one (a closed month corrected) as a ``Correction`` of that month's usage, a
    manual one as an ``Adjustment``, or a ``Credit`` when negative."""
    amount = Decimal(a["amount"])
    row = {**invoice, **cost_columns(_decimal(amount)), "ChargeFrequency": "One-Time",
           "x_ChargeDescriptionLocal": a.get("reason") or ""}
    if a.get("kind") == "late":
        original_start, original_end = (utc_text(t) for t in Month.parse(a["original_period"]).bounds)
        row.update({
            "ChargeCategory": "Usage", "ChargeClass": "Correction", "ChargeFrequency": "Usage-Based",
            "ChargeDescription": f"Correction of {a['original_period']}: {meter_name(a['meter'], 'en')}",
            "ChargePeriodStart": original_start, "ChargePeriodEnd": original_end,
            **service_columns(a["meter"]), "SkuId": a["meter"], "x_CorrectedPeriod": a["original_period"],
        })
    else:
        kind = "Credit" if amount < 0 else "Adjustment"
        row.update({
            "ChargeCategory": kind, "ChargeClass": "",
            "ChargeDescription": f"{kind} {a.get('id', '')} on the bill".replace("  ", " "),
            "ChargePeriodStart": invoice["BillingPeriodStart"], "ChargePeriodEnd": invoice["BillingPeriodEnd"],
            **service_columns(None), "x_AdjustmentId": a.get("id", ""),
        })
    return row
