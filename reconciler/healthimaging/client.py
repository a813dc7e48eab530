"""The typed HealthImaging client: the one place where boto3 is called.

:func:`make_boto3_client` builds the boto3 client for an :class:`~reconciler.config.Endpoint`;
:class:`HealthImaging` wraps it in typed calls. Every call goes through
:meth:`HealthImaging._call`, which waits for the client-side rate limiter and turns
botocore's exceptions into :mod:`reconciler.healthimaging.errors`.

Retries are ours, not botocore's (its retry loop is off): every attempt, first or
retried, waits for a slot from the pacer (:mod:`.pacing`), so a retry never takes the
slot meant for the next request, and a 429 slows the whole client down instead of one
thread. A 429 is retried until the pacer's back-off gets the call through (up to
:data:`MAX_THROTTLED_ATTEMPTS`); 5xx answers, read timeouts and failed connections
are retried up to ``max_attempts`` with exponential back-off and jitter. Retrying a
write is safe here: every update is pinned to ``latestVersion``, so a retry of an
update that did land fails with a :class:`VersionConflict` instead of applying twice
(the caller re-reads the image set).
"""

from __future__ import annotations

import logging
import os
import random
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
from reconciler.errors import Interrupted, ReconcilerError
from reconciler.healthimaging import backoff, metadata, wire
from reconciler.healthimaging.clock import ServiceClock
from reconciler.healthimaging.errors import (
    EndpointUnreachable,
    ImageSetNotFound,
    LockTimeout,
    ServiceError,
    ServiceUnavailable,
    Throttled,
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
    ImportJobInfo,
    SearchFilter,
    Sort,
    UpdateResult,
    VersionInfo,
)
from reconciler.healthimaging.pacing import RateLimiter
from reconciler.jsonsafe import TooDeep
from reconciler.version import __version__

log = logging.getLogger("reconciler.healthimaging")

SERVICE = "medical-imaging"
DEFAULT_MAX_ATTEMPTS = 5  # the first try and four retries (errors other than 429)
MAX_THROTTLED_ATTEMPTS = 25  # 429s in a row for one call before it gives up
RETRY_BASE = 0.5  # seconds: the first retry's back-off (then doubling, full jitter)
RETRY_CAP = 20.0
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


def resolved_region(region: str | None, profile: str | None) -> str | None:
    """The region a client for AWS would use: ``region``, else the environment's, else
    the profile's (None when none is set)."""
    if region or region_from_environment():
        return region or region_from_environment()
    try:
        found = boto3.session.Session(profile_name=profile).region_name
    except BotoCoreError:
        return None
    return found if isinstance(found, str) else None


