"""The library front door: :class:`Session` and the results its workflows return."""

from __future__ import annotations

from reconciler.session.core import Cancelled, Session
from reconciler.session.results import ApplyResult, DriftResult, PlanResult, RevertResult

__all__ = ["ApplyResult", "Cancelled", "DriftResult", "PlanResult", "RevertResult", "Session"]
