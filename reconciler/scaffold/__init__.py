"""``init``: scaffold a manifest repository (``terraform init`` for reconciler).

Writes what a new manifest repository needs, and nothing that exists: every file is
created with ``O_EXCL``, so a second run changes nothing and a user's file is never
replaced. The CI recipes, the IAM policies, the crontab and the Kubernetes CronJob are
the ones in ``examples/`` (shipped in the package as ``recipes/``, symbolic links in the
source tree that packaging turns into copies), so installed code never reads a
repository checkout and what ``init`` writes is what the example tests run.

The recipes install reconciler from ``RECONCILER_PIP_SPEC``; ``init`` writes there how
the reconciler that runs it was installed (:func:`install_spec`): a release, a VCS URL,
a wheel's URL. A local folder or file cannot be reached from CI: then the recipes keep
the release pin and ``init`` says to point it where the project is published.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from importlib.metadata import distributions
from pathlib import Path
from typing import Any

from reconciler.errors import ConfigError
from reconciler.version import __version__

GITIGNORE = """\
# reconciler: what must stay out of git.
# .reconciler/ holds the local state (runs, undo values of replaced image sets: PHI),
# the cache of metadata projections (PHI) and the local HealthImaging's database. Git
# holds the desired state only: a pull request can write anything in git, so nothing
# reconciler trusts may come from it (teams keep state in S3: `state:`).
.reconciler/
# Saved plans and their renderings (values, PHI):
plan.json
*.plan.json
plan.md
plan.html
saved-plan/
"""

PRE_COMMIT = """\
# Run `pre-commit install` once: every commit then validates the manifests with the
# `reconciler` installed here (a local hook: no published tag is needed).
repos:
  - repo: local
    hooks:
      - id: reconciler-validate
        name: reconciler validate
        entry: reconciler validate --skip-non-manifests
        language: system
        files: \\.(ya?ml)$
        pass_filenames: true
        require_serial: true   # conflicts and duplicate names span files
"""

_EDITOR = """\
# Editors complete manifests from the JSON Schema: `reconciler validate --schema-path`
# prints where it is (for the YAML extension's yaml.schemas setting).
"""

SAMPLE_HEADER = (
    _EDITOR
    + """\
#
# A first manifest, made by `reconciler init` with `reconciler export`: it states the
# live StudyDescription of one image set, so `reconciler plan` shows it in sync.
# Change the value and plan again to see a correction; `reconciler explain KEYWORD`
# says where any other attribute goes.
"""
)

EMPTY_SAMPLE = (
    _EDITOR
    + """\
#
# Manifests go in this folder (any *.yaml, in subfolders too). A first one:
#
# apiVersion: reconciler/v1
# kind: ImageSetMetadata
# metadata:
#   name: fix-study-description
# spec:
#   selector:
#     studyInstanceUID: "1.2.840.113619.2.55.3"   # your study
#   set:
#     Study:
#       StudyDescription: CT CHEST W/O CONTRAST
#
# `reconciler show --study UID` shows what is live; `reconciler export` writes
# manifests that state it.
"""
)


class Extra(str, enum.Enum):
    """Examples ``init --with`` writes besides the CI recipes."""

    IAM = "iam"
    CRON = "cron"
    KUBERNETES = "kubernetes"


_EXTRAS: dict[Extra, tuple[tuple[str, str], ...]] = {
    Extra.IAM: tuple(
        (f"iam/{name}", f"ops/iam/{name}")
        for name in (
            "read-only-policy.json",
            "write-policy.json",
            "replace-primary-policy.json",
            "github-oidc-trust.json",
        )
    ),
    Extra.CRON: (("cron/crontab", "ops/cron/crontab"),),
    Extra.KUBERNETES: (
        (
            "kubernetes/reconciler-drift-cronjob.yaml",
            "ops/kubernetes/reconciler-drift-cronjob.yaml",
        ),
    ),
}
DISTRIBUTION = "healthimaging-reconciler"
# The placeholder the shipped recipes carry where the install spec goes.
PLACEHOLDER = f"{DISTRIBUTION}==0.1.0"


def spec_from(direct_url: dict[str, Any] | None, version: str) -> tuple[str, str | None]:
    """How to install again what ``direct_url`` (PEP 610's direct_url.json of the
    installed distribution; None: from an index) describes, and a note when CI cannot
    install it from there."""
    release = f"{DISTRIBUTION}=={version}"
    if not direct_url:
        return release, None
    url = str(direct_url.get("url", ""))
    vcs = direct_url.get("vcs_info") or {}
    if vcs and not url.startswith("file:"):
        commit = vcs.get("commit_id") or vcs.get("requested_revision")
        return f"{vcs.get('vcs', 'git')}+{url}" + (f"@{commit}" if commit else ""), None
    if "archive_info" in direct_url and url.startswith(("https://", "http://")):
        return f"{DISTRIBUTION} @ {url}", None
    return release, (
        f"reconciler was installed from {url or 'a local folder'}, which CI cannot reach: "
        f"the recipes install {release} — set RECONCILER_PIP_SPEC in them to where the "
        "project is published (a release, a git URL such as git+https://…@TAG, a wheel's URL)"
    )


def install_spec() -> tuple[str, str | None]:
    """:func:`spec_from` for the running reconciler."""
    # A checkout's build metadata (an .egg-info beside the source) may be found first:
    # the installed distribution is the one that recorded how it was installed.
    found_all = list(distributions(name=DISTRIBUTION))
    if not found_all:  # run from a checkout without installing
        return f"{DISTRIBUTION}=={__version__}", (
            "reconciler is not installed as a distribution here: set RECONCILER_PIP_SPEC in "
            "the recipes to where the project is published"
        )
    found = next((d for d in found_all if d.read_text("direct_url.json")), found_all[0])
    raw = found.read_text("direct_url.json")
    try:
        direct = json.loads(raw) if raw else None
    except ValueError:
        direct = None
    return spec_from(direct if isinstance(direct, dict) else None, found.version)


class CI(str, enum.Enum):
    GITHUB = "github"
    GITLAB = "gitlab"
    NONE = "none"


_RECIPES: dict[CI, tuple[tuple[str, str], ...]] = {
    CI.GITHUB: tuple(
        (f"github/{name}", f".github/workflows/{name}")
        for name in ("plan-on-pull-request.yml", "apply-on-merge.yml", "drift-schedule.yml")
    ),
    CI.GITLAB: (("gitlab/gitlab-ci.yml", ".gitlab-ci.yml"),),
    CI.NONE: (),
}


@dataclass(frozen=True)
class InitResult:
    directory: Path
    created: tuple[Path, ...]
    kept: tuple[Path, ...]  # existed already: left exactly as they were
    notes: tuple[str, ...] = ()  # what the user must still do (e.g. the install spec)


def recipe(name: str) -> str:
    """A shipped CI recipe's text (``github/apply-on-merge.yml``, ``gitlab/gitlab-ci.yml``)."""
    return resources.files(__package__).joinpath("recipes", *name.split("/")).read_text("utf-8")


