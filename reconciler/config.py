"""The project file ``reconciler.yaml``, and which HealthImaging endpoint to talk to.

``reconciler.yaml`` sits at the top of a project (found from the working directory
upwards, stopping at a folder holding ``.git`` or at the filesystem root). Its keys are
camelCase like the manifests' (``datastoreId`` is also read by the manifest validator)::

    endpoint: local                 # aws (default) | local | https://... (a custom URL)
    region: us-east-1
    profile: imaging-ops
    datastoreId: 2aa75d103f7f45ab977b0e93f00e6fe9
    parallelism: 8
    journalDir: .reconciler/runs
    cacheDir: .reconciler/cache
    localDb: .reconciler/local-healthimaging.sqlite
    rateLimits: {UpdateImageSetMetadata: 0.5}   # requests per second, per operation
    showPhi: false
    lockTimeoutSeconds: 300

Every mistake is a one-line :class:`~reconciler.errors.ConfigError` located at
``reconciler.yaml:line:column``. The file may come from an untrusted pull request (CI
runs ``plan`` on it), so the folders it names must stay inside the project folder.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

from reconciler.errors import ConfigError

PROJECT_FILE = "reconciler.yaml"
ENDPOINT_ENV = "RECONCILER_ENDPOINT"
MAX_FILE_BYTES = 64 * 1024  # a settings file; anything bigger is a mistake

# Operations whose client-side rate ``rateLimits`` may set (reconciler.healthimaging.pacing).
RATE_LIMITED_OPERATIONS = (
    "GetImageSet",
    "GetImageSetMetadata",
    "ListImageSetVersions",
    "SearchImageSets",
    "UpdateImageSetMetadata",
    "CopyImageSet",
    "DeleteImageSet",
)

_ID_RE = re.compile(r"[0-9a-z]{32}\Z")
_REGION_RE = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]+\Z")
_PROFILE_RE = re.compile(r"[\w+=,.@:/-]+\Z")

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
    journal_dir: Path = Path(".reconciler/runs")
    cache_dir: Path = Path(".reconciler/cache")
    local_db: Path = Path(".reconciler/local-healthimaging.sqlite")
    rate_limits: Mapping[str, float] = field(default_factory=dict)
    show_phi: bool = False
    lock_timeout_seconds: float = 300.0
    path: Path | None = None  # the file read; None when there is none
    root: Path = Path(".")  # the project folder: the file's folder, else where the search began


# -- endpoints ---------------------------------------------------------------------
def _endpoint_problem(value: str) -> str | None:
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
    problem = _endpoint_problem(value)
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


# -- finding and reading the file --------------------------------------------------
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


def load_project_config(start: Path | None = None) -> ProjectConfig:
    """Find and read ``reconciler.yaml`` from ``start`` (default: the working directory).

    With no file, the defaults apply and relative paths hang off ``start``.
    """
    folder = (start or Path.cwd()).resolve()
    path = find_project_file(folder)
    if path is None:
        return _with_paths({}, folder, None)
    return read_project_config(path)


def read_project_config(path: Path) -> ProjectConfig:
    """Read and check the project file at ``path``."""
    shown = display_path(path)
    text = _read_text(path, shown)
    node, data = _parse(text, shown)
    if data is None:
        return _with_paths({}, path.parent.resolve(), path)
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{PROJECT_FILE} must be a mapping of settings", location=f"{shown}:1")
    values = _check(node, data, shown, path.parent.resolve())
    return _with_paths(values, path.parent.resolve(), path)


def _read_text(path: Path, shown: str) -> str:
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except OSError as failure:
        raise ConfigError(f"cannot read: {failure.strerror or failure}", location=shown) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"larger than {MAX_FILE_BYTES // 1024} KiB; is this the right file?",
                          location=shown)  # fmt: skip
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text; save it as UTF-8", location=shown) from None


def _parse(text: str, shown: str) -> tuple[yaml.Node | None, Any]:
    """``yaml.safe_load``, done in its two steps so the nodes keep their line numbers."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    except yaml.MarkedYAMLError as failure:
        mark = failure.problem_mark or failure.context_mark
        where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark else shown
        problem = " ".join(str(failure.problem or "").split())
        context = " ".join(str(failure.context or "").split())
        # PyYAML splits sentences like "expected a single document" / "but found another".
        if problem.startswith("but ") and context:
            problem = f"{context} {problem}"
        elif context:
            problem = f"{problem} ({context})"
        raise ConfigError(f"invalid YAML: {problem}", location=where) from None
    except yaml.YAMLError as failure:
        raise ConfigError(f"invalid YAML: {' '.join(str(failure).split())}",
                          location=shown) from None  # fmt: skip
    except RecursionError:  # PyYAML composes recursively: a settings file is never this deep
        raise ConfigError("nested too deeply to be settings", location=shown) from None
    finally:
        loader.dispose()


