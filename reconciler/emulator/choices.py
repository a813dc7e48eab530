"""Every place where the local HealthImaging decides what the real service leaves unsaid.

AHI.md marks these *(choice)*. They live here, named, so that each can be changed in
one line when the real behaviour is confirmed; the "Documented choices" table of
docs/local-healthimaging.md mirrors this file.
"""

from __future__ import annotations

from reconciler.emulator import exceptions as exc

# A write whose latestVersion is not the image set's latest version.
STALE_VERSION_ERROR: type[exc.ServiceError] = exc.ConflictException

# A removal whose value does not match the stored one.
REMOVAL_MISMATCH_ERROR: type[exc.ServiceError] = exc.ValidationException

# Validation of an update's content happens synchronously (HTTP 400). An update fails
# asynchronously (the version is taken, the set ends ACTIVE/UPDATE_FAILED with a
# message) only when the resulting document would pass the per-image-set metadata
# limit, or when a fault is injected (faults.fail_updates).
MAX_METADATA_BYTES = 50 * 1024 * 1024

# "10 KB" payload quota of UpdateImageSetMetadata, counted over the decoded blobs.
DEFAULT_PAYLOAD_QUOTA_BYTES = 10 * 1024
# Going over the quota (but not the 30,000-byte model limit): HTTP 402.
PAYLOAD_QUOTA_ERROR: type[exc.ServiceError] = exc.ServiceQuotaExceededException

# `{"Study": {"Series": {"<uid>": {}}}}` in removableAttributes removes a whole series,
# like `{"Instances": {"<sop>": {}}}` removes an instance. Removing the last instance of
# an image set is refused. On a primary image set an instance is removed without force
# (AWS's examples send it so: aws-doc-sdk-examples, update-image-set-metadata.js and
# medical_imaging_basics.py, "remove_instance"); a whole series needs force there (no
# public source; the service refuses Series-level changes to primary image sets).
EMPTY_OBJECT_REMOVES = True

# A dictionary attribute counts as "multi-valued" (force-only) when its dictionary VM
# is not "1" (reconciler.dicom.rules.force_reason applies this).

# GetImageSetMetadata without versionId while the image set is LOCKED returns the
# newest settled version; the pending version's document is visible only once settled.
# Asking for the pending version explicitly is a ConflictException.

# Adding a private tag needs its VR in the instance's DICOMVRs of the same blob;
# updating an existing private tag may omit it. Removal with force removes the VR too.

# A forced call (force=true) marks the version it creates overrides.forced = true.

# SearchImageSets without an isPrimary filter returns primary and non-primary image
# sets alike; deleted image sets never. Default sort: updatedAt DESC, then imageSetId.
# BETWEEN is accepted on createdAt, updatedAt and DICOMStudyDateAndTime only.

# ListImageSetVersions lists versions newest first, as the service's CLI reference and SDK
# examples show; createdAt is the image set's creation time on every version and in every
# response (updatedAt is the version's own).

# After DeleteImageSet settles, GetImageSet answers imageSetState DELETED, workflow
# status DELETED and deletedAt (the model has all three, and AWS's Python example waits
# for imageSetState == "DELETED" after a delete); every other operation on that image
# set is ResourceNotFoundException and SearchImageSets no longer lists it. While it is
# DELETING, writes are ConflictException.

# TagResource/UntagResource/ListTagsForResource: tag keys must match the model's
# pattern (no "aws:" prefix); an ARN of another account is AccessDeniedException, of
# another region, data store or a deleted image set ResourceNotFoundException.

# CopyImageSet with promoteToPrimary while another primary image set of the same study
# exists in the same data store: ConflictException (primaries are per data store: a
# primary elsewhere in the account is no obstacle).
# A copy into an existing destination whose Patient, Study or Series values differ
# from the source needs force (then the source's values win); without it the call
# succeeds and the copy fails asynchronously, as the service does: the destination
# takes a version that ends COPY_FAILED with this message (the service's own wording
# for series, reported by users of its public examples), and keeps its document.
COPY_MISMATCH_MESSAGE = (
    "INVALID_REQUEST: {level} of SourceImageSet and DestinationImageSet don't match."
)

