"""A DICOMweb client as users point one at HealthImaging: dicomweb-client over a
requests session that signs every request with SigV4 (botocore's signer), service
``medical-imaging``, as AHI's DICOMweb pages ask."""

from __future__ import annotations

from typing import Any

import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from dicomweb_client.api import DICOMwebClient


class SigV4(requests.auth.AuthBase):
    """Signs each request (service medical-imaging) with botocore's signer, as
    docs/dicomweb.md shows; a streamed (chunked) body is not hashed."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body if isinstance(request.body, (bytes, str)) else None
        signed = AWSRequest(request.method, request.url, data=body, headers=dict(request.headers))
        SigV4Auth(Credentials("testing", "testing"), "medical-imaging", "us-east-1").add_auth(
            signed
        )
        request.headers.update(dict(signed.headers.items()))
        return request


def signed_session() -> requests.Session:
    session = requests.Session()
    session.auth = SigV4()
    return session


def dicomweb(url: str, datastore_id: str, **options: Any) -> DICOMwebClient:
    """dicomweb-client on a data store's DICOMweb root of the local HealthImaging."""
    return DICOMwebClient(f"{url}/datastore/{datastore_id}", session=signed_session(), **options)


def value(dataset: dict[str, Any], tag: str) -> Any:
    """The first value of ``tag`` in a DICOM JSON object (None when it has none)."""
    values = dataset.get(tag, {}).get("Value") or [None]
    return values[0]
