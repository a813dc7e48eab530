"""The project file ``reconciler.yaml``, and which HealthImaging endpoint to talk to.

``reconciler.yaml`` sits at the top of a project (found from the working directory
upwards, stopping at a folder holding ``.git`` or at the filesystem root). Its keys are
camelCase like the manifests' (``datastoreId`` is also read by the manifest validator)::

    endpoint: local                 # aws (default) | local | https://... (a custom URL)
    region: us-east-1
    profile: imaging-ops
    datastoreId: 2aa75d103f7f45ab977b0e93f00e6fe9
    parallelism: 8
    state: s3://imaging-state/reconciler   # local (default: .reconciler/state) | s3://bucket/prefix
    stateKmsKeyId: alias/reconciler-state  # S3 state: the KMS key of undo values (PHI)
    cacheDir: .reconciler/cache
    localDb: .reconciler/local-healthimaging.sqlite
    rateLimits: {UpdateImageSetMetadata: 0.5}   # requests per second, per operation
    serviceQuotas: true             # read the quotas AWS Service Quotas publishes
    showPhi: false
    lockTimeoutSeconds: 300

Runs, undo values and everything else kept between runs live in the state backend
(``state``, :mod:`reconciler.state`); in CI the backend comes from ``RECONCILER_STATE``
(a variable of the CI system, which a pull request cannot change), which wins over the
file. ``cacheDir`` (a cache of metadata projections: PHI) must lie in ``.reconciler/``,
which ``reconciler init``'s ``.gitignore`` keeps out of git.

This module is the format: the settings, their defaults and how an endpoint is chosen.
Reading and checking the file is :mod:`reconciler.manifest.settings`'s, through the
manifests' bounded YAML loader (the file may come from an untrusted pull request: CI
runs ``plan`` on it), so every mistake is one line at ``reconciler.yaml:line:column``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from reconciler.errors import ConfigError

PROJECT_FILE = "reconciler.yaml"
STATE_DIR = Path(".reconciler")  # the project's own state, under its root
ENDPOINT_ENV = "RECONCILER_ENDPOINT"
STATE_ENV = "RECONCILER_STATE"

# Operations whose client-side rate ``rateLimits`` may set (reconciler.healthimaging.pacing).
RATE_LIMITED_OPERATIONS = (
    "GetImageSet",
    "GetImageSetMetadata",
    "ListImageSetVersions",
    "SearchImageSets",
    "UpdateImageSetMetadata",
    "CopyImageSet",
    "DeleteImageSet",
    "TagResource",
    "ListTagsForResource",
)

# One bound for parallelism everywhere (--parallelism, reconciler.yaml, Session): image
# sets handled at once. Beyond it threads only wait on the account's quotas (0.25
# updates/s, 25 reads/s by default) and on the HTTP connection pool.
MAX_PARALLELISM = 64

EndpointKind = Literal["aws", "local", "url"]


@dataclass(frozen=True)
class Endpoint:
    """Where requests go: AWS itself, the embedded local HealthImaging, or a URL.

    ``url`` is set for ``url`` endpoints (and for ``local`` once the emulator runs);
    ``source`` says which setting chose it, for messages.
    """

    kind: EndpointKind
    url: str | None = None
    source: str = "default"

    def __str__(self) -> str:
        return self.url if self.kind == "url" and self.url else self.kind


@dataclass(frozen=True)
class ProjectConfig:
    """The settings of ``reconciler.yaml``; paths are absolute once loaded."""

    endpoint: str = "aws"
    region: str | None = None
    profile: str | None = None
    datastore_id: str | None = None
    parallelism: int = 8
    state: str = "local"  # local | s3://bucket/prefix
    state_kms_key_id: str | None = None
    cache_dir: Path = Path(".reconciler/cache")
    local_db: Path = Path(".reconciler/local-healthimaging.sqlite")
    rate_limits: Mapping[str, float] = field(default_factory=dict)
    service_quotas: bool = True  # read the account's quotas from AWS Service Quotas
    show_phi: bool = False
    lock_timeout_seconds: float = 300.0
    path: Path | None = None  # the file read; None when there is none
    root: Path = Path(".")  # the project folder: the file's folder, else where the search began

    @property
    def state_dir(self) -> Path:
        """``.reconciler/`` of the project, whose cache, undo values and local database
        ``reconciler init``'s ``.gitignore`` keeps out of git."""
        return self.root / STATE_DIR


