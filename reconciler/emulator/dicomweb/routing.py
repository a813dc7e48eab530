"""DICOMweb paths, as HealthImaging serves them below ``/datastore/{datastoreId}``.

Each route names the IAM action it is (the developer guide's names: quotas, faults
and read-only mode apply per action) and its handler. A path under a data store's
``studies``, ``series`` or ``instances`` that no route matches is answered 404.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote

from reconciler.emulator.dicomweb.request import Request, check_identifier, check_uid
from reconciler.emulator.exceptions import UnknownOperationException

_ROOT = re.compile(r"^/datastore/(?P<datastore>[^/]+)/(studies|series|instances)(/|$)")
_UID = "[^/]+"


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    operation: str
    handler: str  # the name of its handler (handlers.py)
    relational: bool = False


def _route(method: str, path: str, operation: str, handler: str, relational: bool = False) -> Route:
    regex = (
        path.replace("{study}", f"(?P<study>{_UID})")
        .replace("{series}", f"(?P<series>{_UID})")
        .replace("{sop}", f"(?P<sop>{_UID})")
        .replace("{frames}", "(?P<frames>[^/]+)")
    )
    pattern = re.compile(f"^/datastore/(?P<datastore>[^/]+){regex}$")
    return Route(method, pattern, operation, handler, relational)


_INSTANCE = "/studies/{study}/series/{series}/instances/{sop}"
ROUTES = (
    _route("GET", "/studies", "SearchDICOMStudies", "search_studies"),
    _route("GET", "/studies/{study}/series", "SearchDICOMSeries", "search_series"),
    _route("GET", "/series", "SearchDICOMSeries", "search_series", relational=True),
    _route(
        "GET",
        "/studies/{study}/series/{series}/instances",
        "SearchDICOMInstances",
        "search_instances",
    ),
    _route(
        "GET",
        "/studies/{study}/instances",
        "SearchDICOMInstances",
        "search_instances",
        relational=True,
    ),
    _route("GET", "/instances", "SearchDICOMInstances", "search_instances", relational=True),
    _route(
        "GET",
        "/studies/{study}/series/{series}/metadata",
        "GetDICOMSeriesMetadata",
        "series_metadata",
    ),
    _route("GET", _INSTANCE, "GetDICOMInstance", "instance"),
    _route("GET", _INSTANCE + "/metadata", "GetDICOMInstanceMetadata", "instance_metadata"),
    _route("GET", _INSTANCE + "/frames/{frames}", "GetDICOMInstanceFrames", "frames"),
    _route("POST", "/studies", "StoreDICOM", "store"),
    _route("POST", "/studies/{study}", "StoreDICOMStudy", "store"),
)
WRITES = frozenset({"StoreDICOM", "StoreDICOMStudy"})


def is_dicomweb(path: str) -> bool:
    """Whether ``path`` is a DICOMweb path (one HealthImaging's own API never uses)."""
    return bool(_ROOT.match(path))


def is_store(method: str, path: str) -> bool:
    """Whether ``method path`` is a STOW-RS request (whose body may be large)."""
    return any(
        r.operation in WRITES and r.method == method and r.pattern.match(path) for r in ROUTES
    )


def route(
    method: str, path: str, query: str, headers: dict[str, str], body: bytes, *, port: int
) -> tuple[Request, str]:
    """The request ``method path?query`` is, and the name of its handler;
    UnknownOperationException (404) for a DICOMweb path HealthImaging does not serve."""
    for candidate in ROUTES:
        found = candidate.pattern.match(path) if candidate.method == method else None
        if found is None:
            continue
        groups = {k: unquote(v) for k, v in found.groupdict().items() if v is not None}
        request = Request(
            operation=candidate.operation,
            method=method,
            datastore_id=check_identifier(groups["datastore"], "datastoreId"),
            query=parse_qs(query, keep_blank_values=True),
            headers=headers,
            body=body,
            study_uid=check_uid(groups["study"], "StudyInstanceUID") if "study" in groups else None,
            series_uid=check_uid(groups["series"], "SeriesInstanceUID")
            if "series" in groups
            else None,
            sop_uid=check_uid(groups["sop"], "SOPInstanceUID") if "sop" in groups else None,
            frames=groups.get("frames"),
            relational=candidate.relational,
            port=port,
        )
        return request, candidate.handler
    raise UnknownOperationException(
        f"No DICOMweb operation for {method} {path[:300]}: HealthImaging serves QIDO-RS "
        "search, WADO-RS instance, instance metadata, frames and series metadata, and "
        "STOW-RS store"
    )
