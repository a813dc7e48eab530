"""One DICOMweb request as routed (routing.py), and the answer a handler gives."""

from __future__ import annotations

import re
from dataclasses import dataclass

from reconciler.emulator.dicomweb import media
from reconciler.emulator.dicomweb.errors import NotAcceptableException
from reconciler.emulator.exceptions import ValidationException

# The service's own patterns: identifiers as its API model spells them, UIDs as DICOM.
_IDENTIFIER = re.compile(r"[0-9a-z]{32}")
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
JSON_TYPES = ("application/dicom+json", "application/json")


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Request:
    operation: str  # the IAM action it is (quotas and faults are per action)
    method: str
    datastore_id: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""
    study_uid: str | None = None
    series_uid: str | None = None
    sop_uid: str | None = None
    frames: str | None = None
    relational: bool = False  # a search above its level (/series, /instances, ...)
    port: int = 80  # the port the server listens on

    @property
    def base_url(self) -> str:
        """The data store's DICOMweb root as the client reached it (for RetrieveURL). A
        Host without a port (dicomweb-client sends one) is taken to mean the server's."""
        host = self.headers.get("host", "127.0.0.1")
        if not re.search(r":\d+$", host):
            host = f"{host}:{self.port}"
        return f"http://{host}/datastore/{self.datastore_id}"

    def one(self, name: str) -> str | None:
        """A query parameter given at most once; ValidationException when repeated."""
        values = self.query.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise ValidationException(f"query parameter {name} is given {len(values)} times")
        return values[0]

    @property
    def image_set_id(self) -> str | None:
        value = self.one("imageSetId")
        if value is not None and not _IDENTIFIER.fullmatch(value):
            raise ValidationException(
                f"imageSetId {value[:64]!r} does not match the pattern [0-9a-z]{{32}}"
            )
        return value

    def accepted(self) -> list[media.MediaType]:
        return media.accepted(self.headers.get("accept"))

    def require_json(self) -> None:
        """406 unless the client accepts DICOM JSON (the only form served)."""
        if not any(r.covers(t) for r in self.accepted() for t in JSON_TYPES):
            raise NotAcceptableException(
                f"Accept {self.headers.get('accept', '')[:200]!r}: this resource is served as "
                "application/dicom+json only"
            )


def check_identifier(value: str, member: str) -> str:
    if not _IDENTIFIER.fullmatch(value):
        raise ValidationException(
            f"{member} {value[:64]!r} does not match the pattern [0-9a-z]{{32}}"
        )
    return value


def check_uid(value: str, member: str) -> str:
    if len(value) > 64 or not _UID.fullmatch(value):
        raise ValidationException(f"{member} {value[:80]!r} is not a DICOM UID")
    return value


def json_response(
    payload: bytes, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(status, {"Content-Type": "application/dicom+json", **(headers or {})}, payload)
