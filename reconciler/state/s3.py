"""The ``s3://bucket/prefix`` state backend, through boto3's S3 client.

For teams and CI: several runners, shards and laptops share one truth that a pull
request cannot write (the PR plan job gets read-only credentials for the bucket).

- Objects are written whole (S3 has no append). A run's journal is written one object
  per record while the run goes on (``<key>.parts/00000001`` …: each PUT acknowledged
  before the call it announces is sent), and folded into one object (``<key>``) when it
  ends; reading a log takes the folded object, else its parts in order. So commands
  that read finished runs make one GET per run, and nothing ever rewrites a growing
  object.
- Conditional writes: ``If-None-Match: *`` (create only) and ``If-Match: <ETag>``
  (replace only what was read), as Terraform 1.10's S3 backend locks.
- ``secret`` objects (undo values, PHI) are written with ``aws:kms`` server-side
  encryption under ``kms_key_id`` when one is configured; no other object holds PHI.

The endpoint is AWS's, or ``AWS_ENDPOINT_URL_S3`` (botocore reads it), which tests
point at moto's S3 server (``reconciler emulator serve --s3``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from reconciler.state.backend import Blob, Conflict, StateError, check_key

PARTS = ".parts/"
_PART_DIGITS = 8
_READERS = 8  # parts of an interrupted run's log fetched at once
_PRECONDITION = {"PreconditionFailed", "ConditionalRequestConflict", "412"}
_MISSING = {"NoSuchKey", "404", "NotFound"}


def split_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` → ``("bucket", "some/prefix")``."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"{url!r} is not an s3://bucket/prefix URL")
    return parts.netloc, parts.path.strip("/")


def make_client(profile: str | None, region: str | None) -> Any:
    """The S3 client state is read and written with: the credential chain of
    ``profile``; path-style addressing where an endpoint URL is configured (a local
    S3 has no bucket host names)."""
    custom = bool(os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"))
    config = Config(
        retries={"mode": "standard", "max_attempts": 4},
        connect_timeout=5,
        read_timeout=30,
        s3={"addressing_style": "path"} if custom else {},
    )
    try:
        session = boto3.session.Session(profile_name=profile)
        return session.client("s3", region_name=region or session.region_name, config=config)
    except BotoCoreError as failure:
        raise StateError(f"cannot reach the S3 state: {failure}") from None


def _code(failure: ClientError) -> str:
    error = failure.response.get("Error", {})
    status = failure.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(error.get("Code") or status or "")


class S3Appender:
    def __init__(self, backend: S3Backend, key: str) -> None:
        self._backend = backend
        self._key = key
        self._lines: list[bytes] = []
        self._closed = False

    def write(self, line: bytes) -> None:
        if self._closed:
            raise StateError(f"{self._backend.shown(self._key)} is closed")
        number = len(self._lines) + 1
        self._backend.put(f"{self._key}{PARTS}{number:0{_PART_DIGITS}d}", line)
        self._lines.append(line)

    def close(self) -> None:
        """Fold the parts into one object, then remove them. An interruption between
        the two leaves both, and readers take the folded object."""
        if self._closed:
            return
        self._closed = True
        if not self._lines:
            return
        self._backend.put(self._key, b"".join(self._lines))
        self._backend.delete_parts(self._key, len(self._lines))


class S3Backend:
    """State under ``s3://bucket/prefix``."""

    def __init__(self, url: str, client: Any, *, kms_key_id: str | None = None) -> None:
        self.bucket, self.prefix = split_url(url)
        self.url = url.rstrip("/")
        self._s3 = client
        self._kms_key_id = kms_key_id

    @property
    def location(self) -> str:
        return self.url

    def shown(self, key: str) -> str:
        return f"{self.url}/{key}"

    def _name(self, key: str) -> str:
        check_key(key.replace(PARTS, "/"))
        return f"{self.prefix}/{key}" if self.prefix else key

    def _fail(self, failure: Exception, doing: str, key: str) -> StateError:
        if isinstance(failure, ClientError):
            code = _code(failure)
            if code in _PRECONDITION:
                return Conflict(f"{self.shown(key)} changed or exists already")
            if code == "NoSuchBucket":
                return StateError(
                    f"the state bucket {self.bucket!r} does not exist (state: {self.url})"
                )
            if code in ("AccessDenied", "403", "AllAccessDisabled"):
                return StateError(
                    f"cannot {doing} {self.shown(key)}: access denied "
                    "(the credentials lack the state bucket's permissions; "
                    "see the state bucket's IAM policy)"
                )
            return StateError(f"cannot {doing} {self.shown(key)}: {code}")
        return StateError(f"cannot {doing} {self.shown(key)}: {failure}")

    # -- objects ----------------------------------------------------------------------
    def get(self, key: str) -> Blob | None:
        try:
            answer = self._s3.get_object(Bucket=self.bucket, Key=self._name(key))
            data = answer["Body"].read()
        except ClientError as failure:
            if _code(failure) in _MISSING:
                return None
            raise self._fail(failure, "read", key) from None
        except BotoCoreError as failure:
            raise self._fail(failure, "read", key) from None
        return Blob(data, str(answer.get("ETag", "")))

    def put(
        self,
        key: str,
        data: bytes,
        *,
        secret: bool = False,
        if_absent: bool = False,
        if_tag: str | None = None,
    ) -> str:
        extra: dict[str, str] = {}
        if if_absent:
            extra["IfNoneMatch"] = "*"
        elif if_tag is not None:
            extra["IfMatch"] = if_tag
        if secret and self._kms_key_id:
            extra["ServerSideEncryption"] = "aws:kms"
            extra["SSEKMSKeyId"] = self._kms_key_id
        try:
            answer = self._s3.put_object(
                Bucket=self.bucket, Key=self._name(key), Body=data, **extra
            )
        except ClientError as failure:
            # If-Match on a key that is gone is a 404 (NoSuchKey), not a 412: still "not
            # what was read", so the writer reads again rather than failing.
            if if_tag is not None and _code(failure) in _MISSING:
                raise Conflict(f"{self.shown(key)} is gone") from None
            raise self._fail(failure, "write", key) from None
        except BotoCoreError as failure:
            raise self._fail(failure, "write", key) from None
        return str(answer.get("ETag", ""))

    def delete(self, key: str, *, if_tag: str | None = None) -> None:
        extra = {"IfMatch": if_tag} if if_tag is not None else {}
        try:
            self._s3.delete_object(Bucket=self.bucket, Key=self._name(key), **extra)
        except ClientError as failure:
            if if_tag is not None and _code(failure) in _MISSING:
                raise Conflict(f"{self.shown(key)} is gone") from None
            raise self._fail(failure, "remove", key) from None
        except BotoCoreError as failure:
            raise self._fail(failure, "remove", key) from None

    def _keys(self, prefix: str) -> Iterator[str]:
        start = f"{self.prefix}/" if self.prefix else ""
        try:
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start + prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    yield str(item["Key"])[len(start) :]
        except (ClientError, BotoCoreError) as failure:
            raise self._fail(failure, "list", prefix or ".") from None

    def list(self, prefix: str) -> list[str]:
        found = set()
        for key in self._keys(prefix):
            log, parts, _ = key.partition(PARTS)
            found.add(log if parts else key)
        return sorted(found)

    # -- logs -------------------------------------------------------------------------
    def append(self, key: str) -> S3Appender:
        if self.get(key) is not None or any(True for _ in self._keys(key + PARTS)):
            raise Conflict(f"{self.shown(key)} exists already")
        return S3Appender(self, key)

    def read_log(self, key: str) -> bytes | None:
        folded = self.get(key)
        if folded is not None:
            return folded.data
        parts = sorted(self._keys(key + PARTS))
        if not parts:
            return None
        with ThreadPoolExecutor(max_workers=_READERS) as pool:
            blobs = list(pool.map(self.get, parts))
        # A part deleted between the listing and its read was folded meanwhile.
        if any(blob is None for blob in blobs):
            again = self.get(key)
            if again is not None:
                return again.data
        return b"".join(blob.data for blob in blobs if blob is not None)

    def delete_parts(self, key: str, count: int) -> None:
        names = [
            {"Key": self._name(f"{key}{PARTS}{n:0{_PART_DIGITS}d}")} for n in range(1, count + 1)
        ]
        try:
            for start in range(0, len(names), 1000):
                self._s3.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": names[start : start + 1000]}
                )
        except (ClientError, BotoCoreError) as failure:
            raise self._fail(failure, "remove the parts of", key) from None
