"""The service's payloads as boto3 sends and returns them (botocore's shapes, 2023-07-19).

Only the members the reconciler reads or writes. Timestamps arrive as timezone-aware
``datetime``s (botocore parses them); blobs go out as ``bytes`` (botocore base64-encodes).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict


class Overrides(TypedDict, total=False):
    forced: bool


class GetImageSetResponse(TypedDict, total=False):
    datastoreId: str
    imageSetId: str
    versionId: str
    imageSetState: str
    imageSetWorkflowStatus: str
    createdAt: datetime
    updatedAt: datetime
    deletedAt: datetime
    message: str
    imageSetArn: str
    overrides: Overrides
    isPrimary: bool


class ImageSetProperties(TypedDict, total=False):
    """One item of ListImageSetVersions; note ``ImageSetWorkflowStatus`` (capital I)."""

    imageSetId: str
    versionId: str
    imageSetState: str
    ImageSetWorkflowStatus: str
    createdAt: datetime
    updatedAt: datetime
    deletedAt: datetime
    message: str
    overrides: Overrides
    isPrimary: bool


class ListImageSetVersionsResponse(TypedDict, total=False):
    imageSetPropertiesList: list[ImageSetProperties]
    nextToken: str


class DicomTags(TypedDict, total=False):
    DICOMPatientId: str
    DICOMPatientName: str
    DICOMPatientBirthDate: str
    DICOMPatientSex: str
    DICOMStudyInstanceUID: str
    DICOMStudyId: str
    DICOMStudyDescription: str
    DICOMNumberOfStudyRelatedSeries: int
    DICOMNumberOfStudyRelatedInstances: int
    DICOMAccessionNumber: str
    DICOMSeriesInstanceUID: str
    DICOMSeriesModality: str
    DICOMSeriesBodyPart: str
    DICOMSeriesNumber: int
    DICOMStudyDate: str
    DICOMStudyTime: str


class ImageSetsMetadataSummary(TypedDict, total=False):
    imageSetId: str
    version: int  # an integer here, a string ("versionId") everywhere else
    createdAt: datetime
    updatedAt: datetime
    DICOMTags: DicomTags
    isPrimary: bool


class SearchFilter(TypedDict):
    values: list[dict[str, Any]]  # each sets exactly one SearchByAttributeValue member
    operator: str


class Sort(TypedDict):
    sortField: str
    sortOrder: str


class SearchCriteria(TypedDict, total=False):
    filters: list[SearchFilter]
    sort: Sort


class SearchImageSetsResponse(TypedDict, total=False):
    imageSetsMetadataSummaries: list[ImageSetsMetadataSummary]
    nextToken: str


class DICOMUpdates(TypedDict, total=False):
    updatableAttributes: bytes
    removableAttributes: bytes


class MetadataUpdates(TypedDict, total=False):
    """A union: exactly one member is set."""

    DICOMUpdates: DICOMUpdates
    revertToVersionId: str


class UpdateImageSetMetadataResponse(TypedDict, total=False):
    datastoreId: str
    imageSetId: str
    latestVersionId: str
    imageSetState: str
    imageSetWorkflowStatus: str
    createdAt: datetime
    updatedAt: datetime
    message: str


class CopyImageSetProperties(TypedDict, total=False):
    imageSetId: str
    latestVersionId: str
    imageSetState: str
    imageSetWorkflowStatus: str
    createdAt: datetime
    updatedAt: datetime
    imageSetArn: str


class CopyImageSetResponse(TypedDict, total=False):
    datastoreId: str
    sourceImageSetProperties: CopyImageSetProperties
    destinationImageSetProperties: CopyImageSetProperties


class DeleteImageSetResponse(TypedDict, total=False):
    datastoreId: str
    imageSetId: str
    imageSetState: str
    imageSetWorkflowStatus: str
