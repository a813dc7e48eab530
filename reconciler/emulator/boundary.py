"""Who may talk to the local HealthImaging: the Host and Origin checks.

A web page in the user's browser is the attacker these stop. By DNS rebinding a page
from ``http://evil.example:8080`` can make the browser connect to 127.0.0.1:8080 as
"the same origin"; the request still says ``Host: evil.example:8080``, so any name the
emulator does not answer to is refused. A page that stays on its own origin sends an
``Origin`` header (and modern browsers ``Sec-Fetch-Site``) with every request that
could change anything; a cross-origin one is refused. No CORS header is ever sent, so
a browser never lets a page read an answer.

The port is not part of the check: a rebinding page cannot change the *name* it was
loaded from, and a loopback proxy in front of the emulator keeps working.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Mapping
from urllib.parse import urlsplit

from reconciler.emulator.exceptions import AccessDeniedException

# The service's own names (a hosts-file entry may point them here); nobody but AWS can
# make a browser resolve them, so they cannot carry a rebinding attack.
_SERVICE_NAME = re.compile(r"(runtime-)?medical-imaging\.[a-z0-9-]+\.amazonaws\.com")


def _host_name(authority: str) -> str | None:
    """The host part of ``host[:port]`` / ``[v6][:port]``, lower-case; None if malformed."""
    parts = urlsplit(f"http://{authority}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return None
    if parts.username is not None or not parts.hostname or "/" in authority:
        return None
    return parts.hostname.lower()


def _known_name(name: str, bound_host: str, extra: Collection[str]) -> bool:
    if name in (bound_host.lower(), "localhost") or name.endswith(".localhost"):
        return True
    if name in extra:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return bool(_SERVICE_NAME.fullmatch(name))
    return True  # an address, not a name: nothing a DNS answer can rebind


def check(headers: Mapping[str, str], bound_host: str, extra: Collection[str] = ()) -> None:
    """Refuse (AccessDeniedException) a request whose Host is not a name of this server
    (``extra``: lower-case names it also answers to, e.g. a container's service name)
    or that comes from another origin. ``headers`` have lower-case names."""
    host = headers.get("host", "").strip()
    name = _host_name(host) if host else None
    if name is None or not _known_name(name, bound_host, extra):
        shown = repr(host[:100]) if host else "missing"
        raise AccessDeniedException(
            f"Host header {shown} does not name this server (use {bound_host} or localhost); "
            "refused as a possible DNS rebinding attack"
        )
    origin = headers.get("origin")
    if origin is not None:
        parts = urlsplit(origin.strip())
        if parts.scheme != "http" or parts.netloc.lower() != host.lower():
            raise AccessDeniedException(
                f"cross-origin request from {origin[:100]!r} refused: the local "
                "HealthImaging serves no web pages"
            )
    if headers.get("sec-fetch-site", "same-origin").strip() not in ("same-origin", "none"):
        raise AccessDeniedException(
            "cross-site request refused (Sec-Fetch-Site): the local HealthImaging serves "
            "no web pages"
        )
