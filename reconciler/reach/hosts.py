"""GitHub's and GitLab's REST APIs, as much as the comment and the issues need.

:func:`from_environment` reads what the CI job sets — GitHub Actions:
``GITHUB_API_URL``, ``GITHUB_REPOSITORY``, ``GITHUB_EVENT_PATH`` (the pull request) and
the job's ``GITHUB_TOKEN``; GitLab CI: ``CI_API_V4_URL``, ``CI_PROJECT_ID``,
``CI_MERGE_REQUEST_IID`` and ``RECONCILER_GITLAB_TOKEN`` (a project access token: the
job token cannot write notes or issues). Only comments the job's own identity wrote are
ever edited or deleted (on GitHub the Actions bot, or ``RECONCILER_COMMENT_AUTHOR``
when a personal token posts; on GitLab the token's user).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from reconciler.errors import ConfigError
from reconciler.reach.http import checked_url, request

PAGE = 100


@dataclass(frozen=True)
class Comment:
    id: str
    body: str


@dataclass(frozen=True)
class Issue:
    number: str
    title: str
    body: str


class Host(Protocol):
    name: str
    comment_limit: int  # characters a comment (a note) may hold

    def comments(self) -> list[Comment]: ...
    def create_comment(self, body: str) -> None: ...
    def update_comment(self, comment: Comment, body: str) -> None: ...
    def delete_comment(self, comment: Comment) -> None: ...
    def open_issues(self, label: str) -> list[Issue]: ...
    def create_issue(self, title: str, body: str, label: str) -> None: ...
    def update_issue(self, issue: Issue, body: str) -> None: ...
    def close_issue(self, issue: Issue, comment: str) -> None: ...


def _pages(
    call: Callable[[str, str], Any], path: str, query: dict[str, str]
) -> Iterator[dict[str, Any]]:
    """Every item of a paged listing (``per_page``/``page``, GitHub's and GitLab's way)."""
    page = 1
    while True:
        items = call("GET", f"{path}?{urlencode({**query, 'per_page': PAGE, 'page': page})}")
        if not isinstance(items, list):
            return
        yield from (i for i in items if isinstance(i, dict))
        if len(items) < PAGE:
            return
        page += 1


def _need(env: Mapping[str, str], name: str, why: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"${name} is not set: {why}")
    return value


class GitHub:
    name = "GitHub"
    comment_limit = 65_536  # GitHub refuses longer comment bodies

    def __init__(self, env: Mapping[str, str], *, need_pull_request: bool) -> None:
        api = env.get("GITHUB_API_URL", "").strip() or "https://api.github.com"
        self.api = checked_url(api.rstrip("/"), "$GITHUB_API_URL")
        self.repo = _need(env, "GITHUB_REPOSITORY", "run this in GitHub Actions")
        token = _need(
            env, "GITHUB_TOKEN", "pass the job's token (env: GITHUB_TOKEN: ${{ github.token }})"
        )
        self.headers = {"Authorization": f"Bearer {token}", "X-GitHub-Api-Version": "2022-11-28"}
        self.author = env.get("RECONCILER_COMMENT_AUTHOR", "").strip()
        self.number = _pull_request(env) if need_pull_request else ""

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        return request(
            method, f"{self.api}/repos/{self.repo}{path}", body=body, headers=self.headers
        )

    def _pages(self, path: str, query: dict[str, str]) -> Iterator[dict[str, Any]]:
        return _pages(self._call, path, query)

    def _ours(self, user: Mapping[str, Any]) -> bool:
        if self.author:
            return bool(user.get("login") == self.author)
        return bool(user.get("type") == "Bot")

    def comments(self) -> list[Comment]:
        found = self._pages(f"/issues/{self.number}/comments", {})
        return [
            Comment(str(c["id"]), str(c.get("body") or ""))
            for c in found
            if self._ours(c.get("user") or {})
        ]

    def create_comment(self, body: str) -> None:
        self._call("POST", f"/issues/{self.number}/comments", {"body": body})

    def update_comment(self, comment: Comment, body: str) -> None:
        self._call("PATCH", f"/issues/comments/{comment.id}", {"body": body})

    def delete_comment(self, comment: Comment) -> None:
        self._call("DELETE", f"/issues/comments/{comment.id}")

    def open_issues(self, label: str) -> list[Issue]:
        found = self._pages("/issues", {"labels": label, "state": "open"})
        return [
            Issue(str(i["number"]), str(i.get("title") or ""), str(i.get("body") or ""))
            for i in found
            if "pull_request" not in i
        ]

    def create_issue(self, title: str, body: str, label: str) -> None:
        self._call("POST", "/issues", {"title": title, "body": body, "labels": [label]})

    def update_issue(self, issue: Issue, body: str) -> None:
        self._call("PATCH", f"/issues/{issue.number}", {"body": body})

    def close_issue(self, issue: Issue, comment: str) -> None:
        self._call("POST", f"/issues/{issue.number}/comments", {"body": comment})
        self._call(
            "PATCH", f"/issues/{issue.number}", {"state": "closed", "state_reason": "completed"}
        )


def _pull_request(env: Mapping[str, str]) -> str:
    given = env.get("RECONCILER_PR_NUMBER", "").strip()
    if given:
        return given
    event = env.get("GITHUB_EVENT_PATH", "").strip()
    try:
        number = json.loads(Path(event).read_text("utf-8"))["pull_request"]["number"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(
            "no pull request: run this on a pull_request event (or set RECONCILER_PR_NUMBER)"
        ) from None
    return str(number)


class GitLab:
    name = "GitLab"
    comment_limit = 1_000_000  # GitLab's limit on a note's body

    def __init__(self, env: Mapping[str, str], *, need_pull_request: bool) -> None:
        api = _need(env, "CI_API_V4_URL", "run this in GitLab CI")
        project = _need(env, "CI_PROJECT_ID", "run this in GitLab CI")
        self.api = (
            f"{checked_url(api.rstrip('/'), '$CI_API_V4_URL')}/projects/{quote(project, safe='')}"
        )
        self.root = api.rstrip("/")
        token = env.get("RECONCILER_GITLAB_TOKEN", "").strip()
        if not token:
            raise ConfigError(
                "$RECONCILER_GITLAB_TOKEN is not set: a project access token (role Reporter, "
                "scope api) writes the notes and issues; the job token cannot"
            )
        self.headers = {"PRIVATE-TOKEN": token}
        self.number = (
            _need(env, "CI_MERGE_REQUEST_IID", "run this in a merge request pipeline")
            if need_pull_request
            else ""
        )
        self._me: str | None = None

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        return request(method, f"{self.api}{path}", body=body, headers=self.headers)

    def _pages(self, path: str, query: dict[str, str]) -> Iterator[dict[str, Any]]:
        return _pages(self._call, path, query)

    def _whoami(self) -> str:
        if self._me is None:
            me = request("GET", f"{self.root}/user", headers=self.headers)
            self._me = str((me or {}).get("username") or "")
        return self._me

    def comments(self) -> list[Comment]:
        me = self._whoami()
        notes = self._pages(f"/merge_requests/{self.number}/notes", {"sort": "asc"})
        return [
            Comment(str(n["id"]), str(n.get("body") or ""))
            for n in notes
            if (n.get("author") or {}).get("username") == me
        ]

    def create_comment(self, body: str) -> None:
        self._call("POST", f"/merge_requests/{self.number}/notes", {"body": body})

    def update_comment(self, comment: Comment, body: str) -> None:
        self._call("PUT", f"/merge_requests/{self.number}/notes/{comment.id}", {"body": body})

    def delete_comment(self, comment: Comment) -> None:
        self._call("DELETE", f"/merge_requests/{self.number}/notes/{comment.id}")

    def open_issues(self, label: str) -> list[Issue]:
        found = self._pages("/issues", {"labels": label, "state": "opened"})
        return [
            Issue(str(i["iid"]), str(i.get("title") or ""), str(i.get("description") or ""))
            for i in found
        ]

    def create_issue(self, title: str, body: str, label: str) -> None:
        self._call("POST", "/issues", {"title": title, "description": body, "labels": label})

    def update_issue(self, issue: Issue, body: str) -> None:
        self._call("PUT", f"/issues/{issue.number}", {"description": body})

    def close_issue(self, issue: Issue, comment: str) -> None:
        self._call("POST", f"/issues/{issue.number}/notes", {"body": comment})
        self._call("PUT", f"/issues/{issue.number}", {"state_event": "close"})


def from_environment(
    host: str | None = None, env: Mapping[str, str] | None = None, *, need_pull_request: bool
) -> Host:
    """The host this CI job runs on (``github``, ``gitlab``, or found from the job's
    variables), ready to call."""
    env = os.environ if env is None else env
    chosen = host or (
        "github" if env.get("GITHUB_ACTIONS") else "gitlab" if env.get("GITLAB_CI") else None
    )
    if chosen == "github":
        return GitHub(env, need_pull_request=need_pull_request)
    if chosen == "gitlab":
        return GitLab(env, need_pull_request=need_pull_request)
    raise ConfigError("not in GitHub Actions or GitLab CI: pass --host github|gitlab")
