"""reconciler: GitOps for DICOM metadata in AWS HealthImaging.

The library's front door is :class:`Session` (see :mod:`reconciler.session`)::

    from reconciler import Session

    with Session(endpoint="local") as s:
        result = s.plan(["manifests"])
        print(result.plan.has_changes, result.exit_code)

Importing this package loads nothing heavy: ``Session`` and the results are imported
on first use, so ``reconciler --help`` stays fast and the CLI never pays for boto3
before it needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler.version import __version__

if TYPE_CHECKING:
    from reconciler.session import (
        ApplyResult,
        Cancelled,
        DriftResult,
        PlanResult,
        RevertResult,
        Session,
    )

__all__ = [
    "ApplyResult",
    "Cancelled",
    "DriftResult",
    "PlanResult",
    "RevertResult",
    "Session",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in __all__ and name != "__version__":
        from reconciler import session

        return getattr(session, name)
    raise AttributeError(f"module 'reconciler' has no attribute {name!r}")
