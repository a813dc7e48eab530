"""A local stand-in for GitHub's and GitLab's REST APIs and for a chat webhook: the
few endpoints reconciler's comment, issues and notifications use, kept in memory, on
a loopback port, every request recorded. Nothing under test knows it is not the host."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

BOT = {"login": "github-actions[bot]", "type": "Bot"}
GITLAB_BOT = "project_7_bot"


@dataclass
class Seen:
    method: str
    path: str
    body: Any


@dataclass
class FakeHosts:
    """GitHub under ``/gh``, GitLab under ``/gl/api/v4``, a webhook at ``/hook/…``."""

    comments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by issue/MR
    issues: list[dict[str, Any]] = field(default_factory=list)
    hooks: list[Any] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    refuse: int | None = None  # answer every request with this status
    _next: int = 100

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        hosts = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                status, answer = hosts.answer(self.command, self.path, body, self.headers)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeHosts:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _id(self) -> int:
        self._next += 1
        return self._next

    def github_env(self, number: int = 7) -> dict[str, str]:
        return {
            "GITHUB_ACTIONS": "true",
            "GITHUB_API_URL": f"{self.url}/gh",
            "GITHUB_REPOSITORY": "imaging/manifests",
            "GITHUB_TOKEN": "t0ken",
            "RECONCILER_PR_NUMBER": str(number),
            "GITHUB_SERVER_URL": "https://github.example",
            "GITHUB_RUN_ID": "42",
        }

    def gitlab_env(self, iid: int = 3) -> dict[str, str]:
        return {
            "GITLAB_CI": "true",
            "CI_API_V4_URL": f"{self.url}/gl/api/v4",
            "CI_PROJECT_ID": "7",
            "CI_MERGE_REQUEST_IID": str(iid),
            "RECONCILER_GITLAB_TOKEN": "glpat-t0ken",
            "CI_JOB_URL": "https://gitlab.example/job/9",
        }

    # -- the endpoints -------------------------------------------------------------------
    def answer(self, method: str, target: str, body: Any, headers: Any) -> tuple[int, Any]:
        with self._lock:
            parts = urlsplit(target)
            path, query = parts.path, parse_qs(parts.query)
            self.seen.append(Seen(method, path, body))
            if self.refuse:
                return self.refuse, {"message": "Resource not accessible by integration"}
            if path.startswith("/hook/"):
                self.hooks.append(body)
                return 200, "ok"
            if path.startswith("/gh/"):
                if headers.get("Authorization") != "Bearer t0ken":
                    return 401, {"message": "Bad credentials"}
                return self._github(method, path[len("/gh/repos/imaging/manifests") :], query, body)
            if path.startswith("/gl/api/v4"):
                if headers.get("PRIVATE-TOKEN") != "glpat-t0ken":
                    return 401, {"message": "401 Unauthorized"}
                return self._gitlab(method, path[len("/gl/api/v4") :], query, body)
            return 404, {"message": "Not Found"}

    def _page(self, items: list[Any], query: dict[str, list[str]]) -> list[Any]:
        size = int(query.get("per_page", ["30"])[0])
        page = int(query.get("page", ["1"])[0])
        return items[(page - 1) * size : page * size]

    def _github(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        if m := re.fullmatch(r"/issues/(\d+)/comments", path):
            thread = self.comments.setdefault(m.group(1), [])
            if method == "GET":
                return 200, self._page(thread, query)
            comment = {"id": self._id(), "body": body["body"], "user": BOT}
            thread.append(comment)
            return 201, comment
        if m := re.fullmatch(r"/issues/comments/(\d+)", path):
            for thread in self.comments.values():
                for comment in thread:
                    if comment["id"] == int(m.group(1)):
                        if method == "DELETE":
                            thread.remove(comment)
                            return 204, None
                        comment["body"] = body["body"]
                        return 200, comment
            return 404, {"message": "Not Found"}
        if path == "/issues":
            if method == "GET":
                label, state = query.get("labels", [""])[0], query.get("state", ["open"])[0]
                found = [i for i in self.issues if label in i["labels"] and i["state"] == state]
                return 200, self._page(found, query)
            issue = {
                "number": self._id(),
                "title": body["title"],
                "body": body["body"],
                "labels": body["labels"],
                "state": "open",
            }
            self.issues.append(issue)
            return 201, issue
        if m := re.fullmatch(r"/issues/(\d+)", path):
            issue = next(i for i in self.issues if i["number"] == int(m.group(1)))
            issue.update({k: v for k, v in body.items() if k in ("body", "state")})
            return 200, issue
        return 404, {"message": "Not Found"}

    def _gitlab(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        if path == "/user":
            return 200, {"username": GITLAB_BOT}
        if m := re.fullmatch(r"/projects/7/merge_requests/(\d+)/notes", path):
            thread = self.comments.setdefault(f"mr{m.group(1)}", [])
            if method == "GET":
                return 200, self._page(thread, query)
            note = {"id": self._id(), "body": body["body"], "author": {"username": GITLAB_BOT}}
            thread.append(note)
            return 201, note
        if m := re.fullmatch(r"/projects/7/merge_requests/(\d+)/notes/(\d+)", path):
            thread = self.comments.setdefault(f"mr{m.group(1)}", [])
            note = next(n for n in thread if n["id"] == int(m.group(2)))
            if method == "DELETE":
                thread.remove(note)
                return 204, None
            note["body"] = body["body"]
            return 200, note
        if path == "/projects/7/issues":
            if method == "GET":
                label, state = query.get("labels", [""])[0], query.get("state", ["opened"])[0]
                found = [i for i in self.issues if label in i["labels"] and i["state"] == state]
                return 200, self._page(found, query)
            issue = {
                "iid": self._id(),
                "title": body["title"],
                "description": body["description"],
                "labels": [body["labels"]],
                "state": "opened",
            }
            self.issues.append(issue)
            return 201, issue
        if m := re.fullmatch(r"/projects/7/issues/(\d+)/notes", path):
            return 201, {"id": self._id(), "body": body["body"]}
        if m := re.fullmatch(r"/projects/7/issues/(\d+)", path):
            issue = next(i for i in self.issues if i["iid"] == int(m.group(1)))
            if body.get("state_event") == "close":
                issue["state"] = "closed"
            if "description" in body:
                issue["description"] = body["description"]
            return 200, issue
        return 404, {"message": "Not Found"}
