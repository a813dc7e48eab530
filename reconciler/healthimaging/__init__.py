"""The client layer: the only package that imports boto3/botocore.

- :mod:`.client`: :func:`make_boto3_client` and the typed :class:`HealthImaging` calls
  (gunzip, pagination, waiting for LOCKED to settle);
- :mod:`.errors`: service failures as :class:`~reconciler.errors.ReconcilerError`\\ s;
- :mod:`.models` / :mod:`.wire`: domain values and the raw payloads they come from;
- :mod:`.pacing`: client-side rate limits at the service's quotas; :mod:`.published`
  reads them from AWS Service Quotas where it lists them, :mod:`.memory` remembers the
  rate a run reached for the next.

Choosing an endpoint and starting the embedded local HealthImaging is the session's
(:mod:`reconciler.session.connect`): this package knows AWS, not the emulator.
"""

from __future__ import annotations

from reconciler.healthimaging.client import HealthImaging, make_boto3_client
from reconciler.healthimaging.errors import (
    AccessDenied,
    CredentialsMissing,
    DatastoreNotFound,
    EndpointUnreachable,
    ImageSetNotFound,
    LockTimeout,
    PayloadTooLarge,
    ServiceError,
    ServiceUnavailable,
    ServiceValidationError,
    Throttled,
    VersionConflict,
    VersionMoved,
    map_error,
)
from reconciler.healthimaging.models import (
    CopyResult,
    DatastoreInfo,
    DeleteResult,
    ImageSetInfo,
    ImageSetState,
    ImageSetSummary,
    SearchFilter,
    Sort,
    UpdateResult,
    VersionInfo,
    WorkflowStatus,
    between,
    equal,
)
from reconciler.healthimaging.pacing import RateLimiter

__all__ = [
    "AccessDenied",
    "CopyResult",
    "CredentialsMissing",
    "DatastoreInfo",
    "DatastoreNotFound",
    "DeleteResult",
    "EndpointUnreachable",
    "HealthImaging",
    "ImageSetInfo",
    "ImageSetNotFound",
    "ImageSetState",
    "ImageSetSummary",
    "LockTimeout",
    "PayloadTooLarge",
    "RateLimiter",
    "SearchFilter",
    "ServiceError",
    "ServiceUnavailable",
    "ServiceValidationError",
    "Sort",
    "Throttled",
    "UpdateResult",
    "VersionConflict",
    "VersionInfo",
    "VersionMoved",
    "WorkflowStatus",
    "between",
    "equal",
    "make_boto3_client",
    "map_error",
]
