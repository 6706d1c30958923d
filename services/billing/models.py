"""Billing's tables (typed SQLAlchemy models on the shared ``Base``); created by migration 0002."""

from services.common.models import Base  # noqa: F401
