"""HealthImaging's DICOMweb, served by the local HealthImaging on its own port.

AWS HealthImaging offers "representations" of DICOMweb below
``https://dicom-medical-imaging.REGION.amazonaws.com/datastore/{datastoreId}``,
SigV4-signed for service ``medical-imaging``: QIDO-RS search of studies, series and
instances; WADO-RS instance, instance metadata, frames and series metadata; STOW-RS
store. The local HealthImaging answers the same paths on the port it serves the API
on (server.py hands them here), over the same image sets: what an
UpdateImageSetMetadata changed is what WADO-RS metadata shows.

- ``routing``: paths → operations (IAM action names) and handlers;
  ``request``: the routed request, path validation, the answer.
- ``qido`` (with ``matching``), ``wado``, ``stow``: the three services.
- ``library``: which image sets are read (primary, or the ``imageSetId`` given) and at
  which version; ``elements``, ``dicomjson``, ``part10``: the metadata document as DICOM
  elements, as DICOM JSON, as a Part 10 file.
- ``media``: Accept and Content-Type values, multipart/related bodies; ``syntaxes``:
  which transfer syntax is served; ``chunked``: chunked request bodies.

docs/dicomweb.md is the user's page; choices.py records each choice and its source.
"""

from __future__ import annotations

from reconciler.emulator import choices
from reconciler.emulator.backend import Backend
from reconciler.emulator.dicomweb.chunked import is_chunked, read_chunked
from reconciler.emulator.dicomweb.request import Request, Response
from reconciler.emulator.dicomweb.routing import is_dicomweb, is_store, route

__all__ = [
    "Request",
    "Response",
    "body_limit",
    "is_chunked",
    "is_dicomweb",
    "read_chunked",
    "route",
    "serve",
]


def body_limit(method: str, path: str, default: int) -> int:
    """The largest request body accepted: STOW-RS stores files, every other call is small."""
    return choices.DICOMWEB_MAX_STORE_BYTES if is_store(method, path) else default


def serve(backend: Backend, request: Request, handler: str) -> Response:
    """Answer a routed request (``route`` gave ``handler``). The handlers (and, through
    them, pydicom) are imported on the first DICOMweb request: starting the local
    HealthImaging does not load them."""
    from reconciler.emulator.dicomweb.handlers import HANDLERS

    return HANDLERS[handler](request, backend)
