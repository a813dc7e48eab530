"""AWS STS ``GetCallerIdentity``, answered on the local HealthImaging's own port.

A client that names who holds something (a state lock, an audit record) asks STS who
it is. Pointed at the local HealthImaging (``boto3.client("sts", endpoint_url=url)``,
``aws sts get-caller-identity --endpoint-url URL``), it gets a principal of the account
every ARN here carries (choices.LOCAL_ACCOUNT).

STS speaks the awsQuery protocol: ``POST /`` with a form body
``Action=GetCallerIdentity&Version=2011-06-15`` (or the same in the query string),
answered in XML. Only GetCallerIdentity is served; any other action is refused as STS
refuses an unknown one (``InvalidAction``, 400). The call is signed like every other
(the server's ``_signed_region``).
"""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from reconciler.emulator import choices
from reconciler.emulator.exceptions import ServiceError

VERSION = "2011-06-15"
NAMESPACE = f"https://sts.amazonaws.com/doc/{VERSION}/"
CONTENT_TYPE = "text/xml"
_FORM = "application/x-www-form-urlencoded"


class InvalidAction(ServiceError):
    code, status = "InvalidAction", 400


def _params(query: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
    values = parse_qs(query, keep_blank_values=True)
    if headers.get("content-type", "").startswith(_FORM):
        values.update(parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True))
    return {name: found[-1] for name, found in values.items()}


def is_sts(method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> bool:
    """Whether a request is an STS call: an awsQuery ``Action`` at ``/`` (no
    HealthImaging operation lives there)."""
    if path != "/" or method not in ("GET", "POST") or "x-amz-target" in headers:
        return False
    return "Action" in _params(query, headers, body)


def principal(access_key: str) -> dict[str, str]:
    """The caller, by the access key it signed with: an IAM user of the local account
    named for the key, with a stable unique ID (``AIDA`` + 17 characters, as IAM's)."""
    digest = hashlib.sha256(access_key.encode("utf-8")).hexdigest().upper()
    name = access_key if access_key else "local"
    return {
        "Account": choices.LOCAL_ACCOUNT,
        "Arn": f"arn:aws:iam::{choices.LOCAL_ACCOUNT}:user/{name}",
        "UserId": "AIDA" + digest[:17],
    }


def handle(query: str, headers: dict[str, str], body: bytes, access_key: str) -> bytes:
    """The XML answer to one STS call, or :class:`InvalidAction`."""
    action = _params(query, headers, body).get("Action", "")
    if action != "GetCallerIdentity":
        raise InvalidAction(f"Could not find operation {action[:64]} for version {VERSION}")
    fields = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in principal(access_key).items())
    return (
        f'<GetCallerIdentityResponse xmlns="{NAMESPACE}"><GetCallerIdentityResult>'
        f"{fields}</GetCallerIdentityResult><ResponseMetadata><RequestId>"
        f"{hashlib.sha256(body).hexdigest()[:32]}</RequestId></ResponseMetadata>"
        "</GetCallerIdentityResponse>"
    ).encode()


def error_body(error: ServiceError) -> bytes:
    """An awsQuery error document (what botocore's query parser reads)."""
    kind = "Sender" if error.status < 500 else "Receiver"
    return (
        f'<ErrorResponse xmlns="{NAMESPACE}"><Error><Type>{kind}</Type>'
        f"<Code>{escape(error.code)}</Code><Message>{escape(error.message)}</Message>"
        "</Error><RequestId>local</RequestId></ErrorResponse>"
    ).encode()
