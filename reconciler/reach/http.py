"""A small JSON-over-HTTPS client for the hosts' REST APIs and webhooks (urllib only).

Every failure is one :class:`PostFailed` line naming what was asked and what came back,
never a traceback: a CI job that cannot post must fail saying why (a token without the
permission, an API URL that is wrong).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from reconciler.errors import ReconcilerError

TIMEOUT = 60.0  # seconds per request
MAX_ANSWER = 10 * 1024 * 1024  # bytes: a page of comments or issues is far less


class PostFailed(ReconcilerError):
    """A host or webhook refused or could not be reached."""


def _where(url: str) -> str:
    """``POST api.github.com/repos/…``: the URL without its query (tokens never go there,
    but a webhook's path is its secret: only its host is named)."""
    parts = urlsplit(url)
    return f"{parts.netloc}{parts.path}"


def request(
    method: str,
    url: str,
    *,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    secret_path: bool = False,
) -> Any:
    """Send ``body`` as JSON; the answer's JSON (None when empty)."""
    data = None if body is None else json.dumps(body).encode("utf-8")
    sent = {"Accept": "application/json", "User-Agent": "reconciler", **(headers or {})}
    if data is not None:
        sent["Content-Type"] = "application/json"
    named = urlsplit(url).netloc if secret_path else _where(url)
    ask = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(ask, timeout=TIMEOUT) as answer:
            raw = answer.read(MAX_ANSWER + 1)
    except urllib.error.HTTPError as error:
        detail = error.read(2000).decode("utf-8", "replace")
        message = _message(detail)
        raise PostFailed(
            f"{method} {named} was refused: {error.code} {error.reason}"
            + (f" ({message})" if message else "")
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise PostFailed(f"{method} {named} failed: {reason}") from None
    if len(raw) > MAX_ANSWER:
        raise PostFailed(f"{method} {named}: the answer is larger than {MAX_ANSWER} bytes")
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None  # a webhook's "ok": not JSON, nothing to read


def _message(detail: str) -> str:
    """The host's own words from an error body (``{"message": …}``), on one line."""
    try:
        found = json.loads(detail)
    except ValueError:
        return " ".join(detail.split())[:200]
    if isinstance(found, dict):
        text = found.get("message") or found.get("error") or ""
        return " ".join(str(text).split())[:200]
    return ""


def checked_url(url: str, what: str) -> str:
    """``url`` if it is http(s) with a host, else a one-line error naming ``what``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ReconcilerError(f"{what} must be an http(s) URL, not {url[:80]!r}")
    return url