# Import: a study that matches an existing primary image set (same StudyInstanceUID)
# and agrees with its Patient/Study/Series-level values is merged into it as a new
# version; one that conflicts becomes a new non-primary image set.

# Model validation (patterns, lengths, ranges, enums, required members) is answered in
# the service's words: "1 validation error detected: Value 'X' at 'datastoreId' failed to
# satisfy constraint: Member must satisfy regular expression pattern: [0-9a-z]{32}"
# (asserted verbatim by AWS's get-datastore.integration.test.js). Where no public source
# shows the wording, AWS's general request-validation wording is followed: every
# violation listed, "; "-joined; list items "<list>.<n>.member" (1-based), map keys
# "Map keys must satisfy constraint: [...]" (protocol.py).

# Import jobs read and write local folders, or s3:// URIs of the S3 started beside the
# emulator (s3.py, `emulator serve --s3`): shapes whose service pattern demands an s3://
# URI accept a path or file:// URI too (imports.local_path refuses s3:// without S3).
LOCAL_URI_SHAPES = frozenset({"S3Uri"})

# Requests must carry a SigV4 Authorization header (AccessDeniedException otherwise);
# the signature itself is not verified. The account of every ARN is LOCAL_ACCOUNT.
LOCAL_ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"

# STS GetCallerIdentity (sts.py) answers on the same port: the caller is an IAM user of
# LOCAL_ACCOUNT named for the access key it signed with (arn:aws:iam::<account>:user/<key>),
# UserId "AIDA" + 17 characters derived from the key (the shape IAM gives a user's ID;
# source: the STS API reference's GetCallerIdentity examples).

# Timestamps are whole milliseconds (the service's three decimals), cut at the clock so
# a time a client reads back compares equal in a later BETWEEN filter.

# Storage tiers (the developer guide's "Understanding storage tiers"): an image set is
# FREQUENT_ACCESS after a touch and ARCHIVE_INSTANT_ACCESS after 30 days without one;
# touches are its creation (import, copy), an update, a copy (source and destination)
# and a read of its metadata or frames. lastAccessedAt is the last touch (creation
# until then). Reads record a touch at most once a second per image set.

# includeStudyImageSets: the image set asked for shows UPDATING while LOCKED, the other
# primary image sets of its study UPDATING_FOR_STUDY_CONSISTENCY (a status of the
# model's ImageSetWorkflowStatus no public page explains); all end UPDATED.

# CreateDatastore keeps kmsKeyArn, lambdaAuthorizerArn and losslessStorageFormat and
# reports them (HTJ2K when not given). Frames the service transcodes are kept in the
# data store's format: StoredTransferSyntaxUID 1.2.840.10008.1.2.4.202 (HTJ2K) or
# .4.90 (JPEG_2000_LOSSLESS) on every instance with frames, GetImageFrame answers
# image/jph or image/j2c (developer guide, "Supported transfer syntaxes"). 1-bit frames
# (binary segmentations) are kept as Explicit VR Little Endian and answered as
# application/octet-stream (same page). Compressed syntaxes the service transcodes
# (JPEG extended and lossless, JPEG-LS, JPEG 2000 lossless) are decoded at import
# (needs healthimaging-reconciler[frames]); RLE is not, and GetImageFrame says so.

# StartDICOMImportJob: importConfiguration is kept and reported by GetDICOMImportJob;
# its DICOM JSON metadata files are laid over the mapped study or series as an import
# places attributes (dicom_import/json_metadata.py; the API reference says only that
# it "enhances existing DICOM files with JSON metadata"). inputOwnerAccountId other
# than LOCAL_ACCOUNT fails the job with "Access Denied" (S3's expected-bucket-owner).

# Throttling quotas per operation: the published profiles of quota_profiles.py (source:
# the developer guide's throttling-limits page), "fast-updates" unless configured: the
# page's newest text (its Markdown source: UpdateImageSetMetadata 10/s burst 40,
# StartDICOMImportJob 40/s burst 80); "standard" is its HTML rendering (every image-set
# write 0.25/s burst 1). Rows the newer text does not change keep the older values.

