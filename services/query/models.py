"""Tables of the reports (typed SQLAlchemy models on the shared ``Base``); created by migration 0003."""

from services.common.models import Base  # noqa: F401
