"""SigV4 signatures: checked as AWS checks them, with botocore's own signer.

The emulator recomputes a request's signature from what arrived on the wire (method,
path, query, the headers the client says it signed, the body) with the secret of the
access key named in ``Authorization``, and compares. Admin calls (``/_emulator/``)
must pass this check against the emulator's configured credentials; service calls
only need a well-formed SigV4 header (any key), as docs/local-healthimaging.md documents.

:func:`sign` is the other half: the one place the project's own Python code signs a
request by hand (admin calls from tests and programs), again with botocore's signer.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from reconciler.emulator.config import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY
from reconciler.emulator.exceptions import AccessDeniedException

SIGNING_REGION = "us-east-1"
SIGNING_SERVICE = "medical-imaging"
MAX_CLOCK_SKEW_SECONDS = 15 * 60  # what AWS allows before "Signature expired"

_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<key>[^/\s,]+)/(?P<date>\d{8})/(?P<region>[^/\s,]+)/"
    r"(?P<service>[^/\s,]+)/aws4_request\s*,\s*SignedHeaders=(?P<signed>[a-z0-9;_.-]+)\s*,"
    r"\s*Signature=(?P<signature>[0-9a-f]{64})"
)
_TIMESTAMP = "%Y%m%dT%H%M%SZ"


def verify(
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: Mapping[str, str],
    now: float | None = None,
) -> None:
    """Raise AccessDeniedException unless the request carries a valid SigV4 signature
    by one of ``credentials`` (access key -> secret). ``target`` is the raw request
    path with its query; ``headers`` have lower-case names."""
    found = _AUTHORIZATION.fullmatch(headers.get("authorization", "").strip())
    if found is None:
        raise AccessDeniedException(
            "Missing Authentication Token: this request must be SigV4-signed"
        )
    signed = found["signed"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        raise AccessDeniedException("the signature must cover the Host and X-Amz-Date headers")
    missing = [name for name in signed if name not in headers]
    if missing:
        raise AccessDeniedException(f"signed header {missing[0]} is not in the request")
    stamp = headers["x-amz-date"]
    try:
        signed_at = calendar.timegm(time.strptime(stamp, _TIMESTAMP))
    except ValueError:
        raise AccessDeniedException("X-Amz-Date is not a SigV4 timestamp") from None
    if stamp[:8] != found["date"]:
        raise AccessDeniedException("the credential scope's date is not X-Amz-Date's")
    if abs((time.time() if now is None else now) - signed_at) > MAX_CLOCK_SKEW_SECONDS:
        raise AccessDeniedException("Signature expired: X-Amz-Date is more than 15 minutes off")
    secret = credentials.get(found["key"])
    if secret is None:
        raise AccessDeniedException("The security token included in the request is invalid")
    digest = hashlib.sha256(body).hexdigest()
    if headers.get("x-amz-content-sha256", digest) != digest:
        raise AccessDeniedException("X-Amz-Content-SHA256 does not match the body")
    request = AWSRequest(
        method=method,
        url=f"http://{headers['host']}{target}",
        data=body,
        headers={name: headers[name] for name in signed},
    )
    request.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(found["key"], secret), found["service"], found["region"])
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)),
                                request)  # fmt: skip
    if not hmac.compare_digest(expected, found["signature"]):
        raise AccessDeniedException(
            "The request signature we calculated does not match the signature you provided"
        )


def sign(
    method: str,
    url: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    *,
    access_key: str = DEFAULT_ACCESS_KEY,
    secret_key: str = DEFAULT_SECRET_KEY,
) -> dict[str, str]:
    """``headers`` plus Host (unless given), X-Amz-Date, X-Amz-Content-SHA256 and
    Authorization: a SigV4 signature of the request to ``url`` (``http://host:port/path``)."""
    parts = urlsplit(url)
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    if "Host" not in request.headers:
        request.headers["Host"] = parts.netloc
    request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
    signer = SigV4Auth(Credentials(access_key, secret_key), SIGNING_SERVICE, SIGNING_REGION)
    signer.add_auth(request)
    return dict(request.headers.items())
