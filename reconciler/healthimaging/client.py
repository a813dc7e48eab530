"""The typed HealthImaging client: the one place where boto3 is called.

:func:`make_boto3_client` builds the boto3 client for an :class:`~reconciler.config.Endpoint`;
:class:`HealthImaging` wraps it in typed calls. Every call goes through
:meth:`HealthImaging._call`, which waits for the client-side rate limiter and turns
botocore's exceptions into :mod:`reconciler.healthimaging.errors`.

Retries are botocore's, in *adaptive* mode: standard retries (5xx, throttling,
connection errors, exponential backoff with jitter) plus a client-side rate that backs
off when the service throttles. Retrying a write is safe here: every update is pinned
to ``latestVersion``, so a retry of an update that did land fails with a
:class:`VersionConflict` instead of applying twice (the caller re-reads the image set).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, cast

import boto3
import botocore.session
from botocore import xform_name
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from reconciler.config import Endpoint
from reconciler.healthimaging import backoff, metadata, wire
from reconciler.healthimaging.errors import ImageSetNotFound, LockTimeout, ServiceError, map_error
from reconciler.healthimaging.models import (
    CopyResult,
    DeleteResult,
    ImageSetInfo,
    ImageSetState,
    ImageSetSummary,
    SearchFilter,
    Sort,
    UpdateResult,
    VersionInfo,
)
from reconciler.healthimaging.pacing import RateLimiter
from reconciler.version import __version__

log = logging.getLogger("reconciler.healthimaging")

SERVICE = "medical-imaging"
DEFAULT_MAX_ATTEMPTS = 5  # the first try and four retries
CONNECT_TIMEOUT = 5.0  # seconds: an endpoint that does not accept a connection by then is down
READ_TIMEOUT = 60.0  # seconds between bytes; a 50 MB metadata body streams well within it
PAGE_SIZE = 50  # the service's maximum for ListImageSetVersions and SearchImageSets
CUSTOM_ENDPOINT_REGION = "us-east-1"  # SigV4 needs a region even when the URL fixes the host

# The local HealthImaging only checks that service calls are signed, so any key will do;
# these are also its default admin key (reconciler/emulator/config.py, same values).
# They are not secrets: they let a machine with no AWS configuration run --local.
LOCAL_ACCESS_KEY = "reconciler-local"
LOCAL_SECRET_KEY = "reconciler-local-not-a-secret"


def region_from_environment(environ: Mapping[str, str] | None = None) -> str | None:
    """``AWS_REGION``, else ``AWS_DEFAULT_REGION``, as the AWS SDKs and CLI v2 read them
    (boto3 alone reads only ``AWS_DEFAULT_REGION``; CI runners and the recipes set
    ``AWS_REGION``)."""
    env = os.environ if environ is None else environ
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def make_boto3_client(
    endpoint: Endpoint,
    region: str | None = None,
    profile: str | None = None,
    *,
    max_pool: int = 10,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    connect_timeout: float = CONNECT_TIMEOUT,
    read_timeout: float = READ_TIMEOUT,
) -> Any:
    """A boto3 ``medical-imaging`` client for ``endpoint``.

    ``aws``: the standard credential chain (``profile`` if given) and region chain.
    ``local``: always the fixed local keys (real credentials never go to the emulator).
    ``url``: the credential chain, or the local keys when it finds nothing.
    Custom endpoints turn host-prefix injection off: botocore would otherwise send
    runtime calls to ``runtime-<host>`` (AHI.md).
    """
    custom = endpoint.kind != "aws"
    if custom and not endpoint.url:
        raise ValueError(f"the {endpoint.kind} endpoint has no URL yet")
    config = Config(
        retries={"mode": "adaptive", "total_max_attempts": max_attempts},
        max_pool_connections=max_pool,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        user_agent_extra=f"reconciler/{__version__}",
        inject_host_prefix=not custom,
    )
    try:
        if endpoint.kind == "local":
            session = _isolated_session()
            keys = _local_keys()
        else:
            session = boto3.session.Session(profile_name=profile)
            keys = _local_keys() if custom and session.get_credentials() is None else {}
        region = (
            region
            or (None if endpoint.kind == "local" else region_from_environment())
            or session.region_name
            or (CUSTOM_ENDPOINT_REGION if custom else None)
        )
        return session.client(
            SERVICE, endpoint_url=endpoint.url, region_name=region, config=config, **keys
        )
    except BotoCoreError as exc:  # ProfileNotFound, NoRegionError, a broken config file
        raise map_error(exc, "connect") from exc


def _isolated_session() -> Any:
    """A session that reads no AWS configuration at all.

    The local HealthImaging needs none, and a profile named in reconciler.yaml, a stray
    AWS_PROFILE or a broken ~/.aws/config must not stop ``--local`` from working.
    """
    core = botocore.session.Session(
        session_vars={
            "profile": (None, None, None, None),
            "config_file": (None, None, os.devnull, None),
            "credentials_file": (None, None, os.devnull, None),
        }
    )
    return boto3.session.Session(botocore_session=core)


def _local_keys() -> dict[str, str]:
    return {"aws_access_key_id": LOCAL_ACCESS_KEY, "aws_secret_access_key": LOCAL_SECRET_KEY}


class HealthImaging:
    """Typed calls to one HealthImaging endpoint; safe to share between threads.

    ``limiter`` paces requests per operation; by default at the service's quotas.
    """

    def __init__(
        self,
        boto_client: Any,
        *,
        limiter: RateLimiter | None = None,
        max_metadata_bytes: int = metadata.MAX_METADATA_BYTES,
    ) -> None:
        self._boto = boto_client
        self._limiter = limiter if limiter is not None else RateLimiter.for_service()
        self._max_metadata_bytes = max_metadata_bytes
        self._calls: Counter[str] = Counter()
        self._calls_lock = threading.Lock()

    @property
    def limiter(self) -> RateLimiter:
        return self._limiter

    @property
    def calls(self) -> dict[str, int]:
        """Requests sent so far, per operation (retries inside botocore count once):
        the cost that matters at HealthImaging's quotas, shown by benchmarks and tests."""
        with self._calls_lock:
            return dict(self._calls)

    def _call(self, operation: str, image_set_id: str | None, **kwargs: Any) -> Any:
        """Send one request (after the rate limiter allows it); errors become ours."""
        method = getattr(self._boto, xform_name(operation))
        waited = self._limiter.acquire(operation)
        with self._calls_lock:
            self._calls[operation] += 1
        if waited:
            log.debug("paced %s for %.2fs", operation, waited)
        try:
            return method(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise map_error(exc, operation, image_set_id) from exc

    def _pages(self, operation: str, image_set_id: str | None, **kwargs: Any) -> Iterator[Any]:
        """Every page of a ``nextToken`` listing, each page fetched only when needed."""
        seen: set[str] = set()
        while True:
            page = self._call(operation, image_set_id, **kwargs)
            yield page
            token = page.get("nextToken")
            if not token:
                return
            if token in seen:  # a service bug must not become an endless loop
                raise ServiceError(
                    f"{operation}: the service returned the same page token twice",
                    code="PaginationLoop",
                    operation=operation,
                    image_set_id=image_set_id,
                )
            seen.add(token)
            kwargs["nextToken"] = token

    # -- reads -------------------------------------------------------------------------
    def get_image_set(
        self, datastore_id: str, image_set_id: str, version_id: str | None = None
    ) -> ImageSetInfo:
        kwargs = {"versionId": version_id} if version_id else {}
        response = self._call(
            "GetImageSet", image_set_id, datastoreId=datastore_id, imageSetId=image_set_id, **kwargs
        )
        info = ImageSetInfo.from_wire(cast(wire.GetImageSetResponse, response))
        if info.state is ImageSetState.DELETED:  # the model's DELETED state: gone all the same
            raise ImageSetNotFound(
                f"image set {image_set_id} was deleted",
                code="ResourceNotFoundException",
                operation="GetImageSet",
                image_set_id=image_set_id,
            )
        return info

    def get_metadata_raw(
        self, datastore_id: str, image_set_id: str, version_id: str | None
    ) -> bytes:
        """The metadata document of a version as JSON bytes, decompressed."""
        operation = "GetImageSetMetadata"
        kwargs = {"versionId": version_id} if version_id else {}
        response = self._call(
            operation, image_set_id, datastoreId=datastore_id, imageSetId=image_set_id, **kwargs
        )
        body = response["imageSetMetadataBlob"]
        gzipped = str(response.get("contentEncoding") or "").lower() == "gzip"
        try:
            return metadata.read_body(body, gzipped=gzipped, limit=self._max_metadata_bytes)
        except BotoCoreError as exc:  # the connection broke or timed out mid-body
            raise map_error(exc, operation, image_set_id) from exc
        except (zlib.error, EOFError, metadata.MetadataTooLarge) as exc:
            raise ServiceError(
                f"{operation} of image set {image_set_id}: unreadable metadata ({exc})",
                code="BadMetadata",
                operation=operation,
                image_set_id=image_set_id,
            ) from exc
        finally:
            body.close()

    def get_metadata(
        self, datastore_id: str, image_set_id: str, version_id: str | None
    ) -> dict[str, Any]:
        """The metadata document of a version, parsed."""
        raw = self.get_metadata_raw(datastore_id, image_set_id, version_id)
        try:
            return metadata.parse(raw)
        except ValueError as exc:
            raise ServiceError(
                f"GetImageSetMetadata of image set {image_set_id}: the metadata is not "
                f"a JSON object ({type(exc).__name__})",
                code="BadMetadata",
                operation="GetImageSetMetadata",
                image_set_id=image_set_id,
            ) from exc

    def list_datastores(self) -> Iterator[tuple[str, str, str]]:
        """Every data store of the account and region: (ID, name, status)."""
        for page in self._pages("ListDatastores", None, maxResults=PAGE_SIZE):
            for item in page.get("datastoreSummaries", []):
                yield (str(item["datastoreId"]), str(item.get("datastoreName", "")),
                       str(item.get("datastoreStatus", "")))  # fmt: skip

    def list_versions(self, datastore_id: str, image_set_id: str) -> Iterator[VersionInfo]:
        """Every version of an image set, across all pages."""
        for page in self._pages(
            "ListImageSetVersions",
            image_set_id,
            datastoreId=datastore_id,
            imageSetId=image_set_id,
            maxResults=PAGE_SIZE,
        ):
            for item in cast(wire.ListImageSetVersionsResponse, page).get(
                "imageSetPropertiesList", []
            ):
                yield VersionInfo.from_properties(item)

    def search(
        self,
        datastore_id: str,
        filters: Sequence[SearchFilter] = (),
        sort: Sort | None = None,
    ) -> Iterator[ImageSetSummary]:
        """Every image set matching ``filters`` (at most 2), 50 per request."""
        criteria: wire.SearchCriteria = {}
        if filters:
            criteria["filters"] = [f.to_wire() for f in filters]
        if sort is not None:
            criteria["sort"] = sort.to_wire()
        kwargs: dict[str, Any] = {"datastoreId": datastore_id, "maxResults": PAGE_SIZE}
        if criteria:
            kwargs["searchCriteria"] = criteria
        for page in self._pages("SearchImageSets", None, **kwargs):
            for item in cast(wire.SearchImageSetsResponse, page).get(
                "imageSetsMetadataSummaries", []
            ):
                yield ImageSetSummary.from_wire(item)

    # -- writes ------------------------------------------------------------------------
    def update_metadata(
        self,
        datastore_id: str,
        image_set_id: str,
        latest_version: str,
        *,
        updatable: bytes | None,
        removable: bytes | None,
        force: bool = False,
        include_study: bool = False,
    ) -> UpdateResult:
        """One UpdateImageSetMetadata with DICOMUpdates; returns the new version (LOCKED)."""
        updates: wire.DICOMUpdates = {}
        if updatable is not None:
            updates["updatableAttributes"] = updatable
        if removable is not None:
            updates["removableAttributes"] = removable
        if not updates:
            raise ValueError("an update needs updatable or removable attributes")
        return self._update(
            datastore_id, image_set_id, latest_version, {"DICOMUpdates": updates},
            force=force, include_study=include_study,
        )  # fmt: skip

    def revert(
        self, datastore_id: str, image_set_id: str, latest_version: str, to_version: str
    ) -> UpdateResult:
        """A new version whose metadata equals ``to_version``'s."""
        return self._update(
            datastore_id, image_set_id, latest_version, {"revertToVersionId": to_version}
        )

    def _update(
        self,
        datastore_id: str,
        image_set_id: str,
        latest_version: str,
        updates: wire.MetadataUpdates,
        *,
        force: bool = False,
        include_study: bool = False,
    ) -> UpdateResult:
        # Optional flags only when set: older botocore models lack includeStudyImageSets.
        flags: dict[str, bool] = {}
        if force:
            flags["force"] = True
        if include_study:
            flags["includeStudyImageSets"] = True
        response = self._call(
            "UpdateImageSetMetadata",
            image_set_id,
            datastoreId=datastore_id,
            imageSetId=image_set_id,
            latestVersionId=latest_version,
            updateImageSetMetadataUpdates=updates,
            **flags,
        )
        return UpdateResult.from_wire(cast(wire.UpdateImageSetMetadataResponse, response))

    def copy_image_set(
        self,
        datastore_id: str,
        source_image_set_id: str,
        source_version: str,
        *,
        destination_image_set_id: str | None = None,
        destination_version: str | None = None,
        copiable_attributes: str | None = None,
        force: bool = False,
        promote_to_primary: bool = False,
    ) -> CopyResult:
        """CopyImageSet: to a new image set, or into ``destination_image_set_id``."""
        source: dict[str, Any] = {"latestVersionId": source_version}
        if copiable_attributes is not None:
            source["DICOMCopies"] = {"copiableAttributes": copiable_attributes}
        information: dict[str, Any] = {"sourceImageSet": source}
        if destination_image_set_id is not None:
            if destination_version is None:
                raise ValueError("copying into an image set needs its latest version")
            information["destinationImageSet"] = {
                "imageSetId": destination_image_set_id,
                "latestVersionId": destination_version,
            }
        flags: dict[str, bool] = {}
        if force:
            flags["force"] = True
        if promote_to_primary:
            flags["promoteToPrimary"] = True
        response = cast(
            wire.CopyImageSetResponse,
            self._call(
                "CopyImageSet",
                source_image_set_id,
                datastoreId=datastore_id,
                sourceImageSetId=source_image_set_id,
                copyImageSetInformation=information,
                **flags,
            ),
        )
        return CopyResult(
            source=UpdateResult.from_wire(response.get("sourceImageSetProperties", {})),
            destination=UpdateResult.from_wire(response.get("destinationImageSetProperties", {})),
        )

    def delete_image_set(self, datastore_id: str, image_set_id: str) -> DeleteResult:
        response = cast(
            wire.DeleteImageSetResponse,
            self._call(
                "DeleteImageSet", image_set_id, datastoreId=datastore_id, imageSetId=image_set_id
            ),
        )
        return DeleteResult.from_wire(response)

    # -- waiting -----------------------------------------------------------------------
    def wait_until_settled(
        self,
        datastore_id: str,
        image_set_id: str,
        timeout: float,
        *,
        initial: float = 0.2,
        maximum: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> ImageSetInfo:
        """Poll GetImageSet until the image set is no longer LOCKED.

        Waits ``initial`` seconds, doubling up to ``maximum`` (with jitter), and never
        past the deadline: the last poll happens at ``timeout``, then
        :class:`LockTimeout`. Returns the settled state, which may be UPDATE_FAILED —
        deciding what that means is the caller's business. After a DeleteImageSet the
        image set is gone once settled: that poll raises :class:`ImageSetNotFound`.
        """
        deadline = clock() + timeout
        for delay in backoff.delays(initial, maximum):
            info = self.get_image_set(datastore_id, image_set_id)
            if not info.locked:
                return info
            remaining = deadline - clock()
            if remaining <= 0:
                raise LockTimeout(
                    f"image set {image_set_id} is still LOCKED ({info.workflow_status.value}) "
                    f"after {timeout:g} s; wait and run again, or raise lockTimeoutSeconds "
                    "in reconciler.yaml",
                    code="LockTimeout",
                    operation="GetImageSet",
                    image_set_id=image_set_id,
                )
            sleep(min(delay, remaining))
        raise AssertionError("unreachable: backoff.delays never ends")  # pragma: no cover