@dataclass(frozen=True)
class StateSpec:
    """Where state is kept: ``local`` (``.reconciler/state`` of the project) or an
    ``s3`` URL; ``source`` says which setting chose it, for messages."""

    kind: Literal["local", "s3"]
    url: str | None = None
    source: str = "default"

    def __str__(self) -> str:
        return self.url or "local"


# -- endpoints ---------------------------------------------------------------------
def endpoint_problem(value: str) -> str | None:
    """Why ``value`` is not an endpoint, or None when it is one."""
    if value.lower() in ("aws", "local"):
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be aws, local or an http(s):// URL"
    # A URL carrying user:password would put a secret in every message that names it.
    if parts.username is not None or parts.password is not None:
        return "must not contain credentials (user:password@)"
    if parts.query or parts.fragment:
        return "must not have a query or fragment"
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return "has an invalid port"
    return None


def parse_endpoint(text: str, source: str) -> Endpoint:
    """``aws``, ``local`` or an http(s) URL; ``source`` names the setting in errors."""
    value = text.strip()
    problem = endpoint_problem(value)
    if problem:
        # A URL with user:password is not repeated: the password would be in the message.
        shown = "the endpoint URL" if "@" in value else f"endpoint {value!r}"
        raise ConfigError(f"{shown} {problem}", location=source)
    if value.lower() in ("aws", "local"):
        return Endpoint("aws" if value.lower() == "aws" else "local", None, source)
    return Endpoint("url", value.rstrip("/"), source)


def resolve_endpoint(
    cli_endpoint: str | None, env: Mapping[str, str], config: ProjectConfig
) -> Endpoint:
    """The endpoint to use: ``--endpoint`` (``--local`` passes ``"local"``), else the
    environment variable ``RECONCILER_ENDPOINT``, else ``reconciler.yaml``, else ``aws``."""
    if cli_endpoint is not None and cli_endpoint.strip():
        return parse_endpoint(cli_endpoint, "--endpoint")
    from_env = env.get(ENDPOINT_ENV, "").strip()
    if from_env:
        return parse_endpoint(from_env, ENDPOINT_ENV)
    return parse_endpoint(config.endpoint, PROJECT_FILE if config.path else "default")


# -- state -------------------------------------------------------------------------
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")


def state_problem(value: str) -> str | None:
    """Why ``value`` is not a state backend, or None when it is one."""
    if value.lower() == "local":
        return None
    parts = urlsplit(value)
    if parts.scheme != "s3":
        return "must be local or s3://bucket/prefix"
    if not _BUCKET_RE.match(parts.netloc or ""):
        return "must name an S3 bucket (3-63 lower-case letters, digits, dots, hyphens)"
    if parts.query or parts.fragment or "@" in value:
        return "must be s3://bucket/prefix, with no query, fragment or credentials"
    if any(part in (".", "..") for part in parts.path.split("/")):
        return "must not have . or .. in its prefix"
    return None


def parse_state(text: str, source: str) -> StateSpec:
    value = text.strip()
    problem = state_problem(value)
    if problem:
        raise ConfigError(f"state {value!r} {problem}", location=source)
    if value.lower() == "local":
        return StateSpec("local", None, source)
    return StateSpec("s3", value.rstrip("/"), source)


def resolve_state(
    cli_state: str | None, env: Mapping[str, str], config: ProjectConfig
) -> StateSpec:
    """The state backend: ``--state``, else ``RECONCILER_STATE`` (set by CI, where a
    pull request cannot change it), else ``state`` in reconciler.yaml, else local."""
    if cli_state is not None and cli_state.strip():
        return parse_state(cli_state, "--state")
    from_env = env.get(STATE_ENV, "").strip()
    if from_env:
        return parse_state(from_env, STATE_ENV)
    return parse_state(config.state, PROJECT_FILE if config.path else "default")


# -- finding the file --------------------------------------------------
def find_project_file(start: Path) -> Path | None:
    """The nearest ``reconciler.yaml`` in ``start`` or above, up to the git root."""
    folder = start.resolve()
    while True:
        candidate = folder / PROJECT_FILE
        if candidate.is_file():
            return candidate
        if (folder / ".git").exists() or folder.parent == folder:
            return None
        folder = folder.parent


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it lies under it, else as is."""
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return path.as_posix()
