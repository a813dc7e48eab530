"""What the CI system running us says about the job: where it is, which commit.

Read from the variables the CI services set (GitHub Actions, GitLab CI, Jenkins,
Buildkite, CircleCI, AWS CodeBuild, Azure Pipelines), or ``RECONCILER_JOB_URL`` where
none of them applies. Used to name a state lock's holder and the author of a change
(the audit trail).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

_JOB_URLS = (
    "CI_JOB_URL",
    "BUILD_URL",
    "BUILDKITE_BUILD_URL",
    "CIRCLE_BUILD_URL",
    "CODEBUILD_BUILD_URL",
)
_COMMITS = (
    "GITHUB_SHA",
    "CI_COMMIT_SHA",
    "GIT_COMMIT",
    "BUILDKITE_COMMIT",
    "CIRCLE_SHA1",
    "CODEBUILD_RESOLVED_SOURCE_VERSION",
    "BUILD_SOURCEVERSION",
)


def job_url(environ: Mapping[str, str] | None = None) -> str | None:
    """The URL of the CI job running now, or None outside CI."""
    env = os.environ if environ is None else environ
    if env.get("RECONCILER_JOB_URL"):
        return env["RECONCILER_JOB_URL"]
    if env.get("GITHUB_RUN_ID") and env.get("GITHUB_REPOSITORY"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
        return f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
    for name in _JOB_URLS:
        if env.get(name):
            return env[name]
    if env.get("SYSTEM_COLLECTIONURI") and env.get("BUILD_BUILDID"):
        project = env.get("SYSTEM_TEAMPROJECT", "")
        return (
            f"{env['SYSTEM_COLLECTIONURI'].rstrip('/')}/{project}/_build/results"
            f"?buildId={env['BUILD_BUILDID']}"
        )
    return None


def commit(environ: Mapping[str, str] | None = None, *, folder: Path | None = None) -> str | None:
    """The commit the CI job runs on; outside CI, given ``folder``, the ``HEAD`` of its
    git repository (the manifests a laptop applied); else None."""
    env = os.environ if environ is None else environ
    for name in _COMMITS:
        if env.get(name):
            return env[name]
    return None if folder is None else _head(folder)


def _head(folder: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--verify", "-q", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    found = done.stdout.strip()
    return found if done.returncode == 0 and len(found) in (40, 64) else None