# -- checking each setting ---------------------------------------------------------
class _Invalid(Exception):
    """A value does not fit its setting; the text says what would."""

    def __init__(self, expected: str, *, echo: bool = True) -> None:
        super().__init__(expected)
        self.echo = echo  # False: the value may hold a secret, do not quote it


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _string(pattern: re.Pattern[str], expected: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if isinstance(value, str) and pattern.match(value):
            return value
        raise _Invalid(expected)

    return check


def _endpoint(value: Any) -> str:
    if isinstance(value, str) and _endpoint_problem(value.strip()) is None:
        return value.strip()
    raise _Invalid(
        "aws, local or an http(s):// URL (without user:password, query or fragment)",
        echo=not (isinstance(value, str) and "@" in value),
    )


def _parallelism(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 256:
        return value
    raise _Invalid("a whole number from 1 to 256")


def _seconds(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 86400:
        return float(value)
    raise _Invalid("a number of seconds above 0 and at most 86400")


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise _Invalid("true or false")


def _folder(value: Any) -> str:
    if isinstance(value, str) and value.strip() and "\x00" not in value:
        return value
    raise _Invalid("a path (relative to the folder of reconciler.yaml)")


# YAML key → (ProjectConfig field, check).
_SETTINGS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "endpoint": ("endpoint", _endpoint),
    "region": ("region", _string(_REGION_RE, "an AWS region such as us-east-1")),
    "profile": ("profile", _string(_PROFILE_RE, "the name of an AWS profile")),
    "datastoreId": (
        "datastore_id",
        _string(_ID_RE, "32 lower-case letters and digits ([0-9a-z]{32})"),
    ),
    "parallelism": ("parallelism", _parallelism),
    "journalDir": ("journal_dir", _folder),
    "cacheDir": ("cache_dir", _folder),
    "localDb": ("local_db", _folder),
    "rateLimits": ("rate_limits", lambda value: value),  # checked by _rate_limits
    "showPhi": ("show_phi", _boolean),
    "lockTimeoutSeconds": ("lock_timeout_seconds", _seconds),
}
_PATH_FIELDS = ("journal_dir", "cache_dir", "local_db")
_STR_TAG = "tag:yaml.org,2002:str"


def _suggest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    folded = {c.lower().replace("_", "").replace("-", ""): c for c in choices}
    same = folded.get(word.lower().replace("_", "").replace("-", ""))
    close = [same] if same else difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else f"; known: {', '.join(choices)}"


def _at(shown: str, node: yaml.Node) -> str:
    return f"{shown}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"


def _check(node: yaml.MappingNode, data: dict[str, Any], shown: str, root: Path) -> dict[str, Any]:
    values: dict[str, Any] = {}
    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        key = key_node.value
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR_TAG:
            raise ConfigError("setting names must be plain text", location=_at(shown, key_node))
        # safe_load keeps the last of two equal keys: say so rather than guess which wins.
        if key in seen:
            raise ConfigError(f"{key} is set twice (first at line {seen[key]}); keep one",
                              location=_at(shown, key_node))  # fmt: skip
        seen[key] = key_node.start_mark.line + 1
        if key not in _SETTINGS:
            raise ConfigError(f"unknown setting {key!r}{_suggest(key, list(_SETTINGS))}",
                              location=_at(shown, key_node))  # fmt: skip
        name, check = _SETTINGS[key]
        value = data[key]
        if value is None:  # `key:` with no value: the default
            continue
        try:
            if key == "rateLimits":
                values[name] = _rate_limits(value, value_node, shown)
            else:
                values[name] = check(value)
        except _Invalid as failure:
            got = f"; got {_short(value)}" if failure.echo else ""
            raise ConfigError(f"{key} must be {failure}{got}",
                              location=_at(shown, value_node)) from None  # fmt: skip
        if name in _PATH_FIELDS:
            values[name] = _inside(root, values[name], key, _at(shown, value_node))
    return values


def _rate_limits(value: Any, node: yaml.Node, shown: str) -> dict[str, float]:
    if not isinstance(value, dict) or not isinstance(node, yaml.MappingNode):
        raise _Invalid("a mapping of operation name to requests per second")
    limits: dict[str, float] = {}
    for key_node, value_node in node.value:
        operation = key_node.value
        if operation in limits:
            raise ConfigError(f"rateLimits.{operation} is set twice; keep one",
                              location=_at(shown, key_node))  # fmt: skip
        if key_node.tag != _STR_TAG or operation not in RATE_LIMITED_OPERATIONS:
            raise ConfigError(
                f"rateLimits: unknown operation {operation!r}"
                f"{_suggest(str(operation), RATE_LIMITED_OPERATIONS)}",
                location=_at(shown, key_node),
            )
        rate = value.get(operation)
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 < rate <= 10000:
            raise ConfigError(
                f"rateLimits.{operation} must be requests per second above 0 (e.g. 0.25); "
                f"got {_short(rate)}",
                location=_at(shown, value_node),
            )
        limits[operation] = float(rate)
    return limits


def _inside(root: Path, value: str, key: str, where: str) -> Path:
    """``value`` resolved against ``root``; refused when it leads out of the project."""
    resolved = (root / value).resolve()  # follows symlinks, so a link out is caught too
    if not resolved.is_relative_to(root):
        raise ConfigError(
            f"{key} {value!r} leads outside the project folder {display_path(root)} "
            "(path traversal); use a path inside it",
            location=where,
        )
    return resolved


def _with_paths(values: dict[str, Any], root: Path, path: Path | None) -> ProjectConfig:
    """A config from checked ``values``, its default paths made absolute under ``root``."""
    defaults = ProjectConfig()
    for name in _PATH_FIELDS:
        if name not in values:
            values[name] = (root / getattr(defaults, name)).resolve()
    return ProjectConfig(**values, path=path, root=root)
