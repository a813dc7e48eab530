"""Reading ``reconciler.yaml`` through the same bounded loader as the manifests.

The project file arrives in pull requests like the manifests do, so it gets the same
treatment (:mod:`~reconciler.manifest.textfile`, :mod:`~reconciler.manifest.yamlsafe`):
bytes read with a size bound, YAML 1.2 scalars, no duplicate keys, aliases counted,
nesting refused in linear time, and a position for every key and value. The settings'
*format* (fields, defaults, endpoints) is :mod:`reconciler.config`'s; this module only
reads and checks a file into a :class:`~reconciler.config.ProjectConfig`.

:func:`check_project_file` returns problems (the validator lists them with the
manifests' own); :func:`read_project_config` raises the first as a one-line
:class:`~reconciler.errors.ConfigError` located at ``reconciler.yaml:line:column``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler.config import (
    MAX_PARALLELISM,
    PROJECT_FILE,
    RATE_LIMITED_OPERATIONS,
    STATE_DIR,
    ProjectConfig,
    display_path,
    endpoint_problem,
    find_project_file,
    state_problem,
)
from reconciler.errors import ConfigError
from reconciler.manifest import codes
from reconciler.manifest.model import Location, Problem, error
from reconciler.manifest.policies import load_policies
from reconciler.manifest.textfile import load_file
from reconciler.manifest.yamlsafe import Document
from reconciler.suggest import closest

MAX_FILE_BYTES = 64 * 1024  # a settings file; anything bigger is a mistake

_ID_RE = re.compile(r"[0-9a-z]{32}\Z")
_REGION_RE = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]+\Z")
_PROFILE_RE = re.compile(r"[\w+=,.@:/-]+\Z")
_PATH_FIELDS = ("cache_dir", "local_db")
_KMS_RE = re.compile(r"[A-Za-z0-9:/_+=,.@-]{1,2048}\Z")
# Settings of earlier versions, refused with what replaced them.
_GONE = {
    "journalDir": "journalDir is no longer a setting: runs live in the state backend "
    "(`state:`, default local: .reconciler/state); `reconciler state migrate --from-journal DIR` "
    "brings the runs of an earlier journal folder into it",
}


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
    if isinstance(value, str) and endpoint_problem(value.strip()) is None:
        return value.strip()
    raise _Invalid(
        "aws, local or an http(s):// URL (without user:password, query or fragment)",
        echo=not (isinstance(value, str) and "@" in value),
    )


def _state(value: Any) -> str:
    if isinstance(value, str) and state_problem(value.strip()) is None:
        return value.strip()
    raise _Invalid("local or s3://bucket/prefix")


def _parallelism(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_PARALLELISM:
        return value
    raise _Invalid(f"a whole number from 1 to {MAX_PARALLELISM}")


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


def _rate(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 10000:
        return float(value)
    raise _Invalid("requests per second above 0 (e.g. 0.25)")


# YAML key → (ProjectConfig field, check).
SETTINGS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "endpoint": ("endpoint", _endpoint),
    "region": ("region", _string(_REGION_RE, "an AWS region such as us-east-1")),
    "profile": ("profile", _string(_PROFILE_RE, "the name of an AWS profile")),
    "datastoreId": (
        "datastore_id",
        _string(_ID_RE, "32 lower-case letters and digits ([0-9a-z]{32})"),
    ),
    "parallelism": ("parallelism", _parallelism),
    "state": ("state", _state),
    "stateKmsKeyId": (
        "state_kms_key_id",
        _string(_KMS_RE, "a KMS key ID, ARN or alias (alias/name)"),
    ),
    "cacheDir": ("cache_dir", _folder),
    "localDb": ("local_db", _folder),
    "rateLimits": ("rate_limits", lambda value: value),  # checked key by key below
    "serviceQuotas": ("service_quotas", _boolean),
    "showPhi": ("show_phi", _boolean),
    "lockTimeoutSeconds": ("lock_timeout_seconds", _seconds),
    "policies": ("", lambda value: value),  # read by reconciler.manifest.policies
}


def _suggest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    close = closest(word, choices)
    return f"; did you mean {close[0]}?" if close else f"; known: {', '.join(choices)}"


class _Checker:
    """Checks one document's settings, collecting a located problem per mistake."""

    def __init__(self, document: Document, root: Path) -> None:
        self.document = document
        self.root = root
        self.problems: list[Problem] = []

    def _problem(self, path: tuple[str, ...], message: str, *, key: bool = False) -> None:
        self.problems.append(error(self.document.location(path, key=key), message, codes.PROJECT))

    def settings(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key, value in self.document.value.items():
            if key in _GONE:
                self._problem((key,), _GONE[key], key=True)
                continue
            if key not in SETTINGS:
                self._problem((key,), f"unknown setting {key!r}{_suggest(key, list(SETTINGS))}",
                              key=True)  # fmt: skip
                continue
            if value is None:  # `key:` with no value: the default
                continue
            name = SETTINGS[key][0]
            if not name:
                continue
            checked = self._rate_limits(value) if key == "rateLimits" else self._one(key, value)
            if checked is not None and name in _PATH_FIELDS:
                checked = self._inside(key, checked)
            if checked is not None:
                values[name] = checked
        return values

    def _one(self, key: str, value: Any, path: tuple[str, ...] | None = None) -> Any:
        name = ".".join(path) if path else key
        check = _rate if path else SETTINGS[key][1]
        try:
            return check(value)
        except _Invalid as failure:
            got = f"; got {_short(value)}" if failure.echo else ""
            self._problem(path or (key,), f"{name} must be {failure}{got}")
            return None

    def _rate_limits(self, value: Any) -> dict[str, float] | None:
        if not isinstance(value, dict):
            self._problem(("rateLimits",), "rateLimits must be a mapping of operation name to "
                          f"requests per second; got {_short(value)}")  # fmt: skip
            return None
        limits: dict[str, float] = {}
        for operation, rate in value.items():
            path = ("rateLimits", operation)
            if operation not in RATE_LIMITED_OPERATIONS:
                hint = _suggest(operation, RATE_LIMITED_OPERATIONS)
                self._problem(path, f"rateLimits: unknown operation {operation!r}{hint}", key=True)
                continue
            checked = self._one("rateLimits", rate, path)
            if checked is not None:
                limits[operation] = checked
        return limits

    def private_places(self, values: dict[str, Any]) -> None:
        """Refuse a ``cacheDir`` outside ``.reconciler/``: the cache holds PHI (metadata
        projections), and only ``.reconciler/`` is kept out of git by ``reconciler
        init``'s ``.gitignore`` and out of what the CI recipes upload."""
        cache = values.get("cache_dir")
        if cache is not None and not cache.is_relative_to(self.root / STATE_DIR):
            self._problem(
                ("cacheDir",),
                f"cacheDir must lie in {STATE_DIR}/ (it holds PHI: "
                "metadata projections), which is kept out of git; e.g. "
                f"{STATE_DIR}/cache",
            )
            values.pop("cache_dir")

    def _inside(self, key: str, value: Any) -> Path | None:
        """``value`` under the project folder (:func:`_under`); refused when it leads
        out, by its ``..`` or through a symbolic link."""
        given = _under(self.root, value)
        if given.is_relative_to(self.root) and given.resolve().is_relative_to(self.root):
            return given
        folder = display_path(self.root)
        self._problem(
            (key,),
            f"{key} {value!r} leads outside the project folder {folder} (path traversal); "
            "use a path inside it",
        )
        return None


def _under(root: Path, value: Path) -> Path:
    """``root / value`` with its ``.`` and ``..`` taken out, and its symbolic links kept:
    the state backend refuses a folder reached through one (a link committed by a pull
    request, ``.reconciler/cache -> ../manifests``, must not move the cache's PHI into
    a committed folder), which it can only do if the path still names the link."""
    return Path(os.path.normpath(root / value))


def _too_large(path: Path, shown: str) -> Problem | None:
    try:
        size = path.stat().st_size
    except OSError:
        return None  # the reader says why it cannot read it
    if size <= MAX_FILE_BYTES:
        return None
    return error(Location(shown), f"larger than {MAX_FILE_BYTES // 1024} KiB; is this the "
                 "right file?", codes.FILE_TOO_LARGE)  # fmt: skip


def with_defaults(values: dict[str, Any], root: Path, path: Path | None) -> ProjectConfig:
    """A config from checked ``values``, its default paths made absolute under ``root``."""
    defaults = ProjectConfig()
    for name in _PATH_FIELDS:
        if name not in values:
            values[name] = _under(root, getattr(defaults, name))
    return ProjectConfig(**values, path=path, root=root)


def check_project_file(path: Path) -> tuple[ProjectConfig, list[Problem]]:
    """The settings of the project file at ``path`` and every problem found in it (a
    setting with a problem keeps its default)."""
    shown = display_path(path)
    root = path.parent.resolve()
    oversized = _too_large(path, shown)
    if oversized is not None:
        return with_defaults({}, root, path), [oversized]
    documents, problems = load_file(path, shown)
    problems = [p for p in problems if p.code != codes.FILE_EMPTY]
    if len(documents) > 1:
        second = f"{PROJECT_FILE} must hold a single YAML document; remove the '---' and after"
        problems.append(error(documents[1].start, second, codes.PROJECT))
    if not documents:
        return with_defaults({}, root, path), problems
    document = documents[0]
    if not isinstance(document.value, dict):
        problems.append(
            error(document.start, f"{PROJECT_FILE} must be a mapping of settings", codes.PROJECT)
        )
        return with_defaults({}, root, path), problems
    checker = _Checker(document, root)
    values = checker.settings()
    checker.private_places(values)
    _, policy_problems = load_policies(path, root)
    return with_defaults(values, root, path), problems + checker.problems + policy_problems


def read_project_config(path: Path) -> ProjectConfig:
    """The project file at ``path``; its first problem raised as a located ConfigError."""
    config, problems = check_project_file(path)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        first = errors[0]
        where = first.location
        location = f"{where.path}:{where.line}:{where.column}" if where.line else where.path
        raise ConfigError(first.message, location=location)
    return config


def load_project_config(start: Path | None = None) -> ProjectConfig:
    """Find and read ``reconciler.yaml`` from ``start`` (default: the working directory)
    upward to the git root. With no file, the defaults apply under ``start``."""
    folder = (start or Path.cwd()).resolve()
    path = find_project_file(folder)
    if path is None:
        return with_defaults({}, folder, None)
    return read_project_config(path)
