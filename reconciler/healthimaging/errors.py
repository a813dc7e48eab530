"""HealthImaging failures as the project's own errors, one class per thing a caller handles.

:func:`map_error` turns whatever boto3/botocore raised into one of these, with a one-line
message that names the operation and the image set and says what to do. Messages are
built from the error code and the service's message only — never from the request, its
headers or the credentials — and the service's text is scrubbed of anything that looks
like a key or a signature before it is quoted.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)

from reconciler.dicom.phi import mask_service_message
from reconciler.errors import ConfigError, ReconcilerError


class ServiceError(ReconcilerError):
    """A HealthImaging call failed; ``code`` is the service's error code (or botocore's)."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "ServiceError",
        operation: str | None = None,
        image_set_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.operation = operation
        self.image_set_id = image_set_id


class ImageSetNotFound(ServiceError):
    """ResourceNotFoundException for an image set (or one of its versions)."""


class DatastoreNotFound(ServiceError):
    """ResourceNotFoundException for the data store."""


class VersionConflict(ServiceError):
    """ConflictException: ``latestVersion`` is stale, or the image set is LOCKED."""


class VersionMoved(ServiceError):
    """A write that must find the image set at a version found it elsewhere (or
    LOCKED): nothing was sent."""


class ServiceValidationError(ServiceError):
    """ValidationException (or botocore's own parameter check): the request is wrong."""


class PayloadTooLarge(ServiceError):
    """ServiceQuotaExceededException: the update is over the account's payload quota."""


class AccessDenied(ServiceError):
    """AccessDeniedException or an authentication failure."""


class Throttled(ServiceError):
    """ThrottlingException, still after botocore's retries."""


class ServiceUnavailable(ServiceError):
    """A 5xx (or a read timeout), still after botocore's retries."""


class CredentialsMissing(ServiceError):
    """botocore found no credentials (NoCredentialsError)."""


class EndpointUnreachable(ServiceError):
    """No connection to the endpoint (EndpointConnectionError, connect timeout)."""


class LockTimeout(ServiceError):
    """The image set stayed LOCKED longer than the caller would wait."""


_NOT_FOUND = "ResourceNotFoundException"
_AUTH_CODES = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignature",
        "InvalidClientTokenId",
        "MissingAuthenticationToken",
        "ExpiredTokenException",
        "ExpiredToken",
    }
)
_THROTTLE_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}
)

# Anything in a service message that could be a credential: access key IDs, SigV4
# fragments, session tokens (as a header, ``x-amz-security-token: …``, a query
# parameter, a setting, or bare: a token is hundreds of base64 characters, URL-encoded
# or not, where nothing else a message holds runs past 80 without a dot or a space).
# The service does not echo them, but a proxy or a misconfigured endpoint might, and a
# message is printed, logged and journaled.
_SECRETS = (
    (re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,}\b"), "[redacted]"),
    (
        re.compile(
            r"(?i)(Credential|Signature|X-Amz-Security-Token|X-Amz-Signature)(\s*[=:]\s*)"
            r"[^\s,&;]+"
        ),
        r"\1\2[redacted]",
    ),
    (
        re.compile(
            r"(?i)(aws_secret_access_key|aws_session_token|security_?token|"
            r"session_?token)(\W{0,3}\s*[=:]\s*\W{0,3})[^\s,&;'\"*]+"
        ),
        r"\1\2[redacted]",
    ),
    (re.compile(r"(?:[A-Za-z0-9+/_-]|%[0-9A-Fa-f]{2}){80,}(?:=|%3[Dd]){0,2}"), "[redacted]"),
)
_MAX_DETAIL = 300


def redact(text: str) -> str:
    """``text`` with whatever looks like a credential redacted (see :data:`_SECRETS`)."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def clean(text: str) -> str:
    """One line of at most a few hundred characters, with credential-like parts redacted
    and whatever may be a PHI value masked, as UPDATE_FAILED messages are
    (:func:`~reconciler.dicom.phi.mask_service_message`): the service's words may quote
    the values it refused, and they are printed in CI, journaled and put in PR comments."""
    line = redact(mask_service_message(" ".join(str(text).split())))
    return line if len(line) <= _MAX_DETAIL else line[: _MAX_DETAIL - 3] + "..."


def _subject(operation: str, image_set_id: str | None) -> str:
    return f"{operation} of image set {image_set_id}" if image_set_id else operation


def _origin(url: str) -> str:
    """``scheme://host:port`` of ``url``: no user:password, and not the request path."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return url
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, "", "", ""))


