"""Billing's tables (typed SQLAlchemy models on the shared ``Base``); created by migration 0002.

Draft bills are not stored: they are computed from the rollups when read. What is stored is what must never
change once written (closed periods, final bills, manual adjustments, the ledger: the migration forbids UPDATE
and DELETE on them) and the budgets and their alerts."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, TIMESTAMP
from sqlalchemy.orm import Mapped, mapped_column

from services.common.models import Base

# Tables that never change after insert (the migration installs a trigger refusing UPDATE, DELETE, TRUNCATE).
APPEND_ONLY = ("billing_periods", "bills", "adjustments", "usage_baselines", "ledger_entries")


class BillingPeriod(Base):
    """A closed billing period (local calendar month). Open periods have no row."""

    __tablename__ = "billing_periods"

    period: Mapped[str] = mapped_column(Text, primary_key=True)  # YYYY-MM
    # Closes in the order they happened: a bill computed "as of" close k sees only closes before it.
    close_seq: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    # Taken while holding the attribution lock: every event and rate card committed before the close has
    # received_at / created_at ≤ closed_at, every later one is after it (what replay cuts history at).
    closed_at: Mapped[datetime]
    # Transactions still open at closed_at that had not written anything yet (they wait for the attribution
    # lock): what they write later is stamped with their start instant, listed here, and counts after the close.
    open_at_close: Mapped[list[datetime]] = mapped_column(ARRAY(TIMESTAMP(timezone=True)))
    closed_by: Mapped[str] = mapped_column(Text)
    closed_by_instance: Mapped[str | None] = mapped_column(Text)  # the process that closed it (migration 0005)
    # The close's transaction: its start (lock waits included) and when this row was written (migration 0008).
    close_started_at: Mapped[datetime | None]
    close_finished_at: Mapped[datetime | None]
    # An admin closed it while sources were behind its end: who, when, why, and those sources (migration 0006).
    watermark_override: Mapped[dict[str, Any] | None]
    bills: Mapped[int] = mapped_column(Integer)
    total: Mapped[Decimal]
    ledger_seq: Mapped[int | None] = mapped_column(BigInteger)  # the ledger's head after this close


class Bill(Base):
    """A final bill, exactly as issued: the JSON and CSV bytes that GET returns forever, and their hash."""

    __tablename__ = "bills"
    __table_args__ = (UniqueConstraint("period", "department_id", name="uq_bills_period_department_id"),)

    bill_id: Mapped[str] = mapped_column(Text, primary_key=True)  # GM-YYYY-MM-<department>
    period: Mapped[str] = mapped_column(Text)
    department_id: Mapped[str] = mapped_column(Text, index=True)
    total: Mapped[Decimal]
    content_hash: Mapped[str] = mapped_column(Text)  # sha256 hex, see services.billing.domain.render
    document: Mapped[bytes]  # canonical JSON
    csv: Mapped[bytes]  # UTF-8 with BOM
    closed_at: Mapped[datetime]
    ledger_seq: Mapped[int] = mapped_column(BigInteger)  # the ledger entry that carries content_hash
    # the name as issued, from the document (migration 0017): a bill list reads it without parsing documents
    department_name: Mapped[str | None] = mapped_column(
        Text, Computed("govmeter_document_department_name(document)", persisted=True))


class Adjustment(Base):
    """A manual adjustment or credit (negative amount) on a department's bill of ``period``; audited."""

    __tablename__ = "adjustments"
    __table_args__ = (Index("ix_adjustments_period_department", "period", "department_id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    department_id: Mapped[str] = mapped_column(Text)
    period: Mapped[str] = mapped_column(Text)
    amount: Mapped[Decimal]
    reason: Mapped[str] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    ledger_seq: Mapped[int] = mapped_column(BigInteger)


class UsageBaseline(Base):
    """A fingerprint of a department's daily usage in a closed period, recorded when the period's figures were
    last settled (its close, or a later close that froze a late adjustment for it). While the fingerprint and
    the rate cards are unchanged nothing needs re-pricing, so open bills need not recompute closed months."""

    __tablename__ = "usage_baselines"
    __table_args__ = (Index("ix_usage_baselines_department_period", "department_id", "period"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    department_id: Mapped[str] = mapped_column(Text)
    period: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(Text)
    close_seq: Mapped[int] = mapped_column(BigInteger)
    # usage_versions' version the digest was taken at; None: recorded before migration 0017 (counts as 0)
    usage_version: Mapped[int | None] = mapped_column(BigInteger)


class LedgerEntry(Base):
    """The hash-chained ledger: every amount on a final bill and every manual adjustment, append-only.
    ``hash`` = sha256 over the entry's canonical form, which includes ``seq`` and ``prev_hash``."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index("ix_ledger_entries_department_original", "department_id", "original_period"),
        Index("ix_ledger_entries_bill", "bill_id"),
    )

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(Text)  # bill_line | late_adjustment | bill | adjustment | rate_card_*
    department_id: Mapped[str | None] = mapped_column(Text)  # None: a rate card's entries (every department's)
    period: Mapped[str] = mapped_column(Text)  # the bill's period
    bill_id: Mapped[str | None] = mapped_column(Text)
    original_period: Mapped[str | None] = mapped_column(Text)  # late adjustments: the closed period corrected
    meter: Mapped[str | None] = mapped_column(Text)
    quantity: Mapped[Decimal | None]
    amount: Mapped[Decimal]
    reason: Mapped[str | None] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    prev_hash: Mapped[str] = mapped_column(Text)
    hash: Mapped[str] = mapped_column(Text)


class Budget(Base):
    """A department's IT budget for a calendar year (Art. 19)."""

    __tablename__ = "budgets"

    department_id: Mapped[str] = mapped_column(Text, primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    amount: Mapped[Decimal]
    updated_by: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class BudgetAlert(Base):
    """A budget alert, stored once per (department, year, kind, period); ``published_at`` is set once it is on
    the alerts topic (an outbox: publishing is retried until it succeeds)."""

    __tablename__ = "budget_alerts"
    __table_args__ = (
        Index(
            "uq_budget_alerts_key", "department_id", "year", "kind", "period",
            unique=True, postgresql_nulls_not_distinct=True,
        ),
        Index("ix_budget_alerts_unpublished", "id", postgresql_where="published_at IS NULL"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    department_id: Mapped[str] = mapped_column(Text)
    year: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(Text)  # spend_50 | spend_80 | spend_100 | projected_overrun
    period: Mapped[str | None] = mapped_column(Text)  # projected_overrun: the month whose run rate projected it
    budget: Mapped[Decimal]
    spend: Mapped[Decimal]
    projected: Mapped[Decimal | None]
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    published_at: Mapped[datetime | None]


class WebhookSubscription(Base):
    """Where a caller wants budget alerts and spend warnings delivered (services/billing/webhooks.py). ``department_id``
    is the scope (NULL: every department, finance and admin only); a department's own subscription is bound to its
    department by a CHECK (a NULL scope included), so no code path can widen it (Art. 18). ``secret`` signs every delivery."""

    __tablename__ = "webhook_subscriptions"
    __table_args__ = (
        CheckConstraint("owner_role <> 'department' OR coalesce(department_id = owner_department, false)",
                        name="department_scope"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    owner_role: Mapped[str] = mapped_column(Text)
    owner_subject: Mapped[str] = mapped_column(Text)
    owner_department: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(ARRAY(Text))
    alert_kinds: Mapped[list[str] | None] = mapped_column(ARRAY(Text))  # NULL: every kind
    department_id: Mapped[str | None] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class WebhookDelivery(Base):
    """One alert or warning to one subscription: its body as first rendered (every attempt sends the same bytes
    under the same id) and the state of its retries."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_type", "item_id"),
        Index("ix_webhook_deliveries_due", "next_attempt_at",
              postgresql_where="delivered_at IS NULL AND failed_at IS NULL"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)  # Govmeter-Delivery
    subscription_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(Text)  # budget.alert | spend.warning
    item_id: Mapped[int] = mapped_column(BigInteger)  # budget_alerts.id or spend_warnings.id
    department_id: Mapped[str] = mapped_column(Text)
    body: Mapped[bytes]
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]  # given up after the last attempt
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Dispute(Base):
    """A department's dispute of a line of its own final bill (Art. 13; services/billing/disputes.py). Opened once,
    answered once: migration 0008's trigger refuses any change but the answer of an open dispute, and any DELETE.
    An upheld dispute's credit is an ordinary adjustment (``adjustment_id``) on the department's next open bill."""

    __tablename__ = "disputes"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'rejected', 'upheld')", name="disputes_status"),
        CheckConstraint(
            "(status = 'open' AND answered_by IS NULL AND answered_at IS NULL AND credit IS NULL"
            " AND adjustment_id IS NULL)"
            " OR (status = 'rejected' AND answered_by IS NOT NULL AND answered_at IS NOT NULL AND reply IS NOT NULL"
            " AND credit IS NULL AND adjustment_id IS NULL)"
            " OR (status = 'upheld' AND answered_by IS NOT NULL AND answered_at IS NOT NULL AND credit > 0"
            " AND credit <= line_amount AND adjustment_id IS NOT NULL AND credit_period IS NOT NULL)",
            name="disputes_answer"),
        # one open dispute per bill line
        Index("uq_disputes_open_line", "bill_id", "meter", unique=True, postgresql_where="status = 'open'"),
        Index("ix_disputes_department", "department_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    department_id: Mapped[str] = mapped_column(Text)
    bill_id: Mapped[str] = mapped_column(Text, ForeignKey("bills.bill_id"))  # final bills only: drafts have no row
    period: Mapped[str] = mapped_column(Text)
    meter: Mapped[str] = mapped_column(Text)
    line_quantity: Mapped[str] = mapped_column(Text)
    line_amount: Mapped[Decimal]
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    opened_by: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime]
    answered_by: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[datetime | None]
    reply: Mapped[str | None] = mapped_column(Text)
    credit: Mapped[Decimal | None]
    credit_period: Mapped[str | None] = mapped_column(Text)
    adjustment_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("adjustments.id"))


class RateCardProposal(Base):
    """A proposed rate card (migration 0008): pending until someone other than its proposer approves it (then
    ``rate_card_id`` is the stored card) or rejects it with a reason. Decided rows never change (trigger)."""

    __tablename__ = "rate_card_proposals"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'approved', 'rejected')", name="rate_card_proposals_status"),
        CheckConstraint("(status = 'pending') = (decided_by IS NULL AND decided_at IS NULL)",
                        name="rate_card_proposals_decided"),
        CheckConstraint("decided_by IS DISTINCT FROM proposed_by", name="rate_card_proposals_checker"),
        CheckConstraint("status <> 'rejected' OR reason IS NOT NULL", name="rate_card_proposals_reason"),
        CheckConstraint("(status = 'approved') = (rate_card_id IS NOT NULL)", name="rate_card_proposals_card"),
        Index("uq_rate_card_proposals_version", "version", unique=True, postgresql_where="status <> 'rejected'"),
        Index("ix_rate_card_proposals_pending", "proposed_at", postgresql_where="status = 'pending'"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    version: Mapped[str] = mapped_column(Text)
    effective_from: Mapped[datetime]
    currency: Mapped[str] = mapped_column(Text)
    prices: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(Text, server_default="pending")  # pending | approved | rejected
    proposed_by: Mapped[str] = mapped_column(Text)
    proposed_at: Mapped[datetime]
    decided_by: Mapped[str | None] = mapped_column(Text)
    decided_role: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None]
    reason: Mapped[str | None] = mapped_column(Text)  # why it was rejected
    rate_card_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("rate_cards.id", name="rate_card_proposals_rate_card_id_fkey"))
