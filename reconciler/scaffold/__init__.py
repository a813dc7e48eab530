"""``init``: scaffold a manifest repository (``terraform init`` for reconciler).

Writes what a new manifest repository needs, and nothing that exists: every file is
created with ``O_EXCL``, so a second run changes nothing and a user's file is never
replaced. The CI recipes are the ones in ``examples/`` (shipped in the package as
``recipes/``, symbolic links in the source tree that packaging turns into copies), so
installed code never reads a repository checkout and the recipes ``init`` writes are
the ones the example tests run.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from reconciler.errors import ConfigError

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
# Run `pre-commit install` once: every commit then validates the manifests.
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
    for source, target in _RECIPES[ci]:
        _write_new(directory / target, recipe(source), created, kept)
    return InitResult(directory, tuple(created), tuple(kept))