# -- DICOMweb (dicomweb/; docs/dicomweb.md) --------------------------------------------
# Sources: the developer guide's DICOMweb chapter, https://docs.aws.amazon.com/
# healthimaging/latest/devguide/using-dicomweb.html and its pages dicomweb-search*.html,
# dicomweb-retrieve*.html, dicomweb-storing.html; DICOM PS3.18 where AHI is silent.
# The paths are AHI's, below /datastore/{datastoreId}, on the emulator's own port (AHI:
# the host dicom-medical-imaging.REGION.amazonaws.com), signed like every call.

# QIDO-RS search keys per level, as the search pages list them. The series level
# accepts the study keys too at both /studies/{uid}/series and /series (the all-series
# page lists them; the study-series page lists only Modality and SeriesInstanceUID).
# Any other key is a ValidationException naming the accepted ones, never ignored.
DICOMWEB_STUDY_KEYS = (
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ModalitiesInStudy",
    "ReferringPhysicianName",
    "StudyDescription",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientBirthTime",
    "StudyInstanceUID",
    "StudyID",
)
DICOMWEB_SERIES_KEYS = (
    *DICOMWEB_STUDY_KEYS,
    "Modality",
    "SeriesInstanceUID",
    "SeriesNumber",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
)
DICOMWEB_INSTANCE_KEYS = (*DICOMWEB_SERIES_KEYS, "SOPClassUID", "SOPInstanceUID")
# Paging (the search page): limit defaults to and is capped at 1000 (a larger limit is
# cut to 1000 with PS3.18's Warning header), offset at most 1,000,000, and no search
# reaches past its 10,000th record. At most 50 includefield values.
DICOMWEB_MAX_LIMIT = 1000
DICOMWEB_MAX_OFFSET = 1_000_000
DICOMWEB_MAX_RESULTS = 10_000
DICOMWEB_MAX_INCLUDEFIELDS = 50
# Matching: PN values match case-insensitively (wildcards too); every other VR exactly.
# An includefield of a sequence's sub-attribute (00080096.00080100) returns the whole
# sequence. Results carry PS3.18's default attributes of their level plus the level's
# search keys; a relational search (/series, /instances, /studies/{uid}/instances) also
# the study's (and series') defaults. Order: studies newest update first, series by
# SeriesNumber, instances by InstanceNumber, a study's instances newest update first
# (the search pages' orders).

# WADO-RS metadata's TransferSyntaxUID is the syntax the local service keeps the frames
# in: Explicit VR Little Endian for native pixel data (the service says its stored
# syntax, HTJ2K), else the file's encapsulated syntax. Nothing is transcoded: a syntax
# other than that one (or "*") is 406 NotAcceptableException, which the frames page
# names for a syntax that "cannot be returned based on the stored transfer syntax".
# GetDICOMInstance answers a bare application/dicom body (AHI's example asks for one)
# unless multipart/related; type="application/dicom" is asked for; series metadata
# lists instances by InstanceNumber.

# STOW-RS: multipart/related; type="application/dicom" or one application/dicom body
# (AHI's curl example). A body of at most this many bytes is read (AHI: 1 GB); chunked
# transfer coding is accepted. Status 200 all stored, 202 some, 409 none (PS3.18
# Table 10.5.3-1). Failure Reason: 0xC000 for a part the import cannot read; for an
# instance of another study than StoreDICOMStudy's path this value (in PS3.18's A9xx
# range, the code Microsoft's DICOM service conformance statement gives for it).
DICOMWEB_MAX_STORE_BYTES = 128 * 1024 * 1024
DICOMWEB_STUDY_MISMATCH_REASON = 43265

# Quotas: GetDICOMInstance, GetDICOMInstanceMetadata, GetDICOMInstanceFrames and
# GetDICOMSeriesMetadata are on the throttling page (quota_profiles); the search and
# store actions are not, and take the fallback quota.
