"""What the client hands back: enums for states, frozen dataclasses for values.

Each ``from_wire`` reads one payload of :mod:`reconciler.healthimaging.wire`; nothing
outside this package sees the service's member names.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Self, get_args

from reconciler.healthimaging import wire
from reconciler.healthimaging.errors import redact


class _OpenEnum(str, enum.Enum):
    """An enum that reads a value it does not know as ``UNKNOWN`` instead of failing.

    The service adds statuses over time (COPYING_WITH_READ_ONLY_ACCESS and
    UPDATING_FOR_STUDY_CONSISTENCY came later than the rest); a new one must not crash
    a plan that only needed to know whether the image set is LOCKED.
    """

    @classmethod
    def _missing_(cls, value: object) -> Any:
        return cls.__members__["UNKNOWN"]


class ImageSetState(_OpenEnum):
    ACTIVE = "ACTIVE"
    LOCKED = "LOCKED"
    DELETED = "DELETED"
    UNKNOWN = "UNKNOWN"


class WorkflowStatus(_OpenEnum):
    CREATED = "CREATED"
    COPIED = "COPIED"
    COPYING = "COPYING"
    COPYING_WITH_READ_ONLY_ACCESS = "COPYING_WITH_READ_ONLY_ACCESS"
    COPY_FAILED = "COPY_FAILED"
    UPDATING = "UPDATING"
    UPDATING_FOR_STUDY_CONSISTENCY = "UPDATING_FOR_STUDY_CONSISTENCY"
    UPDATED = "UPDATED"
    UPDATE_FAILED = "UPDATE_FAILED"
    DELETING = "DELETING"
    DELETED = "DELETED"
    IMPORTING = "IMPORTING"
    IMPORTED = "IMPORTED"
    IMPORT_FAILED = "IMPORT_FAILED"
    UNKNOWN = "UNKNOWN"


def _state(value: str | None) -> ImageSetState:
    return ImageSetState(value or "UNKNOWN")


def _status(value: str | None) -> WorkflowStatus:
    return WorkflowStatus(value or "UNKNOWN")


def _said(message: object) -> str | None:
    """A version's message (UPDATE_FAILED, COPY_FAILED) without anything that looks like
    a credential; PHI is masked where it is shown (``history --show-phi`` may show it)."""
    return redact(message) if isinstance(message, str) else None


@dataclass(frozen=True)
class ImageSetInfo:
    """GetImageSet: one image set at one version (the latest unless asked otherwise)."""

    image_set_id: str
    version_id: str
    state: ImageSetState
    workflow_status: WorkflowStatus
    is_primary: bool
    message: str | None
    forced: bool  # the version was made with force=true (overrides.forced)
    created_at: datetime | None
    updated_at: datetime | None
    arn: str | None = None  # imageSetArn (GetImageSet answers it; ListImageSetVersions not)

    @property
    def locked(self) -> bool:
        return self.state is ImageSetState.LOCKED

    @classmethod
    def from_wire(cls, data: wire.GetImageSetResponse) -> ImageSetInfo:
        return cls._from(data, data.get("imageSetWorkflowStatus"))

    @classmethod
    def _from(cls, data: Mapping[str, Any], workflow_status: str | None) -> Self:
        return cls(
            image_set_id=data.get("imageSetId", ""),
            version_id=data.get("versionId", ""),
            state=_state(data.get("imageSetState")),
            workflow_status=_status(workflow_status),
            is_primary=bool(data.get("isPrimary", False)),
            message=_said(data.get("message")),
            forced=bool(data.get("overrides", {}).get("forced", False)),
            created_at=data.get("createdAt"),
            updated_at=data.get("updatedAt"),
            arn=data.get("imageSetArn"),
        )


@dataclass(frozen=True)
class VersionInfo(ImageSetInfo):
    """One version as ListImageSetVersions lists it."""

    @classmethod
    def from_properties(cls, data: wire.ImageSetProperties) -> VersionInfo:
        # Capital I: this one operation spells the member differently.
        return cls._from(data, data.get("ImageSetWorkflowStatus"))


@dataclass(frozen=True)
class DatastoreInfo:
    """GetDatastore: a data store's identity. ``generation`` tells a data store from
    another re-created under the same ID (its ``createdAt``)."""

    datastore_id: str
    arn: str
    status: str
    created_at: datetime | None

    @property
    def generation(self) -> str:
        return self.created_at.isoformat() if self.created_at is not None else ""

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> DatastoreInfo:
        created = data.get("createdAt")
        return cls(
            datastore_id=str(data.get("datastoreId", "")),
            arn=str(data.get("datastoreArn", "")),
            status=str(data.get("datastoreStatus", "")),
            created_at=created if isinstance(created, datetime) else None,
        )


@dataclass(frozen=True)
class ImportJobInfo:
    """GetDICOMImportJob: when an import ran (the service's clock)."""

    job_id: str
    status: str
    submitted_at: datetime | None
    ended_at: datetime | None

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> ImportJobInfo:
        submitted, ended = data.get("submittedAt"), data.get("endedAt")
        return cls(
            job_id=str(data.get("jobId", "")),
            status=str(data.get("jobStatus", "")),
            submitted_at=submitted if isinstance(submitted, datetime) else None,
            ended_at=ended if isinstance(ended, datetime) else None,
        )


@dataclass(frozen=True)
class ImageSetSummary:
    """One SearchImageSets result: the latest version and the indexed DICOM tags."""

    image_set_id: str
    version_id: str
    is_primary: bool
    created_at: datetime | None
    updated_at: datetime | None
    dicom_tags: Mapping[str, str | int] = field(repr=False)  # PHI: kept out of logs

    @property
    def study_instance_uid(self) -> str | None:
        value = self.dicom_tags.get("DICOMStudyInstanceUID")
        return value if isinstance(value, str) else None

    @classmethod
    def from_wire(cls, data: wire.ImageSetsMetadataSummary) -> ImageSetSummary:
        tags: dict[str, str | int] = dict(data.get("DICOMTags", {}))  # type: ignore[arg-type]
        return cls(
            image_set_id=data.get("imageSetId", ""),
            version_id=str(data.get("version", "")),
            is_primary=bool(data.get("isPrimary", False)),
            created_at=data.get("createdAt"),
            updated_at=data.get("updatedAt"),
            dicom_tags=tags,
        )


@dataclass(frozen=True)
class UpdateResult:
    """What a write returned: the version it creates, usually still LOCKED."""

    image_set_id: str
    version_id: str  # the new latest version (the old one + 1)
    state: ImageSetState
    workflow_status: WorkflowStatus
    message: str | None = None
    arn: str | None = None  # imageSetArn, where the answer has it (CopyImageSet's)

    @classmethod
    def from_wire(
        cls, data: wire.UpdateImageSetMetadataResponse | wire.CopyImageSetProperties
    ) -> UpdateResult:
        arn = data.get("imageSetArn")
        return cls(
            image_set_id=data.get("imageSetId", ""),
            version_id=data.get("latestVersionId", ""),
            state=_state(data.get("imageSetState")),
            workflow_status=_status(data.get("imageSetWorkflowStatus")),
            message=_said(data.get("message")),
            arn=arn if isinstance(arn, str) else None,
        )


@dataclass(frozen=True)
class CopyResult:
    source: UpdateResult
    destination: UpdateResult  # destination.image_set_id is new unless one was given


@dataclass(frozen=True)
class DeleteResult:
    image_set_id: str
    state: ImageSetState  # LOCKED (DELETING) until the deletion settles
    workflow_status: WorkflowStatus

    @classmethod
    def from_wire(cls, data: wire.DeleteImageSetResponse) -> DeleteResult:
        return cls(
            image_set_id=data.get("imageSetId", ""),
            state=_state(data.get("imageSetState")),
            workflow_status=_status(data.get("imageSetWorkflowStatus")),
        )


# -- search --------------------------------------------------------------------------
SearchField = Literal[
    "DICOMPatientId",
    "DICOMAccessionNumber",
    "DICOMStudyId",
    "DICOMStudyInstanceUID",
    "DICOMSeriesInstanceUID",
    "DICOMStudyDateAndTime",
    "createdAt",
    "updatedAt",
    "isPrimary",
]
SEARCH_FIELDS: frozenset[str] = frozenset(get_args(SearchField))
RANGE_FIELDS = frozenset({"createdAt", "updatedAt", "DICOMStudyDateAndTime"})
SearchValue = str | bool | datetime


def _check_value(field: str, value: SearchValue) -> None:
    if field in ("createdAt", "updatedAt"):
        ok = isinstance(value, datetime)
        expected = "a datetime"
    elif field == "isPrimary":
        ok = isinstance(value, bool)
        expected = "a bool"
    elif field == "DICOMStudyDateAndTime":
        # YYYYMMDD, optionally followed by the time as DICOM writes it (hhmmss[.ffffff]).
        ok = isinstance(value, str) and len(value) >= 8 and value[:8].isdigit()
        expected = "a DICOM date YYYYMMDD, optionally followed by hhmmss"
    else:
        ok = isinstance(value, str) and bool(value)
        expected = "a non-empty string"
    if not ok:
        raise ValueError(f"search value for {field} must be {expected}, not {value!r}")


def _value_to_wire(field: str, value: SearchValue) -> dict[str, Any]:
    if field == "DICOMStudyDateAndTime":
        assert isinstance(value, str)
        both = {"DICOMStudyDate": value[:8]}
        if value[8:]:
            both["DICOMStudyTime"] = value[8:]
        return {field: both}
    return {field: value}


@dataclass(frozen=True)
class SearchFilter:
    """One SearchImageSets filter; build with :meth:`equal` or :meth:`between`."""

    field: SearchField
    operator: Literal["EQUAL", "BETWEEN"]
    values: tuple[SearchValue, ...]

    def __post_init__(self) -> None:
        if self.field not in SEARCH_FIELDS:
            raise ValueError(f"cannot search on {self.field!r}")
        if self.operator == "BETWEEN" and self.field not in RANGE_FIELDS:
            raise ValueError(f"BETWEEN works on {', '.join(sorted(RANGE_FIELDS))} only")
        if len(self.values) != (2 if self.operator == "BETWEEN" else 1):
            raise ValueError(f"{self.operator} takes {2 if self.operator == 'BETWEEN' else 1}")
        for value in self.values:
            _check_value(self.field, value)

    @classmethod
    def equal(cls, field: SearchField, value: SearchValue) -> SearchFilter:
        return cls(field, "EQUAL", (value,))

    @classmethod
    def between(cls, field: SearchField, low: SearchValue, high: SearchValue) -> SearchFilter:
        return cls(field, "BETWEEN", (low, high))

    def to_wire(self) -> wire.SearchFilter:
        return {
            "values": [_value_to_wire(self.field, v) for v in self.values],
            "operator": self.operator,
        }


equal = SearchFilter.equal
between = SearchFilter.between


@dataclass(frozen=True)
class Sort:
    field: Literal["updatedAt", "createdAt", "DICOMStudyDateAndTime"]
    order: Literal["ASC", "DESC"] = "ASC"

    def to_wire(self) -> wire.Sort:
        return {"sortField": self.field, "sortOrder": self.order}