def choose_datastore(stores: list[tuple[str, str, str]]) -> str:
    """The only ACTIVE data store of ``stores`` (ID, name, status); else say what to pass."""
    active = sorted((i, n) for i, n, status in stores if status == "ACTIVE")
    if len(active) == 1:
        return active[0][0]
    if not active:
        raise ConfigError(
            "no ACTIVE data store in this account and region: create one, or pass --datastore-id"
        )
    listed = ", ".join(f"{i} ({n})" for i, n in active)
    raise ConfigError(f"{len(active)} data stores: pass --datastore-id, one of {listed}")


def project_file(
    datastore_id: str, *, endpoint: str | None, region: str | None, state: str | None = None
) -> str:
    """reconciler.yaml for ``datastore_id``: with the endpoint ``init`` ran against
    (``local`` or a URL; None for AWS, the default), so the next command goes there too."""
    lines = ["# reconciler's project file: defaults for every manifest and command here."]
    if endpoint == "local":
        lines += [
            "# endpoint: local runs against the embedded local HealthImaging (seeded on first",
            "# use); CI sets RECONCILER_ENDPOINT=aws.",
            "endpoint: local",
        ]
    elif endpoint is not None:
        lines += [
            "# The HealthImaging endpoint `reconciler init` ran against; CI sets",
            "# RECONCILER_ENDPOINT=aws.",
            f"endpoint: {json.dumps(endpoint)}",
        ]
    if region:
        lines.append(f"region: {region}")
    lines.append(f"datastoreId: {datastore_id}")
    if state is not None and state != "local":
        lines += [
            "# Runs, undo values and locks live here (CI sets RECONCILER_STATE, which wins).",
            "# Use a versioned bucket: every state object then keeps its history.",
            f"state: {state}",
        ]
    return "\n".join(lines) + "\n"


def _write_new(path: Path, text: str, created: list[Path], kept: list[Path]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("x", encoding="utf-8") as out:
            out.write(text)
    except FileExistsError:
        kept.append(path)
        return
    created.append(path)


def init(
    directory: Path,
    *,
    datastore_id: Callable[[], str],
    sample: Callable[[str], str | None],
    ci: CI = CI.NONE,
    endpoint: str | None = None,
    region: str | None = None,
    state: str | None = None,
    extras: tuple[Extra, ...] = (),
    spec: tuple[str, str | None] | None = None,
) -> InitResult:
    """Scaffold ``directory``. ``datastore_id`` is asked only when reconciler.yaml must
    be written; ``sample`` gives the sample manifest's YAML for a data store (or None)."""
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory} exists and is not a folder")
    created: list[Path] = []
    kept: list[Path] = []
    project = directory / "reconciler.yaml"
    store: str | None = None
    if not project.exists():
        store = datastore_id()
        text = project_file(store, endpoint=endpoint, region=region, state=state)
        _write_new(project, text, created, kept)
    else:
        kept.append(project)
    _write_new(directory / ".gitignore", GITIGNORE, created, kept)
    _write_new(directory / ".pre-commit-config.yaml", PRE_COMMIT, created, kept)
    example = directory / "manifests" / "example.yaml"
    if not example.exists() and not (directory / "manifests").is_dir():
        body = sample(store) if store is not None else None
        _write_new(example, (SAMPLE_HEADER + body) if body else EMPTY_SAMPLE, created, kept)
    elif example.exists():
        kept.append(example)
    written = [*_RECIPES[ci], *(item for extra in extras for item in _EXTRAS[extra])]
    install, note = spec if spec is not None else install_spec()
    for source, target in written:
        text = recipe(source).replace(PLACEHOLDER, install)
        _write_new(directory / target, text, created, kept)
    notes = (note,) if note and written else ()
    return InitResult(directory, tuple(created), tuple(kept), notes)