def make_boto3_client(
    endpoint: Endpoint,
    region: str | None = None,
    profile: str | None = None,
    *,
    max_pool: int = 10,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    connect_timeout: float = CONNECT_TIMEOUT,
    read_timeout: float = READ_TIMEOUT,
    service: str = SERVICE,
) -> Any:
    """A boto3 ``medical-imaging`` client for ``endpoint`` (or another ``service`` the
    same endpoint answers: the local HealthImaging also serves Service Quotas).

    ``aws``: the standard credential chain (``profile`` if given) and region chain.
    ``local``: always the fixed local keys (real credentials never go to the emulator).
    ``url``: the credential chain, or the local keys when it finds nothing.
    Custom endpoints turn host-prefix injection off: botocore would otherwise send
    runtime calls to ``runtime-<host>`` (AHI.md).
    """
    custom = endpoint.kind != "aws"
    if custom and not endpoint.url:
        raise ValueError(f"the {endpoint.kind} endpoint has no URL yet")
    # Against aws, botocore's default holds, so the standard AWS settings apply as in any
    # SDK: AWS_ENDPOINT_URL_MEDICAL_IMAGING with AWS_DISABLE_HOST_PREFIX_INJECTION (or
    # their config-file keys) reach HealthImaging through an endpoint of your own.
    prefix = {"inject_host_prefix": False} if custom else {}
    config = Config(
        # One attempt per botocore call: HealthImaging._call retries through the pacer.
        retries={"mode": "standard", "total_max_attempts": 1},
        max_pool_connections=max_pool,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        user_agent_extra=f"reconciler/{__version__}",
        **prefix,
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
        client = session.client(
            service, endpoint_url=endpoint.url, region_name=region, config=config, **keys
        )
    except BotoCoreError as exc:  # ProfileNotFound, NoRegionError, a broken config file
        raise map_error(exc, "connect") from exc
    # Read by HealthImaging: how many attempts our own retry loop makes.
    client._reconciler_max_attempts = max(1, max_attempts)
    return client


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
        max_attempts: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._boto = boto_client
        self._limiter = limiter if limiter is not None else RateLimiter.for_service()
        self._max_metadata_bytes = max_metadata_bytes
        # A client from make_boto3_client says how many attempts it wants; another
        # client keeps its own botocore retries, so ours make one attempt.
        self._max_attempts: int = max_attempts or int(
            getattr(boto_client, "_reconciler_max_attempts", 1)
        )
        self._sleep = sleep
        self._calls: Counter[str] = Counter()
        self._calls_lock = threading.Lock()
        self._settle = _SettleEstimate()
        self._written: dict[str, None] = {}  # image sets our last write left LOCKED
        self.service_clock = ServiceClock()  # the service's time, from its answers
        self.endpoint: Endpoint | None = None  # where it talks to (set by its maker)

    @property
    def limiter(self) -> RateLimiter:
        return self._limiter

    @property
    def calls(self) -> dict[str, int]:
        """Requests sent so far, per operation, every attempt counted: the cost that
        matters at HealthImaging's quotas, shown by benchmarks and tests."""
        with self._calls_lock:
            return dict(self._calls)

    def _call(self, operation: str, image_set_id: str | None, **kwargs: Any) -> Any:
        """Send one request, every attempt paced; retried as the module docstring says;
        errors become ours."""
        return self._send(operation, image_set_id, kwargs)

    def _send(
        self,
        operation: str,
        image_set_id: str | None,
        kwargs: dict[str, Any],
        before: Callable[[], None] | None = None,
    ) -> Any:
        """:meth:`_call`; ``before`` runs once the pacer has granted an attempt its slot
        and right before the attempt is sent (a check that must hold when the request
        leaves, with no wait for the pacer after it); what it raises ends the call."""
        method = getattr(self._boto, xform_name(operation))
        failures = throttles = 0
        started = time.monotonic()
        last: ReconcilerError | None = None
        while True:
            try:
                ticket = self._limiter.acquire(operation)
            except Interrupted:
                # Stopped before a retry: a 429 was refused, so nothing was sent; an
                # attempt that failed otherwise may have landed, and says so.
                if isinstance(last, ServiceError) and not isinstance(last, Throttled):
                    raise _with_attempts(last, failures) from None
                raise
            if before is not None:
                before()
            with self._calls_lock:
                self._calls[operation] += 1
            try:
                response = method(**kwargs)
            except (ClientError, BotoCoreError) as exc:
                error = last = map_error(exc, operation, image_set_id)
                if isinstance(error, Throttled):
                    throttles += 1
                    wait = self._limiter.throttled(ticket)
                    if throttles >= MAX_THROTTLED_ATTEMPTS:
                        raise self._still_throttled(error, throttles, started) from exc
                    log.debug("%s throttled; retrying in about %.2fs", operation, wait)
                    if not ticket.rate:  # not paced: the pacer did not back off for us
                        self._sleep(_jittered(throttles))
                    continue
                if isinstance(error, (ServiceUnavailable, EndpointUnreachable)):
                    failures += 1
                    if failures < self._max_attempts:
                        self._sleep(_jittered(failures))
                        continue
                    raise _with_attempts(error, failures) from exc
                raise error from exc
            self._limiter.accepted(ticket)
            headers = (response.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
            self.service_clock.observe(headers.get("date"))
            return response

    def _still_throttled(self, error: ServiceError, attempts: int, started: float) -> Throttled:
        rate = self._limiter.rate(error.operation or "")
        paced = f", though this client paced it at {rate:.3g}/s" if rate else ""
        subject = error.operation or "a request"
        if error.image_set_id:
            subject += f" of image set {error.image_set_id}"
        return Throttled(
            f"{subject}: still throttled after {attempts} attempts over "
            f"{time.monotonic() - started:.0f} s"
            f"{paced}; something else is using this account's quota in the region (another "
            "run or tool): run again later, or set rateLimits in reconciler.yaml lower",
            code=error.code,
            operation=error.operation,
            image_set_id=error.image_set_id,
        )

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
            why = (
                str(exc)
                if isinstance(exc, TooDeep)
                else f"not a JSON object ({type(exc).__name__})"
            )
            raise ServiceError(
                f"GetImageSetMetadata of image set {image_set_id}: the metadata cannot be "
                f"read: {why}",
                code="BadMetadata",
                operation="GetImageSetMetadata",
                image_set_id=image_set_id,
            ) from exc

    def get_datastore(self, datastore_id: str) -> DatastoreInfo:
        """A data store's ARN and when it was created (a data store re-created under the
        same ID is another one)."""
        answer = self._call("GetDatastore", None, datastoreId=datastore_id)
        return DatastoreInfo.from_wire(answer.get("datastoreProperties") or {})

    def get_import_job(self, datastore_id: str, job_id: str) -> ImportJobInfo:
        """When an import job was submitted and ended (GetDICOMImportJob)."""
        answer = self._call("GetDICOMImportJob", None, datastoreId=datastore_id, jobId=job_id)
        return ImportJobInfo.from_wire(answer.get("jobProperties") or {})

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
        for page, _ in self.search_pages(datastore_id, filters, sort):
            yield from page

    def search_pages(
        self,
        datastore_id: str,
        filters: Sequence[SearchFilter] = (),
        sort: Sort | None = None,
    ) -> Iterator[tuple[list[ImageSetSummary], bool]]:
        """The same, one list per request (each fetched only when asked for), so a
        caller can act on a page while the next is still to come; with each, whether
        more pages follow."""
        criteria: wire.SearchCriteria = {}
        if filters:
            criteria["filters"] = [f.to_wire() for f in filters]
        if sort is not None:
            criteria["sort"] = sort.to_wire()
        kwargs: dict[str, Any] = {"datastoreId": datastore_id, "maxResults": PAGE_SIZE}
        if criteria:
            kwargs["searchCriteria"] = criteria
        for page in self._pages("SearchImageSets", None, **kwargs):
            items = cast(wire.SearchImageSetsResponse, page).get("imageSetsMetadataSummaries", [])
            yield [ImageSetSummary.from_wire(item) for item in items], bool(page.get("nextToken"))

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
        response = cast(wire.UpdateImageSetMetadataResponse, self._call(
            "UpdateImageSetMetadata",
            image_set_id,
            datastoreId=datastore_id,
            imageSetId=image_set_id,
            latestVersionId=latest_version,
            updateImageSetMetadataUpdates=updates,
            **flags,
        ))  # fmt: skip
        self._remember_write(image_set_id, response.get("imageSetState"))
        return UpdateResult.from_wire(response)

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

    def delete_image_set(
        self, datastore_id: str, image_set_id: str, *, at_version: str | None = None
    ) -> DeleteResult:
        """DeleteImageSet. The service takes no version pin; ``at_version`` is the
        nearest the client can come: right before each attempt is sent (its slot from
        the pacer already granted, so nothing waits in between), GetImageSet must show
        the image set settled at that version, else :class:`VersionMoved` and nothing
        is sent. A write that lands and settles between that read and the delete's
        arrival is still deleted with it (RELIABILITY.md measures the window); one
        still LOCKED then makes the service refuse the delete (ConflictException)."""

        def unmoved() -> None:
            if at_version is None:
                return
            info = self.get_image_set(datastore_id, image_set_id)
            if info.locked or info.version_id != at_version:
                state = " (LOCKED: a write is in flight)" if info.locked else ""
                raise VersionMoved(
                    f"image set {image_set_id} moved to version {info.version_id}{state} "
                    f"since version {at_version}",
                    code="VersionMoved",
                    operation="DeleteImageSet",
                    image_set_id=image_set_id,
                )

        response = cast(
            wire.DeleteImageSetResponse,
            self._send(
                "DeleteImageSet",
                image_set_id,
                {"datastoreId": datastore_id, "imageSetId": image_set_id},
                before=unmoved,
            ),
        )
        return DeleteResult.from_wire(response)

    # -- tags (which image sets a run made: engine/proof.py) ---------------------------
    def tag_resource(self, arn: str, tags: Mapping[str, str]) -> None:
        """TagResource: add or overwrite ``tags`` on the resource ``arn`` names."""
        self._call("TagResource", None, resourceArn=arn, tags=dict(tags))

    def tags_of(self, arn: str) -> dict[str, str]:
        """ListTagsForResource: the tags of the resource ``arn`` names."""
        response = self._call("ListTagsForResource", None, resourceArn=arn)
        tags = response.get("tags") or {}
        return {str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {}

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

        The read quota is shared with everything else, so polling is frugal: the first
        poll waits about as long as writes have recently taken to settle (learned by
        this client, starting at ``initial``), so most waits cost one GetImageSet; then
        the delay doubles up to ``maximum`` (with jitter), and never runs past the
        deadline: the last poll happens at ``timeout``, then :class:`LockTimeout`.
        Returns the settled state, which may be UPDATE_FAILED — deciding what that
        means is the caller's business. After a DeleteImageSet the image set is gone
        once settled: that poll raises :class:`ImageSetNotFound`.
        """
        started = clock()
        deadline = started + timeout
        info: ImageSetInfo | None = None
        if not self._forget_write(image_set_id):  # our own write just said LOCKED
            info = self.get_image_set(datastore_id, image_set_id)
            if not info.locked:
                return info
        first = self._settle.first_delay(initial)
        for polls, delay in enumerate(backoff.delays(initial, maximum)):
            remaining = deadline - clock()
            if remaining <= 0:
                status = info.workflow_status.value if info else "a write in progress"
                raise LockTimeout(
                    f"image set {image_set_id} is still LOCKED ({status}) "
                    f"after {timeout:g} s; wait and run again, or raise lockTimeoutSeconds "
                    "in reconciler.yaml",
                    code="LockTimeout",
                    operation="GetImageSet",
                    image_set_id=image_set_id,
                )
            sleep(min(first if polls == 0 else max(delay, first), remaining))
            info = self.get_image_set(datastore_id, image_set_id)
            if not info.locked:
                self._settle.observe(clock() - started, polls + 1)
                return info
        raise AssertionError("unreachable: backoff.delays never ends")  # pragma: no cover

    def _remember_write(self, image_set_id: str, state: str | None) -> None:
        if state == "LOCKED":
            with self._calls_lock:
                self._written[image_set_id] = None

    def _forget_write(self, image_set_id: str) -> bool:
        """Whether this client's last write to ``image_set_id`` answered LOCKED and no
        wait has polled it since (then polling at once would only spend a read)."""
        with self._calls_lock:
            if image_set_id in self._written:
                del self._written[image_set_id]
                return True
            return False


class _SettleEstimate:
    """How long writes take to settle, learned from this client's own polls: the first
    poll's delay. A wait settled at the first poll nudges it down (maybe it could have
    polled sooner); one that needed more polls moves it toward what it took."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._estimate: float | None = None

    def first_delay(self, initial: float) -> float:
        with self._lock:
            return initial if self._estimate is None else self._estimate

    def observe(self, waited: float, polls: int) -> None:
        with self._lock:
            if self._estimate is None:
                self._estimate = waited
            elif polls == 1:
                self._estimate = max(0.01, min(self._estimate, waited) * 0.95)
            else:
                self._estimate = 0.5 * self._estimate + 0.5 * waited


def _jittered(attempt: int) -> float:
    """Full-jitter exponential back-off for the ``attempt``-th retry."""
    return random.random() * min(RETRY_CAP, RETRY_BASE * 2.0 ** (attempt - 1))


def _with_attempts(error: ServiceError, attempts: int) -> ServiceError:
    """``error`` with the number of attempts in its message (botocore's count was 1)."""
    message = error.message.replace("after 1 attempt ", f"after {attempts} attempts ", 1)
    return type(error)(message, code=error.code, operation=error.operation,
                       image_set_id=error.image_set_id)  # fmt: skip