def map_error(exc: Exception, operation: str, image_set_id: str | None = None) -> ReconcilerError:
    """The project error for a boto3/botocore failure of ``operation``."""
    if isinstance(exc, ClientError):
        return _from_client_error(exc, operation, image_set_id)
    subject = _subject(operation, image_set_id)
    code = type(exc).__name__

    def build(cls: type[ServiceError], message: str) -> ServiceError:
        return cls(message, code=code, operation=operation, image_set_id=image_set_id)

    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return build(
            CredentialsMissing,
            f"{subject}: no usable AWS credentials were found; configure them (aws configure, "
            "AWS_PROFILE or --profile, or environment variables) or use --local to work "
            "against the local HealthImaging",
        )
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
        url = _origin(str(getattr(exc, "kwargs", {}).get("endpoint_url", "the endpoint")))
        reason = "timed out" if isinstance(exc, ConnectTimeoutError) else "connection failed"
        return build(
            EndpointUnreachable,
            f"{subject}: cannot reach {url} ({reason}); check --endpoint, "
            "RECONCILER_ENDPOINT or endpoint in reconciler.yaml, and the network",
        )
    if isinstance(exc, ReadTimeoutError):
        return build(
            ServiceUnavailable,
            f"{subject}: the service did not answer in time; try again later",
        )
    if isinstance(exc, ParamValidationError):
        return build(ServiceValidationError, f"{subject}: invalid request: {clean(str(exc))}")
    if isinstance(exc, NoRegionError):
        return ConfigError(
            "no AWS region is set; set region in reconciler.yaml, pass --region, or set AWS_REGION"
        )
    if isinstance(exc, ProfileNotFound):
        return ConfigError(f"{clean(str(exc))}; check --profile or profile in reconciler.yaml")
    if isinstance(exc, BotoCoreError):
        return build(ServiceError, f"{subject}: {code}: {clean(str(exc))}")
    return build(ServiceError, f"{subject}: unexpected {code}")


def _from_client_error(exc: ClientError, operation: str, image_set_id: str | None) -> ServiceError:
    response = exc.response or {}
    error = response.get("Error") or {}
    code = str(error.get("Code") or "Unknown")
    detail = clean(str(error.get("Message") or code))
    meta = response.get("ResponseMetadata") or {}
    status = int(meta.get("HTTPStatusCode") or 0)
    attempts = int(meta.get("RetryAttempts") or 0) + 1
    subject = _subject(operation, image_set_id)

    def build(cls: type[ServiceError], message: str) -> ServiceError:
        return cls(message, code=code, operation=operation, image_set_id=image_set_id)

    if code == _NOT_FOUND:
        # The service uses one code for both; its message says which resource is missing.
        lowered = detail.lower()
        about_image_set = "image set" in lowered or "imageset" in lowered
        if image_set_id is None or ("datastore" in lowered and not about_image_set):
            return build(
                DatastoreNotFound,
                f"{operation}: data store not found ({detail}); check datastoreId",
            )
        return build(ImageSetNotFound, f"{subject}: not found ({detail})")
    if code == "ConflictException":
        return build(
            VersionConflict,
            f"{subject}: conflict, another write holds the image set LOCKED or its latest "
            f"version moved ({detail})",
        )
    if code == "ValidationException":
        return build(ServiceValidationError, f"{subject}: rejected: {detail}")
    if code == "ServiceQuotaExceededException":
        return build(
            PayloadTooLarge,
            f"{subject}: over the service quota ({detail}); split the update into smaller ones",
        )
    if code in _AUTH_CODES or status == 403:
        return build(
            AccessDenied,
            f"{subject}: access denied ({detail}); the credentials in use lack this "
            "permission or are invalid",
        )
    if code in _THROTTLE_CODES or status == 429:
        return build(
            Throttled,
            f"{subject}: throttled after {attempts} attempt{'s' * (attempts > 1)} ({detail}); "
            "lower rateLimits in reconciler.yaml or run fewer jobs at once",
        )
    if status >= 500 or code in ("InternalServerException", "ServiceUnavailable"):
        return build(
            ServiceUnavailable,
            f"{subject}: the service failed after {attempts} attempt{'s' * (attempts > 1)} "
            f"({code}: {detail}); try again later",
        )
    return build(ServiceError, f"{subject}: {code}: {detail}")
